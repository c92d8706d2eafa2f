package mesh

import (
	"maps"
	"sync/atomic"
)

// Traffic is what the links of one transport (TCP or QUIC) have carried
// since the mesh started, closed links included: counters that only grow,
// for metrics.
type Traffic struct {
	BytesIn, BytesOut   uint64 // bytes read and written on the main stream
	FramesIn, FramesOut uint64 // messages received and queued
	Dropped             uint64 // events dropped on the way in (a full endpoint)
	LinksUp, LinksDown  uint64 // links registered, links closed
}

func (t *Traffic) add(o Traffic) {
	t.BytesIn += o.BytesIn
	t.BytesOut += o.BytesOut
	t.FramesIn += o.FramesIn
	t.FramesOut += o.FramesOut
	t.Dropped += o.Dropped
	t.LinksUp += o.LinksUp
	t.LinksDown += o.LinksDown
}

// linkTraffic reads one link's counters.
func linkTraffic(l *link) Traffic {
	return Traffic{
		BytesIn: l.c.received(), BytesOut: l.out.bytes.Load(),
		FramesIn: l.msgsIn.Load(), FramesOut: l.out.msgs.Load(),
		Dropped: l.dropped.Load(),
	}
}

// Traffic returns, per transport ("tcp", "quic"), what every link of the
// mesh has carried: the closed links' final counts plus the live ones'.
// Each link is counted from up to down under the link set's lock, so a
// link closing between two calls never makes a counter go back.
func (m *Mesh) Traffic() map[string]Traffic {
	s := &m.links
	s.mu.Lock()
	defer s.mu.Unlock()
	out := maps.Clone(s.retired)
	if out == nil {
		out = map[string]Traffic{}
	}
	for l := range s.counted {
		t := out[l.c.transport()]
		lt := linkTraffic(l)
		lt.LinksUp = 1
		t.add(lt)
		out[l.c.transport()] = t
	}
	return out
}

// MemberEvents counts membership changes this host has seen: members
// found through gossip, members that left on purpose, and members lost
// (no chain of live links reaches them).
type MemberEvents struct {
	Found, Left, Lost uint64
}

// MemberEvents returns the membership event counts since the mesh started.
func (m *Mesh) MemberEvents() MemberEvents {
	e := &m.members.events
	return MemberEvents{Found: e.found.Load(), Left: e.left.Load(), Lost: e.lost.Load()}
}

// memberEventCounts are MemberEvents as they are counted.
type memberEventCounts struct {
	found, left, lost atomic.Uint64
}
