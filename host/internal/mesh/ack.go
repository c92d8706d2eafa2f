package mesh

import (
	"context"
	"fmt"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// Acknowledged interest (PROTOCOL.md section 13, protocol version 2).
//
// A subscription opened on this host is advertised to the direct peers
// (interest) and to everyone else in this host's membership record, both
// after a coalescing delay, and each hop of the record adds another. A
// publisher two links away therefore learnt of a new subscription up to
// ~100 ms after it was opened, and the first events it published in that
// window went nowhere. ConfirmInterest closes that window for everything
// a relay reaches:
//
//  1. this host sends each direct peer its own record (when the peer may
//     not hold the current one) and then its interest, at once;
//  2. a peer at version 2 applies both, passes the record on to its own
//     other peers at once, each pass followed by a barrier (a members
//     frame with an ack token and no need for entries), waits up to
//     relayAckWait for their acks, and then acks the interest, naming
//     the peers that acked;
//  3. ConfirmInterest waits for those acks until its context ends.
//
// Frames on a link are applied in order, so an ack of a later frame
// covers every frame before it; that is why a barrier needs no entries
// when the record was sent earlier. A peer at version 1 knows no ack
// frame: it is neither sent one nor waited for. Hosts three or more links
// away cannot be reached through a relay anyway (a message crosses at most
// two links): they learn from the flooded record and are reached once
// linked to directly.

// relayAckWait bounds how long a peer waits for its own peers' acks
// before it acks an interest with whatever it has: short enough that the
// ack still reaches a host that waits a second for it.
const relayAckWait = 500 * time.Millisecond

// ackState is what a link knows of the acks its peer sent, and of the
// peer's interests it has to ack.
type ackState struct {
	// Acks received, the highest of each kind; ch is closed and replaced
	// on each.
	interest uint64
	nodes    []string // with interest: the peer's peers that confirmed
	members  uint64
	ch       chan struct{}

	// Interests of the peer to ack: the highest seen, whether a goroutine
	// is passing one on, and the result of the last pass (the peer's
	// record version it covered and who confirmed it), reused while the
	// record has not changed so that a peer repeating itself does not make
	// this host send a barrier to all its peers each time.
	want      uint64
	busy      bool
	passedVer uint64
	passed    []identity.ID
}

// gotAck records an ack frame from the peer.
func (l *link) gotAck(a *wire.Ack) {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	if a.Interest > l.acks.interest {
		l.acks.interest, l.acks.nodes = a.Interest, a.Nodes
	}
	l.acks.members = max(l.acks.members, a.Members)
	if l.acks.ch != nil {
		close(l.acks.ch)
		l.acks.ch = nil
	}
}

// waitAck waits until ok holds (checked under l.ackMu), the link closes or
// ctx ends; it reports whether ok held.
func (l *link) waitAck(ctx context.Context, ok func(*ackState) bool) bool {
	for {
		l.ackMu.Lock()
		if ok(&l.acks) {
			l.ackMu.Unlock()
			return true
		}
		if l.acks.ch == nil {
			l.acks.ch = make(chan struct{})
		}
		ch := l.acks.ch
		l.ackMu.Unlock()
		select {
		case <-ch:
		case <-l.done:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// ackInterest acknowledges the peer's interest seq once its record has
// been passed on (see the top of this file). One goroutine per link does
// this at a time, taking the newest seq when it finishes, so a peer that
// sends many interests costs one pass at a time.
func (l *link) ackInterest(seq uint64) {
	m := l.m
	l.ackMu.Lock()
	l.acks.want = max(l.acks.want, seq)
	if l.acks.busy {
		l.ackMu.Unlock()
		return
	}
	l.acks.busy = true
	l.ackMu.Unlock()
	// Called from l's reader, which Close waits for, so the count is above
	// zero here.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			l.ackMu.Lock()
			seq := l.acks.want
			l.ackMu.Unlock()
			nodes := m.members.passOn(l)
			ids := make([]string, len(nodes))
			for i, id := range nodes {
				ids[i] = string(id)
			}
			if err := l.enqueueControl(wire.FrameAck, &wire.Ack{Interest: seq, Nodes: ids}); err != nil {
				m.log.Debug("interest ack not sent", "node", l.name, "err", err)
			}
			l.ackMu.Lock()
			if l.acks.want == seq || l.gone.Load() {
				l.acks.busy = false
				l.ackMu.Unlock()
				return
			}
			l.ackMu.Unlock()
		}
	}()
}

// passOn sends the record of from's peer to every other direct peer that
// may not hold it, each followed on a link at version 2 by a barrier, and
// returns the peers whose ack of it came back within relayAckWait.
func (ms *membership) passOn(from *link) []identity.ID {
	origin := from.peer
	m := ms.m
	ms.mu.Lock()
	mb := ms.byID[origin]
	var ver uint64
	if mb != nil {
		ver = mb.rec.Version
	}
	from.ackMu.Lock()
	if ver != 0 && from.acks.passedVer == ver {
		// Nothing new to pass on since the last pass.
		prev := from.acks.passed
		from.ackMu.Unlock()
		ms.mu.Unlock()
		return m.links.stillLinked(prev)
	}
	from.ackMu.Unlock()
	type barrier struct {
		l     *link
		token uint64
	}
	var waits []barrier
	for _, l := range m.links.all() {
		if l == from || l.leaving.Load() || l.gone.Load() {
			continue
		}
		var f wire.Members
		if mb != nil && (mb.alive || mb.rec.Left) {
			known := ms.known[l]
			if known == nil {
				known = map[identity.ID]uint64{}
				ms.known[l] = known
			}
			if known[origin] < ver {
				known[origin] = ver
				e := mb.entry
				e.Reach = mb.reach
				f.Entries = []wire.MemberEntry{e}
			}
		}
		if l.version >= wire.AckVersion {
			f.Ack = m.seq.Add(1)
			waits = append(waits, barrier{l, f.Ack})
		}
		if len(f.Entries) > 0 || f.Ack != 0 {
			m.members.send(l, &f)
		}
	}
	ms.mu.Unlock()
	ctx, cancel := context.WithTimeout(from.ctx, relayAckWait)
	defer cancel()
	var ok []identity.ID
	for _, w := range waits {
		if w.l.waitAck(ctx, func(s *ackState) bool { return s.members >= w.token }) {
			ok = append(ok, w.l.peer)
		}
	}
	from.ackMu.Lock()
	if len(ok) == len(waits) {
		// Only a complete pass is worth reusing.
		from.acks.passedVer, from.acks.passed = ver, ok
	}
	from.ackMu.Unlock()
	return ok
}

// stillLinked keeps the ids this host still has a link to.
func (s *linkSet) stillLinked(ids []identity.ID) []identity.ID {
	var out []identity.ID
	for _, id := range ids {
		if l := s.get(id); l != nil && !l.leaving.Load() {
			out = append(out, id)
		}
	}
	return out
}

// pushSelf sends l this host's current record unless l holds it already;
// it precedes every interest, so that a peer that applied an interest
// also holds the record that says the same, and can pass it on.
func (ms *membership) pushSelf(l *link) {
	m := ms.m
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.self == nil || ms.self.rec.Left {
		return
	}
	known := ms.known[l]
	if known == nil {
		known = map[identity.ID]uint64{}
		ms.known[l] = known
	}
	if known[m.id] >= ms.self.rec.Version {
		return
	}
	known[m.id] = ms.self.rec.Version
	m.members.send(l, &wire.Members{Entries: []wire.MemberEntry{ms.self.entry}})
}

// Confirmation says how far this host's current interest is known to have
// reached.
type Confirmation struct {
	// Confirmed is how many other hosts acknowledged it: direct peers,
	// and the hosts behind them that reach this one through them.
	Confirmed int
	// Unconfirmed is how many other live hosts of the mesh did not (yet):
	// peers that speak protocol version 1, peers that did not answer in
	// time, and hosts further away, which learn it from the flooded
	// membership record.
	Unconfirmed int
}

// ConfirmInterest advertises what this host serves now, at once, and waits
// until every direct peer that speaks protocol version 2 has acknowledged
// it (and, through them, the hosts they relay for) or ctx ends; see the
// top of this file. Call it after a change of what this host serves (a
// subscription) to know that events published elsewhere will find it.
// The wait is as long as ctx allows: give it a deadline.
func (m *Mesh) ConfirmInterest(ctx context.Context) Confirmation {
	m.adverts.send()
	type want struct {
		l   *link
		seq uint64
	}
	var wants []want
	others := map[identity.ID]bool{}
	for id := range m.routes.load().nodes {
		others[id] = true
	}
	for _, l := range m.links.all() {
		if l.leaving.Load() || l.gone.Load() {
			continue
		}
		// A link that is up but not in the table yet counts too.
		others[l.peer] = true
		if l.version < wire.AckVersion {
			continue
		}
		l.sentMu.Lock()
		seq := l.lastSeq
		l.sentMu.Unlock()
		if seq != 0 {
			wants = append(wants, want{l, seq})
		}
	}
	confirmed := map[identity.ID]bool{}
	for _, w := range wants {
		if !w.l.waitAck(ctx, func(s *ackState) bool { return s.interest >= w.seq }) {
			continue
		}
		confirmed[w.l.peer] = true
		w.l.ackMu.Lock()
		nodes := w.l.acks.nodes
		w.l.ackMu.Unlock()
		// Only hosts this host knows count: a peer's list is its word, and
		// must not inflate the count with ids that mean nothing here.
		for _, s := range nodes {
			if id := identity.ID(s); id != m.id && others[id] {
				confirmed[id] = true
			}
		}
	}
	c := Confirmation{Confirmed: len(confirmed)}
	for id := range others {
		if !confirmed[id] {
			c.Unconfirmed++
		}
	}
	return c
}

// String is for logs.
func (c Confirmation) String() string {
	return fmt.Sprintf("%d confirmed, %d not", c.Confirmed, c.Unconfirmed)
}
