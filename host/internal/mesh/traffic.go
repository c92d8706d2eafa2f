package mesh

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/host/internal/identity"
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

// MaxPeerSeries bounds the peers whose traffic PeerTraffic reports apart:
// a peer id is stable (it is the peer's key), but anyone trusted can make
// keys, and a scrape must stay small. Peers first linked while this many
// have their own figures are counted together under OtherPeers, for as
// long as they are remembered.
const MaxPeerSeries = 256

// OtherPeers is the PeerTraffic.ID of the peers beyond MaxPeerSeries.
const OtherPeers = "other"

// PeerTraffic is what the links to one peer over one transport have
// carried, closed links included: counters that only grow while the peer
// is remembered, for metrics. A peer is remembered while it has a link or
// this host holds its membership record (alive, lost or left, until the
// record is forgotten); then its figures go, and only the transport's
// Traffic keeps them.
type PeerTraffic struct {
	ID        string // the node id, as GET /v1/peers shows it, or OtherPeers
	Name      string // the name its last link announced; "" for OtherPeers
	Transport string // "tcp" or "quic"
	Traffic
}

// peerCount is what the link set keeps about one peer for PeerTraffic.
type peerCount struct {
	name    string
	other   bool               // beyond the cap: counted under OtherPeers
	links   int                // its links in linkSet.counted
	retired map[string]Traffic // its closed links' final counts, per transport (not for other)
}

// countUp starts counting l for its peer; s.mu is held.
func (s *linkSet) countUp(l *link) {
	p := s.peers[l.peer]
	if p == nil {
		p = &peerCount{other: s.named >= s.peerCap}
		if !p.other {
			s.named++
			p.retired = map[string]Traffic{}
		}
		s.peers[l.peer] = p
	}
	p.name = l.name
	p.links++
}

// countDown moves l's final counts to its peer's; s.mu is held.
func (s *linkSet) countDown(l *link, final Traffic) {
	p := s.peers[l.peer]
	if p == nil {
		return
	}
	p.links--
	into := p.retired
	if p.other {
		into = s.otherRetired
	}
	t := into[l.c.transport()]
	t.add(final)
	into[l.c.transport()] = t
}

// PeerTraffic returns, per peer and transport, what the links to each
// remembered peer have carried (the closed links' final counts plus the
// live ones'), and the peers beyond MaxPeerSeries summed under
// OtherPeers; sorted by id, then transport.
func (m *Mesh) PeerTraffic() []PeerTraffic {
	s := &m.links
	s.mu.Lock()
	defer s.mu.Unlock()
	type key struct{ id, transport string }
	sums := map[key]Traffic{}
	for id, p := range s.peers {
		for tr, t := range p.retired {
			sums[key{string(id), tr}] = t
		}
	}
	for tr, t := range s.otherRetired {
		sums[key{OtherPeers, tr}] = t
	}
	for l := range s.counted {
		k := key{string(l.peer), l.c.transport()}
		if p := s.peers[l.peer]; p == nil || p.other {
			k.id = OtherPeers
		}
		lt := linkTraffic(l)
		lt.LinksUp = 1
		t := sums[k]
		t.add(lt)
		sums[k] = t
	}
	out := make([]PeerTraffic, 0, len(sums))
	for k, t := range sums {
		pt := PeerTraffic{ID: k.id, Transport: k.transport, Traffic: t}
		if p := s.peers[identity.ID(k.id)]; p != nil && k.id != OtherPeers {
			pt.Name = p.name
		}
		out = append(out, pt)
	}
	slices.SortFunc(out, func(a, b PeerTraffic) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Transport, b.Transport))
	})
	return out
}

// forgetPeers drops the figures of peers that have no link and whose
// membership record this host no longer holds (never had, or forgot after
// the members' ttl). Run by the tick, after the members' gc. The two
// locks are taken one after the other, never nested, and a peer that
// linked again in between is kept.
func (s *linkSet) forgetPeers() {
	m := s.m
	s.mu.Lock()
	var idle []identity.ID
	for id, p := range s.peers {
		if p.links == 0 {
			idle = append(idle, id)
		}
	}
	s.mu.Unlock()
	if len(idle) == 0 {
		return
	}
	gone := idle[:0]
	m.members.mu.Lock()
	for _, id := range idle {
		if m.members.byID[id] == nil {
			gone = append(gone, id)
		}
	}
	m.members.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range gone {
		if p := s.peers[id]; p != nil && p.links == 0 {
			delete(s.peers, id)
			if !p.other {
				s.named--
			}
		}
	}
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
