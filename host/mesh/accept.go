package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Limits on inbound connections that have not finished the handshake
// (TLS, then the Hello exchange). Anyone who can reach the port can open
// such a connection, so these are what stands between a flood of idle
// sockets and the peers that want to join; abi/PROTOCOL.md section 5 and
// host/identity/THREAT_MODEL.md describe them. They are constants, not
// config keys: a real peer sends its first byte at once and finishes in a
// few round trips, so no deployment needs other values to let its peers in
// (RATIONALE.md, "Why does a full handshake table drop the stalest
// connection instead of refusing the new one?").
const (
	// maxHandshakes bounds the inbound connections in the handshake at once.
	maxHandshakes = 64
	// maxHandshakesPerSource bounds them per source: one IPv4 address or
	// one IPv6 /64 (what one machine can take without asking anyone).
	maxHandshakesPerSource = 8
	// handshakeIdle is how long an inbound TCP connection may stay silent
	// before its first byte, and how long the dialer's Hello may take once
	// the TLS handshake is done (the dialer sends it at once).
	handshakeIdle = 2 * time.Second
	// handshakeTimeout bounds the whole handshake, either side.
	handshakeTimeout = 10 * time.Second
	// acceptBackoffMax caps the pause between failed Accept calls, as
	// net/http does.
	acceptBackoffMax = time.Second
)

// How far an inbound connection has come; the least advanced is dropped
// first when the slots are full.
const (
	levelSilent int32 = iota // TCP: no byte from the peer yet
	levelTLS                 // TCP: the TLS handshake is under way
	levelHello               // TLS done: waiting for the dialer's Hello
)

// slot is one inbound connection in the handshake.
type slot struct {
	src      netip.Prefix
	level    atomic.Int32
	progress atomic.Int64 // unix nanoseconds of admission or of the last level reached
	kill     func()       // closes the connection
	dropped  atomic.Bool  // dropped to make room for a newer connection
}

func (s *slot) advance(level int32) {
	s.level.Store(level)
	s.progress.Store(time.Now().UnixNano())
}

// slots admits inbound connections into the handshake within
// maxHandshakes in all and maxHandshakesPerSource per source. A connection
// that finds them full is admitted anyway and the stalest connection of
// its source (when the source is at its limit) or of all is dropped: the
// least advanced, from the source that holds the most, that has made no
// progress for the longest. A real peer talks at once and moves on, so
// idle or slow sockets, however many, are what gets dropped, and a new
// peer always gets a slot (sshd's MaxStartups drops at random instead; a
// socket that says nothing is a better choice than a random one).
type slots struct {
	mu    sync.Mutex
	held  map[*slot]struct{}
	bySrc map[netip.Prefix]int
}

func newSlots() *slots {
	return &slots{held: map[*slot]struct{}{}, bySrc: map[netip.Prefix]int{}}
}

// take admits a connection from addr at level. It returns the connection
// dropped to make room, if any, for the caller to kill outside the lock.
func (g *slots) take(addr net.Addr, level int32, kill func()) (s, dropped *slot) {
	s = &slot{src: sourceOf(addr), kill: kill}
	s.advance(level)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bySrc[s.src] >= maxHandshakesPerSource {
		dropped = g.stalest(s.src)
	} else if len(g.held) >= maxHandshakes {
		dropped = g.stalest(netip.Prefix{})
	}
	if dropped != nil {
		dropped.dropped.Store(true)
		g.drop(dropped)
	}
	g.held[s] = struct{}{}
	g.bySrc[s.src]++
	return s, dropped
}

// stalest picks the connection to drop, from src or, when src is the zero
// prefix, from all; g.mu is held.
func (g *slots) stalest(src netip.Prefix) *slot {
	var best *slot
	var bl int32
	var bn int
	var bp int64
	for s := range g.held {
		if src.IsValid() && s.src != src {
			continue
		}
		l, n, p := s.level.Load(), g.bySrc[s.src], s.progress.Load()
		if best == nil || l < bl || l == bl && (n > bn || n == bn && p < bp) {
			best, bl, bn, bp = s, l, n, p
		}
	}
	return best
}

func (g *slots) drop(s *slot) {
	delete(g.held, s)
	if g.bySrc[s.src]--; g.bySrc[s.src] <= 0 {
		delete(g.bySrc, s.src)
	}
}

// release frees s's slot when its handshake has ended; a slot dropped to
// make room is gone already.
func (g *slots) release(s *slot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.held[s]; ok {
		g.drop(s)
	}
}

