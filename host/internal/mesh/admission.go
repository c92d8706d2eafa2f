package mesh

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on inbound connections that have not finished the handshake
// (TLS, then the Hello exchange). Anyone who can reach the port can open
// such a connection, so these are what stands between a flood of idle
// sockets and the peers that want to join; abi/PROTOCOL.md section 5 and
// host/internal/identity/THREAT_MODEL.md describe them. They are constants, not
// config keys: a real peer talks at once and finishes in a few round
// trips, so no deployment needs other values to let its peers in
// (RATIONALE.md, "Why are connections that have not spoken kept apart
// from the handshakes?").
const (
	// maxSilent bounds the inbound connections that have not spoken yet:
	// TCP before its first byte, QUIC before the peer's main stream.
	maxSilent = 256
	// maxSilentPerSource bounds them per source: one IPv4 address or one
	// IPv6 /64 (what one machine can take without asking anyone).
	maxSilentPerSource = 64
	// maxHandshakes bounds the connections that have spoken and are in
	// the handshake, which is where the CPU goes.
	maxHandshakes = 64
	// maxHandshakesPerSource bounds them per source.
	maxHandshakesPerSource = 16
	// handshakeIdle is how long an inbound connection may stay silent
	// (no TCP byte, no QUIC main stream), and how long the dialer's Hello
	// may take once the TLS handshake is done (the dialer sends it at once).
	handshakeIdle = 2 * time.Second
	// handshakeStall is how long a connection in the handshake may stay
	// at one step before a newcomer may take its place when the slots are
	// full; a real peer takes a round trip per step.
	handshakeStall = time.Second
	// handshakeTimeout bounds the whole handshake, either side.
	handshakeTimeout = 10 * time.Second
	// acceptBackoffMax caps the pause between failed Accept calls, as
	// net/http does.
	acceptBackoffMax = time.Second
)

// slot is one inbound connection that has not finished the handshake.
type slot struct {
	src      netip.Prefix
	kill     func()      // closes the connection
	dropped  atomic.Bool // lost its place to a newcomer
	spoke    atomic.Bool // moved to slots.talking (set under slots.mu)
	progress time.Time   // admission or the last step reached; slots.mu
}

// tier is a set of slots bounded in all and per source.
type tier struct {
	held         map[*slot]struct{}
	bySrc        map[netip.Prefix]int
	max, perSrc  int
	staleAllowed time.Duration // how long a slot must have stood still to be dropped for a newcomer
}

func newTier(max, perSrc int, stale time.Duration) tier {
	return tier{held: map[*slot]struct{}{}, bySrc: map[netip.Prefix]int{}, max: max, perSrc: perSrc, staleAllowed: stale}
}

// room makes room for one more slot from src: nothing to do, or the slot
// to drop (removed already), or full when every slot in the way has moved
// on too recently to be dropped.
func (t *tier) room(src netip.Prefix, now time.Time) (drop *slot, full bool) {
	switch {
	case t.bySrc[src] >= t.perSrc:
		drop = t.stalest(src, now)
	case len(t.held) >= t.max:
		drop = t.stalest(netip.Prefix{}, now)
	default:
		return nil, false
	}
	if drop == nil {
		return nil, true
	}
	t.remove(drop)
	return drop, false
}

// stalest picks the slot to drop, from src or, when src is the zero
// prefix, from all: of those that have stood still for staleAllowed, the
// one from the source that holds the most, idle the longest.
func (t *tier) stalest(src netip.Prefix, now time.Time) *slot {
	var best *slot
	var bn int
	for s := range t.held {
		if src.IsValid() && s.src != src || now.Sub(s.progress) < t.staleAllowed {
			continue
		}
		n := t.bySrc[s.src]
		if best == nil || n > bn || n == bn && s.progress.Before(best.progress) {
			best, bn = s, n
		}
	}
	return best
}

func (t *tier) add(s *slot) {
	t.held[s] = struct{}{}
	t.bySrc[s.src]++
}

func (t *tier) remove(s *slot) {
	delete(t.held, s)
	if t.bySrc[s.src]--; t.bySrc[s.src] <= 0 {
		delete(t.bySrc, s.src)
	}
}

// slots admits inbound connections in two steps. A new connection is
// always taken into silent; when that is full (in all or for its source)
// the silent connection idle the longest is dropped for it, since an idle
// socket is all a silent connection has shown. Once it speaks, it moves
// to talking, the handshakes proper, bounded by maxHandshakes and
// maxHandshakesPerSource; when that is full it replaces one that has
// stalled for handshakeStall, or is refused. So idle sockets, however
// many, only ever push out each other, and handshakes under way are
// never cut short for a newcomer.
type slots struct {
	mu      sync.Mutex
	silent  tier
	talking tier
}

func newSlots() *slots {
	return &slots{silent: newTier(maxSilent, maxSilentPerSource, 0), talking: newTier(maxHandshakes, maxHandshakesPerSource, handshakeStall)}
}

// take admits a new connection from addr as silent. It returns the
// connection dropped to make room, if any, for the caller to kill outside
// the lock.
func (g *slots) take(addr net.Addr, kill func()) (s, dropped *slot) {
	now := time.Now()
	s = &slot{src: sourceOf(addr), kill: kill, progress: now}
	g.mu.Lock()
	defer g.mu.Unlock()
	dropped, _ = g.silent.room(s.src, now)
	g.silent.add(s)
	return s, dropped
}

// speak moves s from silent to talking. ok is false when s was dropped
// already or the handshakes are full of connections that are moving on.
func (g *slots) speak(s *slot) (dropped *slot, ok bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, held := g.silent.held[s]; !held {
		return nil, false
	}
	dropped, full := g.talking.room(s.src, now)
	if full {
		return nil, false
	}
	g.silent.remove(s)
	s.progress = now
	s.spoke.Store(true)
	g.talking.add(s)
	return dropped, true
}

// step records that s has moved on in its handshake.
func (g *slots) step(s *slot) {
	g.mu.Lock()
	s.progress = time.Now()
	g.mu.Unlock()
}

// release frees s's slot when its handshake has ended; a slot dropped to
// make room is gone already.
func (g *slots) release(s *slot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := &g.silent
	if s.spoke.Load() {
		t = &g.talking
	}
	if _, ok := t.held[s]; ok {
		t.remove(s)
	}
}

// sourceOf is the source a connection counts against: its IPv4 address,
// or its IPv6 /64.
func sourceOf(a net.Addr) netip.Prefix {
	ip := addrPort(a).Addr()
	if !ip.IsValid() {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}
