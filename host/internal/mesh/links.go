package mesh

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// linkSet is the registry of live links, at most one per peer node. It
// settles which of two links to the same node stays, starts each link's
// loops, retires and forgets links, and wakes whoever waits for the set to
// change. It also holds the mesh's closing flag: registering a link (or
// counting any goroutine in the mesh's WaitGroup) and Close's snapshot of
// the links must exclude each other, or Close could miss a link and wait
// for its loops for ever.
type linkSet struct {
	m *Mesh

	mu      sync.Mutex
	byID    map[identity.ID]*link
	changed chan struct{} // closed and replaced when the set changes
	closing bool

	badFrames atomic.Uint64 // links closed for a malformed or oversized frame

	// counted are the links from up to down, whose counters Traffic reads
	// live; retired holds, per transport, the final counts of the links
	// that went down (traffic.go). Both under mu.
	counted map[*link]struct{}
	retired map[string]Traffic
	// peers holds each remembered peer's counts for PeerTraffic; named
	// is how many of them are counted apart (at most peerCap, which is
	// MaxPeerSeries but for tests), and otherRetired the closed links'
	// final counts of the others, per transport, kept for ever so that
	// OtherPeers' figures never go back. All under mu.
	peers        map[identity.ID]*peerCount
	named        int
	peerCap      int
	otherRetired map[string]Traffic
}

func (s *linkSet) init(m *Mesh) {
	s.m, s.byID, s.changed = m, map[identity.ID]*link{}, make(chan struct{})
	s.counted, s.retired = map[*link]struct{}{}, map[string]Traffic{}
	s.peers, s.peerCap, s.otherRetired = map[identity.ID]*peerCount{}, MaxPeerSeries, map[string]Traffic{}
}

// hold counts n goroutines in the mesh's WaitGroup unless the mesh is
// closing; false means: do not start them.
func (s *linkSet) hold(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.m.wg.Add(n)
	return true
}

// shut marks the mesh closing and returns the links it had; false when it
// was closing already.
func (s *linkSet) shut() ([]*link, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	s.closing = true
	out := make([]*link, 0, len(s.byID))
	for _, l := range s.byID {
		out = append(out, l)
	}
	return out, true
}

// up registers a handshaken link, or retires it when a link to the same
// node exists and wins. Of two links between the same pair, both sides
// keep the one dialled by the lower node id, so simultaneous dials settle
// on one link without another round trip; a new link from the same dialer
// replaces the old one (which is likely half-dead).
func (s *linkSet) up(l *link) {
	m := s.m
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.close(errors.New("node is shutting down"))
		return
	}
	old := s.byID[l.peer]
	loser := old
	if old != nil && s.dialerOf(old) != s.dialerOf(l) && s.dialerOf(old) < s.dialerOf(l) {
		loser = l
	}
	if loser != l {
		s.byID[l.peer] = l
	}
	s.counted[l] = struct{}{}
	s.countUp(l)
	s.signal()
	// Counted under s.mu, where Close sets closing, so that Close's Wait
	// always includes this link's loops.
	loops := 2
	if l.c.transport() == QUIC {
		loops = 3
	}
	m.wg.Add(loops)
	s.mu.Unlock()

	go func() { defer m.wg.Done(); l.out.writeLoop() }()
	go func() { defer m.wg.Done(); l.readLoop() }()
	if loops == 3 {
		go func() { defer m.wg.Done(); l.soloLoop() }()
	}
	if loser == l {
		m.log.Debug("duplicate link retired", "node", l.name, "id", l.peer.Short(), "transport", l.c.transport())
		s.retire(l, wire.ErrDuplicate, "a link to this node exists already")
		return
	}
	m.log.Info("peer connected", "node", l.name, "id", l.peer.Short(), "addr", l.addr, "transport", l.c.transport(), "dialed", l.dialed, "version", l.version)
	if old != nil {
		s.retire(old, wire.ErrDuplicate, "replaced by a newer link")
	}
	l.sentMu.Lock()
	l.lastSent = ""
	l.sentMu.Unlock()
	m.topologyChanged()
}

// dialerOf is the node that dialled l.
func (s *linkSet) dialerOf(l *link) identity.ID {
	if l.dialed {
		return s.m.id
	}
	return l.peer
}

// signal wakes whoever waits for a change of links; s.mu is held.
func (s *linkSet) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// retire stops routing over l, tells the peer (GoAway with code), and
// closes l once its requests in both directions are answered, or after a
// grace period.
func (s *linkSet) retire(l *link, code wire.ErrorCode, reason string) {
	s.retireWithin(l, code, reason, retireGrace)
}

// retireGrace is how long a retired link waits for its requests before
// it closes anyway, unless a drain gives it longer (Mesh.Close).
const retireGrace = 5 * time.Second

// retireWithin is retire with a grace period of its own.
func (s *linkSet) retireWithin(l *link, code wire.ErrorCode, reason string, grace time.Duration) {
	if l.leaving.Swap(true) {
		return
	}
	s.mu.Lock()
	if s.byID[l.peer] == l {
		delete(s.byID, l.peer)
		s.signal()
	}
	s.mu.Unlock()
	s.m.topologyChanged()
	if reason != "" {
		l.enqueueControl(wire.FrameGoAway, &wire.ErrorFrame{Code: code, Msg: reason})
	}
	go func() {
		deadline := time.Now().Add(grace)
		for l.outstanding() > 0 && time.Now().Before(deadline) {
			select {
			case <-l.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		l.flushAndClose(fmt.Errorf("link retired: %s", reasonOr(reason, "peer left")))
	}()
}

func reasonOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// down is called once when a link has closed.
func (s *linkSet) down(l *link, cause error) {
	s.mu.Lock()
	was := s.byID[l.peer] == l
	if was {
		delete(s.byID, l.peer)
		s.signal()
	}
	if _, ok := s.counted[l]; ok {
		delete(s.counted, l)
		t := s.retired[l.c.transport()]
		final := linkTraffic(l)
		final.LinksUp, final.LinksDown = 1, 1
		t.add(final)
		s.retired[l.c.transport()] = t
		s.countDown(l, final)
	}
	s.mu.Unlock()
	s.m.members.forgetLink(l)
	if was {
		s.m.log.Info("peer disconnected", "node", l.name, "id", l.peer.Short(), "transport", l.c.transport(), "cause", cause)
		s.m.topologyChanged()
	}
}

// all returns the live links.
func (s *linkSet) all() []*link {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*link, 0, len(s.byID))
	for _, l := range s.byID {
		out = append(out, l)
	}
	return out
}

// get returns the live link to id, or nil.
func (s *linkSet) get(id identity.ID) *link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// watch returns the live link to id (or nil) and a channel closed at the
// next change of the set.
func (s *linkSet) watch(id identity.ID) (*link, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id], s.changed
}

// has reports whether there is a link to id.
func (s *linkSet) has(id identity.ID) bool { return s.get(id) != nil }
