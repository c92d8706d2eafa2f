package hosttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Direction is the way bytes or packets go through a proxy.
type Direction int

const (
	// ToServer is from the side that dialled the proxy to its target.
	ToServer Direction = iota
	// ToClient is from the target back to the side that dialled.
	ToClient
)

func (d Direction) String() string {
	if d == ToServer {
		return "to server"
	}
	return "to client"
}

// TCPProxy forwards TCP connections from a loopback port to a target
// address, and lets a test delay, throttle, drop and partition them at
// run time.
// Put a link through it by giving one host the proxy's Addr as its peer
// and pointing the proxy at the other host's listen address.
//
// A partition models a cut cable, not a refusing host: bytes stop flowing
// both ways on the live connections, with no FIN or RST, so each end
// learns of it only from its own timeouts; a new connection is accepted
// (the kernel answers the SYN) but goes nowhere, as a SYN lost on the wire
// would. Heal resumes both: what was read during the partition is
// delivered then, as TCP retransmits it once the cable is back, and held
// new connections are dialled through. Connections an end gave up on in
// the meantime are closed by it, and that close is forwarded as usual.
type TCPProxy struct {
	ln     net.Listener
	target atomic.Pointer[string]
	delay  [2]atomic.Int64 // nanoseconds, by Direction
	rate   [2]atomic.Int64 // bytes per second, by Direction; 0: unlimited
	refuse atomic.Bool

	mu     sync.Mutex
	conns  map[*tcpPair]struct{}
	healed chan struct{} // closed while not partitioned
	closed bool
	wg     sync.WaitGroup

	accepted atomic.Uint64
	bytes    [2]atomic.Uint64
}

// TCPStats counts what a TCPProxy did.
type TCPStats struct {
	Accepted uint64 // connections accepted
	Live     int    // connections open now
	ToServer uint64 // bytes delivered to the target
	ToClient uint64 // bytes delivered back to the dialling side
}

// NewTCPProxy listens on a free loopback port and forwards to target; the
// proxy and its connections are closed when the test ends.
func NewTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcp proxy: listen: %v", err)
	}
	p := &TCPProxy{ln: ln, conns: map[*tcpPair]struct{}{}, healed: make(chan struct{})}
	close(p.healed)
	p.target.Store(&target)
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listen address (host:port).
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// Target is the address new connections are forwarded to.
func (p *TCPProxy) Target() string { return *p.target.Load() }

// SetTarget changes where new connections go (a host restarted on another
// port); live connections keep theirs.
func (p *TCPProxy) SetTarget(addr string) { p.target.Store(&addr) }

// SetDelay holds every chunk of bytes going in direction d for delay
// before it is written on: latency, not a bandwidth limit.
func (p *TCPProxy) SetDelay(d Direction, delay time.Duration) { p.delay[d].Store(int64(delay)) }

// SetRate limits the bytes going in direction d to bytesPerSecond (0:
// no limit), written in pieces of a twentieth of a second: a slow path,
// on which whatever follows a big write waits behind it.
func (p *TCPProxy) SetRate(d Direction, bytesPerSecond int) { p.rate[d].Store(int64(bytesPerSecond)) }

// Drop closes every live connection at once with an RST on both sides, as
// a host that crashed and came back would.
func (p *TCPProxy) Drop() {
	for _, c := range p.pairs() {
		c.reset()
	}
}

// Hangup closes every live connection at once with a FIN on both sides,
// as the kernel does for the sockets of a process that was killed. With
// Partition first, new connections then go unanswered: a killed host
// whose address still accepts, as behind a load balancer or a NAT.
func (p *TCPProxy) Hangup() {
	for _, c := range p.pairs() {
		c.end(false)
	}
}

func (p *TCPProxy) pairs() []*tcpPair {
	p.mu.Lock()
	defer p.mu.Unlock()
	pairs := make([]*tcpPair, 0, len(p.conns))
	for c := range p.conns {
		pairs = append(pairs, c)
	}
	return pairs
}

// Refuse makes the proxy reset new connections as soon as it accepts them
// (on), as a port nobody listens on does, or forward them again (off).
func (p *TCPProxy) Refuse(on bool) { p.refuse.Store(on) }

// Partition cuts the cable: see the type's doc.
func (p *TCPProxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
		p.healed = make(chan struct{})
	default: // already partitioned
	}
}

// Heal ends a partition: see the type's doc.
func (p *TCPProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
	default:
		close(p.healed)
	}
}

// Partitioned reports whether the proxy is partitioned now.
func (p *TCPProxy) Partitioned() bool {
	select {
	case <-p.gate():
		return false
	default:
		return true
	}
}

// gate returns a channel that is closed while the proxy is not
// partitioned.
func (p *TCPProxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.healed
}

// waitHealed blocks while the proxy is partitioned; false if the pair
// closed meanwhile.
func (p *TCPProxy) waitHealed(done <-chan struct{}) bool {
	for {
		g := p.gate()
		select {
		case <-g:
			// Partition may have been called again between the two
			// loads: check the current gate.
			if g == p.gate() {
				return true
			}
		case <-done:
			return false
		}
	}
}