// sourceOf is the source a connection counts against: its IPv4 address,
// or its IPv6 /64.
func sourceOf(a net.Addr) netip.Prefix {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// admit takes a handshake slot for a new inbound connection, dropping the
// stalest one when they are full.
func (m *Mesh) admit(addr net.Addr, level int32, kill func()) *slot {
	s, dropped := m.slots.take(addr, level, kill)
	if dropped != nil {
		m.refused.Add(1)
		dropped.kill()
		// An attack drops thousands a second: say so once a minute, not
		// once a connection.
		now := time.Now().UnixNano()
		if last := m.slotsWarned.Load(); now-last > int64(time.Minute) && m.slotsWarned.CompareAndSwap(last, now) {
			m.log.Warn("inbound handshake slots full: dropping the stalest unauthenticated connections",
				"limit", maxHandshakes, "per_source", maxHandshakesPerSource, "source", dropped.src.String())
		} else {
			m.log.Debug("dropped an unauthenticated connection to make room", "source", dropped.src.String())
		}
	}
	return s
}

// firstByteConn moves its slot from silent to TLS at the first byte the
// peer sends and lifts the first-byte deadline then.
type firstByteConn struct {
	net.Conn
	s *slot
}

func (f *firstByteConn) Read(b []byte) (int, error) {
	n, err := f.Conn.Read(b)
	if n > 0 && f.s.level.Load() == levelSilent {
		f.s.advance(levelTLS)
		f.Conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

// acceptTCP accepts TLS connections until the listener closes. A failed
// Accept (EMFILE, ENFILE, ENOBUFS, ...) is retried with backoff, whatever
// the error, as long as the listener is open: giving up would leave the
// port listening and no peer able to connect until a restart.
func (m *Mesh) acceptTCP() {
	defer m.wg.Done()
	var delay time.Duration
	failures := 0
	for {
		c, err := m.tcpL.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || m.ctx.Err() != nil {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), acceptBackoffMax)
			if failures++; failures == 1 {
				m.log.Error("tcp accept failed; retrying with backoff", "addr", m.tcpL.Addr().String(), "err", err)
			} else {
				m.log.Debug("tcp accept failed", "err", err, "failures", failures, "retry_in", delay)
			}
			select {
			case <-time.After(delay):
			case <-m.ctx.Done():
				return
			}
			continue
		}
		if failures > 0 {
			m.log.Info("tcp accept works again", "addr", m.tcpL.Addr().String(), "failures", failures)
			delay, failures = 0, 0
		}
		s := m.admit(c.RemoteAddr(), levelSilent, func() { c.Close() })
		// The first byte (the ClientHello) must come soon: a real peer
		// sends it at once, an idle socket holds a slot only this long.
		c.SetReadDeadline(time.Now().Add(handshakeIdle))
		go func() {
			defer m.slots.release(s)
			ctx, cancel := context.WithTimeout(m.ctx, handshakeTimeout)
			defer cancel()
			tc := tls.Server(&firstByteConn{Conn: c, s: s}, m.serverTLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				// A trust refusal was counted by VerifyConnection.
				m.log.Debug("tls handshake failed", "transport", TCP, "addr", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			s.advance(levelHello)
			m.accept(ctx, s, &tcpConn{c: tc})
		}()
	}
}

// acceptQUIC accepts QUIC connections until the listener closes. quic-go
// has completed the TLS handshake, including our peer verification, when
// Accept returns. quic-go retries temporary socket errors itself; any
// other (ENOMEM from recvmsg, say) closes its whole transport, and then
// this loop listens again on the same address, with backoff, rather than
// leave QUIC peers locked out until a restart.
func (m *Mesh) acceptQUIC() {
	defer m.wg.Done()
	for {
		l, _ := m.quic()
		c, err := l.Accept(m.ctx)
		if err != nil {
			if errors.Is(err, quic.ErrServerClosed) || m.ctx.Err() != nil {
				return
			}
			m.log.Error("quic listener failed; listening again", "addr", l.Addr().String(), "err", err)
			if !m.relistenQUIC(l.Addr().String()) {
				return
			}
			continue
		}
		s := m.admit(c.RemoteAddr(), levelHello, func() { c.CloseWithError(0, "too many handshakes in progress") })
		go func() {
			defer m.slots.release(s)
			ctx, cancel := context.WithTimeout(m.ctx, handshakeTimeout)
			defer cancel()
			m.accept(ctx, s, &quicConn{c: c})
		}()
	}
}

// relistenQUIC replaces the failed QUIC transport with a new one on addr
// (the address actually bound, so a configured port 0 keeps its port),
// retrying with backoff; false when the mesh closes first.
func (m *Mesh) relistenQUIC(addr string) bool {
	if _, old := m.quic(); old != nil {
		old.Close()
		old.Conn.Close()
	}
	var delay time.Duration
	for failures := 1; ; failures++ {
		l, t, err := m.listenQUIC(addr)
		if err == nil {
			m.setQUIC(l, t)
			m.log.Info("quic listening again", "addr", addr, "attempts", failures)
			return true
		}
		delay = min(max(2*delay, 5*time.Millisecond), acceptBackoffMax)
		m.log.Debug("quic listen failed", "addr", addr, "err", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-m.ctx.Done():
			return false
		}
	}
}

// accept runs the acceptor's side of the Hello exchange, which the dialer
// starts as soon as its TLS handshake is done: it gets handshakeIdle.
func (m *Mesh) accept(ctx context.Context, s *slot, c conn) {
	ctx, cancel := context.WithTimeout(ctx, handshakeIdle)
	defer cancel()
	l, err := m.handshake(ctx, c, false)
	if err != nil {
		m.refused.Add(1)
		if s.dropped.Load() {
			m.log.Debug("dropped a connection in the handshake", "transport", c.transport(), "addr", c.remoteAddr(), "err", err)
		} else {
			m.log.Warn("refused a connection", "transport", c.transport(), "addr", c.remoteAddr(), "err", err)
		}
		c.close(err.Error())
		return
	}
	l.found = FoundInbound
	m.up(l)
}
