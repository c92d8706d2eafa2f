package mesh

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// Fast failure detection for links with requests waiting.
//
// The dead time (Options.DeadAfter) closes a link that carried no frame
// for that long, and a TCP connection whose process died ends at once.
// A QUIC peer that is killed, or any peer that freezes or drops off the
// network, sends nothing at all: until the dead time, half of the calls
// would go on being routed to it, and with a fixed number of callers
// every one of them ends up waiting there. So a link on which this host
// waits for replies is watched more closely:
//
//  1. every half probe timeout, if nothing at all arrived since the last
//     look (not a byte), a ping goes out as a probe;
//  2. a probe unanswered (nothing arrives) for the probe timeout
//     makes the link suspect: routing sends new requests to the other
//     providers (providers.pick), and anything from the peer clears it;
//  3. a probe unanswered for probeDeadFactor probe timeouts closes the
//     link, failing the requests on it as unreachable at once.
//
// A peer whose handler is merely slow answers the probes (its reader
// answers pings whatever its workers do), so it is neither suspect nor
// closed. The probe timeout is four smoothed round-trip times, at least
// probeFloor: a pause of the scheduler or the collector on a loaded host
// must not read as a dead peer, and wrongly suspecting one costs little.

const (
	// probeFloor is the least time a probe waits for its answer.
	probeFloor = 250 * time.Millisecond
	// probeDeadFactor is how many probe timeouts a link stays silent after
	// a probe before it is closed.
	probeDeadFactor = 4
)

// probeTimeout is how long a probe may go unanswered before the link is
// suspect.
func (l *link) probeTimeout() time.Duration {
	return max(probeFloor, 4*time.Duration(l.srtt.Load()))
}

// avoid reports whether routing should choose another provider than the
// one reached over l: l is suspect, closing or leaving.
func (l *link) avoid() bool {
	return l.probe.suspect.Load() != 0 || l.gone.Load() || l.leaving.Load()
}

// heard grows whenever anything arrives from the peer: a frame on any
// stream, or bytes of one still arriving on the main stream (a big frame
// on a slow path, with the pong behind it, is a live peer).
func (l *link) heard() uint64 { return l.framesIn.Load() + l.c.received() }

// waiting is how many of this host's requests wait for a reply on l.
func (l *link) waiting() int { return l.reqs.waiting() }

// probe watches a link on which this host waits for replies (see the top
// of this file). It owns its timer and the state under mu.
type probe struct {
	l *link
	// suspect is when an unanswered probe made the link suspect (unix ns,
	// 0: not).
	suspect atomic.Int64
	watched atomic.Bool // the probe timer runs

	mu sync.Mutex
	t  *time.Timer
	// heard() at the last check, when the unanswered probe went out
	// (zero: none), and the write count then.
	heard  uint64
	at     time.Time
	writes uint64
}

// watch starts the probe timer of a link that has a request waiting.
func (p *probe) watch() {
	l := p.l
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watched.Load() || l.gone.Load() {
		return
	}
	p.watched.Store(true)
	p.heard = l.heard()
	p.at = time.Time{}
	p.arm(l.probeTimeout() / 2)
}

// arm runs check after d; p.mu is held.
func (p *probe) arm(d time.Duration) {
	if p.t == nil {
		p.t = time.AfterFunc(d, p.check)
		return
	}
	p.t.Reset(d)
}

// unwatch stops the timer when nothing waits on l any more; p.mu is
// held. A request registered concurrently either sees watched false and
// starts the timer itself, or is seen here.
func (p *probe) unwatch() {
	l := p.l
	p.watched.Store(false)
	if l.waiting() > 0 {
		p.watched.Store(true)
		p.arm(l.probeTimeout() / 2)
	}
}