// Stats returns the proxy's counters.
func (p *TCPProxy) Stats() TCPStats {
	p.mu.Lock()
	live := len(p.conns)
	p.mu.Unlock()
	return TCPStats{Accepted: p.accepted.Load(), Live: live, ToServer: p.bytes[ToServer].Load(), ToClient: p.bytes[ToClient].Load()}
}

func (p *TCPProxy) String() string {
	s := p.Stats()
	return fmt.Sprintf("tcp proxy %s -> %s (partitioned %v, accepted %d, live %d, bytes to server %d, to client %d)",
		p.Addr(), p.Target(), p.Partitioned(), s.Accepted, s.Live, s.ToServer, s.ToClient)
}

// Close stops the proxy and closes every connection through it.
func (p *TCPProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Drop()
	p.wg.Wait()
}

func (p *TCPProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		if p.refuse.Load() {
			resetConn(c)
			continue
		}
		pair := &tcpPair{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			resetConn(c)
			return
		}
		p.conns[pair] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pair)
	}
}

// tcpPair is one proxied connection: the accepted one and the one to the
// target.
type tcpPair struct {
	client net.Conn
	mu     sync.Mutex
	server net.Conn // nil until dialled
	done   chan struct{}
	once   sync.Once
}

// reset ends the pair with an RST to both ends.
func (c *tcpPair) reset() { c.end(true) }

// end closes both connections, with an RST when rst is set (a drop or an
// error), else normally (both ends closed their side already).
func (c *tcpPair) end(rst bool) {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, conn := range []net.Conn{c.client, c.server} {
			if conn == nil {
				continue
			}
			if rst {
				resetConn(conn)
			} else {
				conn.Close()
			}
		}
	})
}

// resetConn closes c with an RST rather than a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *TCPProxy) serve(c *tcpPair) {
	defer p.wg.Done()
	defer func() {
		c.reset() // a no-op when the pipes ended the pair normally
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	// A connection accepted during a partition waits here, unanswered.
	if !p.waitHealed(c.done) {
		return
	}
	s, err := net.DialTimeout("tcp", p.Target(), 5*time.Second)
	if err != nil {
		return // the client sees its connection reset, as if refused
	}
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		s.Close()
		return
	default:
	}
	c.server = s
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(c, ToServer, c.client, s) }()
	go func() { defer wg.Done(); p.pipe(c, ToClient, s, c.client) }()
	wg.Wait()
	c.end(false)
}

// chunk is bytes read at one moment, due to be written at another.
type chunk struct {
	b   []byte
	due time.Time
	eof bool
}

// pipe copies src to dst: one goroutine reads and stamps each chunk with
// when it may leave, this one writes it then, once the proxy is not
// partitioned. A read error (EOF) is forwarded as a half close, so that
// each end sees the other's FIN as it would without the proxy.
func (p *TCPProxy) pipe(c *tcpPair, d Direction, src, dst net.Conn) {
	q := make(chan chunk, 64)
	readerDone := make(chan struct{})
	defer func() { <-readerDone }()
	go func() {
		defer close(readerDone)
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{b: buf[:n], due: time.Now().Add(time.Duration(p.delay[d].Load()))}:
				case <-c.done:
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					select {
					case q <- chunk{eof: true, due: time.Now().Add(time.Duration(p.delay[d].Load()))}:
					case <-c.done:
					}
				}
				return
			}
		}
	}()
	for {
		var ch chunk
		var ok bool
		select {
		case ch, ok = <-q:
		case <-c.done:
			return
		}
		if !ok {
			// The read side failed without EOF (reset): reset the pair.
			c.reset()
			return
		}
		if w := time.Until(ch.due); w > 0 {
			select {
			case <-time.After(w):
			case <-c.done:
				return
			}
		}
		if !p.waitHealed(c.done) {
			return
		}
		if ch.eof {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			// Drain q until the reader goroutine ends.
			for range q {
			}
			return
		}
		if !p.write(c, d, dst, ch.b) {
			return
		}
	}
}

// write writes b to dst, paced to the direction's rate if it has one;
// false when the pair ended meanwhile.
func (p *TCPProxy) write(c *tcpPair, d Direction, dst net.Conn, b []byte) bool {
	for len(b) > 0 {
		n := len(b)
		rate := p.rate[d].Load()
		if rate > 0 {
			n = min(n, max(int(rate/20), 1))
		}
		if _, err := dst.Write(b[:n]); err != nil {
			c.reset()
			return false
		}
		p.bytes[d].Add(uint64(n))
		b = b[n:]
		if rate > 0 {
			select {
			case <-time.After(time.Duration(n) * time.Second / time.Duration(rate)):
			case <-c.done:
				return false
			}
			// A partition that began meanwhile holds the rest.
			if len(b) > 0 && !p.waitHealed(c.done) {
				return false
			}
		}
	}
	return true
}
