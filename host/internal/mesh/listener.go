package mesh

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// listener accepts the connections other hosts open to this one, on TCP
// (TLS 1.3) and QUIC, admits them within the limits on connections that
// have not finished the handshake (admission.go), and hands each
// handshaken link to the link set. It owns the listening sockets; the QUIC
// socket also dials, so that QUIC peers see the listening port.
type listener struct {
	m         *Mesh
	serverTLS *tls.Config
	tcp       net.Listener

	qmu   sync.Mutex      // guards quicL and quicT, which acceptQUIC replaces when the socket fails
	quicL *quic.Listener  //
	quicT *quic.Transport // the listening UDP socket, also used to dial

	slots   *slots       // inbound connections in the handshake
	warned  atomic.Int64 // unix nanoseconds of the last "slots full" warning
	refused atomic.Uint64
}

// listen opens the configured sockets ("" disables one) and starts their
// accept loops.
func (ln *listener) listen(tcpAddr, quicAddr string) error {
	if tcpAddr != "" {
		l, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			return fmt.Errorf("listen.tcp: %w", err)
		}
		ln.tcp = l
		ln.m.wg.Add(1)
		go ln.acceptTCP()
	}
	if quicAddr != "" {
		l, t, err := ln.listenQUIC(quicAddr)
		if err != nil {
			if ln.tcp != nil {
				ln.tcp.Close()
			}
			return fmt.Errorf("listen.quic: %w", err)
		}
		ln.setQUIC(l, t)
		ln.m.wg.Add(1)
		go ln.acceptQUIC()
	}
	return nil
}

// stop closes the listening sockets: no new connections. The QUIC
// transport stays open for the links on it until close.
func (ln *listener) stop() {
	if ln.tcp != nil {
		ln.tcp.Close()
	}
	if l, _ := ln.quic(); l != nil {
		l.Close()
	}
}

// close releases the QUIC socket, once every link has closed.
func (ln *listener) close() {
	if _, t := ln.quic(); t != nil {
		t.Close()
		// quic-go leaves a socket it was given open.
		t.Conn.Close()
	}
}

// Addrs returns the addresses actually listened on ("" when disabled), as
// URLs: tcp://HOST:PORT and quic://HOST:PORT.
func (ln *listener) addrs() (tcpURL, quicURL string) {
	if ln.tcp != nil {
		tcpURL = TCP + "://" + ln.tcp.Addr().String()
	}
	if l, _ := ln.quic(); l != nil {
		quicURL = QUIC + "://" + l.Addr().String()
	}
	return tcpURL, quicURL
}

// ListenAddrs returns the addresses actually listened on, as IP and port
// (the zero netip.AddrPort when that transport is disabled): what Addrs
// formats as URLs, for callers that need the parts.
func (ln *listener) listenAddrs() (tcpAddr, quicAddr netip.AddrPort) {
	if ln.tcp != nil {
		tcpAddr = addrPort(ln.tcp.Addr())
	}
	if l, _ := ln.quic(); l != nil {
		quicAddr = addrPort(l.Addr())
	}
	return tcpAddr, quicAddr
}

// addrPort returns the IP and port of a listener's address; IPv4 comes
// unmapped, as the address prints.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (ln *listener) urls() []string {
	var out []string
	t, q := ln.addrs()
	for _, u := range []string{t, q} {
		if u != "" {
			out = append(out, u)
		}
	}
	return out
}

// listenQUIC opens the UDP socket for QUIC through a quic.Transport whose
// stateless reset key derives from the node key. A host that restarts
// (same key, same port) can then answer packets for connections it no
// longer knows with a stateless reset, and its peers notice at once
// instead of after the idle timeout. Dialling through the same transport
// sends from the listening port, which is what firewalls and NATs expect.
func (ln *listener) listenQUIC(hostport string) (*quic.Listener, *quic.Transport, error) {
	addr, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, nil, err
	}
	udp, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	key := quic.StatelessResetKey(sha256.Sum256(append([]byte("pycomms quic stateless reset v1"), ln.m.self.idt.Key.Seed()...)))
	t := &quic.Transport{Conn: udp, StatelessResetKey: &key}
	l, err := t.Listen(ln.serverTLS, quicConfig(ln.m.dead))
	if err != nil {
		udp.Close()
		return nil, nil, err
	}
	return l, t, nil
}