// check is the probe timer: see the top of this file.
func (p *probe) check() {
	l := p.l
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.gone.Load() {
		return
	}
	t := l.probeTimeout()
	now := time.Now()
	if f := l.heard(); f != p.heard {
		p.heard = f
		p.at = time.Time{}
		p.answered()
		if l.waiting() == 0 {
			p.unwatch()
			return
		}
		p.arm(t / 2)
		return
	}
	if p.at.IsZero() {
		if l.waiting() == 0 {
			p.unwatch()
			return
		}
		p.at, p.writes = now, l.out.writes.Load()
		l.enqueueControl(wire.FramePing, &wire.Ping{Nonce: uint64(now.UnixNano())})
		p.arm(t)
		return
	}
	silent := now.Sub(p.at)
	if silent < t {
		p.arm(t - silent)
		return
	}
	if p.suspect.Load() == 0 {
		p.suspect.Store(now.UnixNano())
		l.m.log.Warn("peer does not answer a probe, routing new requests elsewhere", "node", l.name, "id", l.peer.Short(),
			"transport", l.c.transport(), "silent", silent.Round(time.Millisecond), "waiting", l.waiting())
	}
	if d := probeDeadFactor * t; silent < d {
		p.arm(d - silent)
		return
	}
	// The probe may still sit behind this host's own queue on a link that
	// is busy but moving (a big upload to a live peer on a slow path):
	// while writes go on (one per writeChunk), the silence proves nothing.
	// A peer that takes no more bytes stops the writes too.
	if w := l.out.writes.Load(); w != p.writes && l.out.pendingOwn() {
		p.writes = w
		p.arm(probeDeadFactor * t)
		return
	}
	cause := fmt.Errorf("no answer to a probe for %v (probe timeout %v)", silent.Round(time.Millisecond), t.Round(time.Millisecond))
	l.m.log.Warn("peer does not answer probes, closing its link", "node", l.name, "id", l.peer.Short(), "transport", l.c.transport(), "err", cause)
	go l.close(cause)
}

// answered clears the suspicion of l after a frame arrived from the peer.
func (p *probe) answered() {
	l := p.l
	if at := p.suspect.Swap(0); at != 0 {
		l.m.log.Info("peer answers again, routing requests to it", "node", l.name, "id", l.peer.Short(),
			"suspect_for", time.Since(time.Unix(0, at)).Round(time.Millisecond))
	}
}

// sweep is the steady liveness check, run every ping interval: it probes
// every link for its RTT and closes the silent ones, and those whose peer
// stopped reading.
func (s *linkSet) sweep(now time.Time) {
	m := s.m
	for _, l := range s.all() {
		// seenAt trails the last frame by up to one tick, so a link is
		// closed once seenAt is dead-ping old: silent for at least
		// dead-ping and less than dead, which keeps the promise that a
		// dead peer is noticed within the dead time.
		if n := l.heard(); n != l.seenHeard {
			l.seenHeard, l.seenAt = n, now
			l.lastSeen.Store(now.UnixNano())
		} else if silent := now.Sub(l.seenAt); silent >= m.dead-m.ping {
			m.log.Warn("peer silent, closing its link", "node", l.name, "id", l.peer.Short(), "silent", silent.Round(time.Millisecond))
			l.close(fmt.Errorf("no frame for %v (dead after %v)", silent.Round(time.Millisecond), m.dead))
			continue
		}
		if !l.out.busy.Load() {
			l.writeSeenAt = time.Time{}
		} else if w := l.out.writes.Load(); w != l.seenWrite || l.writeSeenAt.IsZero() {
			l.seenWrite, l.writeSeenAt = w, now
		} else if now.Sub(l.writeSeenAt) > m.dead {
			m.log.Warn("peer stopped reading, closing its link", "node", l.name, "id", l.peer.Short())
			l.close(fmt.Errorf("a write blocked for more than %v: the peer stopped reading", m.dead))
			continue
		}
		l.enqueueControl(wire.FramePing, &wire.Ping{Nonce: uint64(now.UnixNano())})
	}
}