// quic returns the QUIC listener and its transport, nil when QUIC is off.
func (ln *listener) quic() (*quic.Listener, *quic.Transport) {
	ln.qmu.Lock()
	defer ln.qmu.Unlock()
	return ln.quicL, ln.quicT
}

func (ln *listener) setQUIC(l *quic.Listener, t *quic.Transport) {
	ln.qmu.Lock()
	ln.quicL, ln.quicT = l, t
	ln.qmu.Unlock()
}

// dialQUIC connects to addr over QUIC, from the listening socket when
// there is one.
func (ln *listener) dialQUIC(ctx context.Context, addr string, cfg *tls.Config) (conn, error) {
	_, t := ln.quic()
	if t == nil {
		return dialQUIC(ctx, addr, cfg, ln.m.dead)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := t.Dial(ctx, ua, cfg, quicConfig(ln.m.dead))
	if err != nil {
		return nil, err
	}
	return &quicConn{c: c}, nil
}

// admit takes a silent slot for a new inbound connection.
func (ln *listener) admit(addr net.Addr, kill func()) *slot {
	s, dropped := ln.slots.take(addr, kill)
	ln.drop(dropped, "silent")
	return s
}

// speak moves s into the handshakes; false when it must be closed.
func (ln *listener) speak(s *slot) bool {
	dropped, ok := ln.slots.speak(s)
	ln.drop(dropped, "stalled")
	if !ok && !s.dropped.Load() {
		ln.refused.Add(1)
		ln.m.log.Debug("refused a connection: too many handshakes in progress", "source", s.src.String())
	}
	return ok
}

// drop closes a connection that lost its slot to a newcomer.
func (ln *listener) drop(s *slot, why string) {
	if s == nil {
		return
	}
	s.dropped.Store(true)
	ln.refused.Add(1)
	s.kill()
	// An attack drops thousands a second: say so once a minute, not once
	// a connection.
	now := time.Now().UnixNano()
	if last := ln.warned.Load(); now-last > int64(time.Minute) && ln.warned.CompareAndSwap(last, now) {
		ln.m.log.Warn("inbound connections beyond the limits: dropping the idle ones", "kind", why, "source", s.src.String(),
			"silent", maxSilent, "silent_per_source", maxSilentPerSource,
			"handshakes", maxHandshakes, "handshakes_per_source", maxHandshakesPerSource)
	} else {
		ln.m.log.Debug("dropped an unauthenticated connection for a newcomer", "kind", why, "source", s.src.String())
	}
}

// errNoSlot is what a connection that found the handshakes full gets.
var errNoSlot = errors.New("too many handshakes in progress")

// firstByteConn moves its connection from silent to talking at the first
// byte the peer sends, and lifts the first-byte deadline then.
type firstByteConn struct {
	net.Conn
	ln     *listener
	s      *slot
	spoken bool // only the handshake, then the link's reader, read
}

func (f *firstByteConn) Read(b []byte) (int, error) {
	n, err := f.Conn.Read(b)
	if n > 0 && !f.spoken {
		f.spoken = true
		if !f.ln.speak(f.s) {
			f.Conn.Close()
			return 0, errNoSlot
		}
		f.Conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

// acceptTCP accepts TLS connections until the listener closes. A failed
// Accept (EMFILE, ENFILE, ENOBUFS, ...) is retried with backoff, whatever
// the error, as long as the listener is open: giving up would leave the
// port listening and no peer able to connect until a restart.
func (ln *listener) acceptTCP() {
	defer ln.m.wg.Done()
	var delay time.Duration
	failures := 0
	for {
		c, err := ln.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ln.m.ctx.Err() != nil {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), acceptBackoffMax)
			if failures++; failures == 1 {
				ln.m.log.Error("tcp accept failed; retrying with backoff", "addr", ln.tcp.Addr().String(), "err", err)
			} else {
				ln.m.log.Debug("tcp accept failed", "err", err, "failures", failures, "retry_in", delay)
			}
			select {
			case <-time.After(delay):
			case <-ln.m.ctx.Done():
				return
			}
			continue
		}
		if failures > 0 {
			ln.m.log.Info("tcp accept works again", "addr", ln.tcp.Addr().String(), "failures", failures)
			delay, failures = 0, 0
		}
		s := ln.admit(c.RemoteAddr(), func() { c.Close() })
		// The first byte (the ClientHello) must come soon: a real peer
		// sends it at once, an idle socket holds a slot only this long.
		c.SetReadDeadline(time.Now().Add(handshakeIdle))
		go func() {
			defer ln.slots.release(s)
			ctx, cancel := context.WithTimeout(ln.m.ctx, handshakeTimeout)
			defer cancel()
			tc := tls.Server(&firstByteConn{Conn: c, ln: ln, s: s}, ln.serverTLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				// A trust refusal was counted by VerifyConnection.
				ln.m.log.Debug("tls handshake failed", "transport", TCP, "addr", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			ln.slots.step(s)
			ln.accept(ctx, s, &tcpConn{c: tc})
		}()
	}
}

// acceptQUIC accepts QUIC connections until the listener closes. quic-go
// has completed the TLS handshake, including our peer verification, when
// Accept returns. quic-go retries temporary socket errors itself; any
// other (ENOMEM from recvmsg, say) closes its whole transport, and then
// this loop listens again on the same address, with backoff, rather than
// leave QUIC peers locked out until a restart.
func (ln *listener) acceptQUIC() {
	defer ln.m.wg.Done()
	for {
		l, _ := ln.quic()
		c, err := l.Accept(ln.m.ctx)
		if err != nil {
			if errors.Is(err, quic.ErrServerClosed) || ln.m.ctx.Err() != nil {
				return
			}
			ln.m.log.Error("quic listener failed; listening again", "addr", l.Addr().String(), "err", err)
			if !ln.relisten(l.Addr().String()) {
				return
			}
			continue
		}
		s := ln.admit(c.RemoteAddr(), func() { c.CloseWithError(0, errNoSlot.Error()) })
		go func() {
			defer ln.slots.release(s)
			ctx, cancel := context.WithTimeout(ln.m.ctx, handshakeTimeout)
			defer cancel()
			// The peer's main stream is its first word.
			ln.accept(ctx, s, &quicConn{c: c, spoke: func() error {
				if !ln.speak(s) {
					return errNoSlot
				}
				return nil
			}})
		}()
	}
}

// relistenQUIC replaces the failed QUIC transport with a new one on addr
// (the address actually bound, so a configured port 0 keeps its port),
// retrying with backoff; false when the mesh closes first.
func (ln *listener) relisten(addr string) bool {
	if _, old := ln.quic(); old != nil {
		old.Close()
		old.Conn.Close()
	}
	var delay time.Duration
	for failures := 1; ; failures++ {
		l, t, err := ln.listenQUIC(addr)
		if err == nil {
			ln.setQUIC(l, t)
			ln.m.log.Info("quic listening again", "addr", addr, "attempts", failures)
			return true
		}
		delay = min(max(2*delay, 5*time.Millisecond), acceptBackoffMax)
		ln.m.log.Debug("quic listen failed", "addr", addr, "err", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ln.m.ctx.Done():
			return false
		}
	}
}

// accept runs the acceptor's side of the Hello exchange, which the dialer
// starts as soon as its TLS handshake is done: it gets handshakeIdle.
func (ln *listener) accept(ctx context.Context, s *slot, c conn) {
	ctx, cancel := context.WithTimeout(ctx, handshakeIdle)
	defer cancel()
	l, err := ln.m.handshake(ctx, c, false)
	if err != nil {
		switch {
		case s.dropped.Load() || errors.Is(err, errNoSlot):
			// Counted and logged where it was dropped or refused.
		case !s.spoke.Load():
			// A socket that never spoke is no peer to warn about.
			ln.refused.Add(1)
			ln.m.log.Debug("closed a connection that never spoke", "transport", c.transport(), "addr", c.remoteAddr(), "err", err)
		default:
			ln.refused.Add(1)
			ln.m.log.Warn("refused a connection", "transport", c.transport(), "addr", c.remoteAddr(), "err", err)
		}
		c.close(err.Error())
		return
	}
	l.found = FoundInbound
	ln.m.links.up(l)
}
