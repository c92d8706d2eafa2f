package hosttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// UDPProxy forwards datagrams between clients and a server, as quic-go's
// integration-test proxy does: it listens on a loopback port, and for each
// client address opens its own socket to the server, so that the server
// sees one peer per client. A test sets at run time a delay per packet, a
// drop decision, and a partition. Put a QUIC link through it by giving one
// host the proxy's Addr as its quic:// peer and pointing the proxy at the
// other host's QUIC listen address.
//
// A partition drops every packet both ways (counted as Blackholed); Heal
// lets them through again. That is all a cut cable does to UDP: QUIC's own
// timers decide when the link is dead and its retransmissions resume it.
type UDPProxy struct {
	conn   *net.UDPConn
	server atomic.Pointer[net.UDPAddr]

	mu      sync.Mutex
	clients map[string]*udpClient
	drop    func(Direction, []byte) bool
	delay   func(Direction, []byte) time.Duration
	closed  bool
	wg      sync.WaitGroup

	partitioned atomic.Bool
	forwarded   [2]atomic.Uint64
	dropped     [2]atomic.Uint64
	blackholed  [2]atomic.Uint64
}

// UDPStats counts what a UDPProxy did with the packets it read, by
// Direction.
type UDPStats struct {
	Clients    int       // client addresses seen
	Forwarded  [2]uint64 // packets sent on
	Dropped    [2]uint64 // packets the drop decision (or a full queue) discarded
	Blackholed [2]uint64 // packets discarded by a partition
}

// udpQueue bounds the packets waiting out their delay, per client and
// direction; more are dropped (and counted), as a router's queue would.
const udpQueue = 1024

// NewUDPProxy listens on a free loopback UDP port and forwards to server;
// it is closed when the test ends.
func NewUDPProxy(t testing.TB, server string) *UDPProxy {
	t.Helper()
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatalf("udp proxy: server address %q: %v", server, err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("udp proxy: listen: %v", err)
	}
	p := &UDPProxy{conn: c, clients: map[string]*udpClient{}}
	p.server.Store(sa)
	p.wg.Add(1)
	go p.readClients()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listen address (host:port).
func (p *UDPProxy) Addr() string { return p.conn.LocalAddr().String() }

// SetServer changes where packets go (a server restarted on another
// port). Each client's socket to the old server is closed, and the next
// packet of the client opens one to the new server.
func (p *UDPProxy) SetServer(server string) error {
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return fmt.Errorf("udp proxy: server address %q: %w", server, err)
	}
	if old := p.server.Load(); old.String() == sa.String() {
		return nil
	}
	p.server.Store(sa)
	p.mu.Lock()
	old := p.clients
	p.clients = map[string]*udpClient{}
	p.mu.Unlock()
	for _, c := range old {
		c.close()
	}
	return nil
}

// SetDrop sets the function that decides whether a packet is dropped (nil:
// none is). It is called from the proxy's goroutines, one packet at a time
// per client and direction, and must not keep the packet.
func (p *UDPProxy) SetDrop(f func(Direction, []byte) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = f
}

// SetDropRate drops each packet, either way, with probability rate.
func (p *UDPProxy) SetDropRate(rate float64) {
	if rate <= 0 {
		p.SetDrop(nil)
		return
	}
	p.SetDrop(func(Direction, []byte) bool { return rand.Float64() < rate })
}

// SetDelay sets the function that says how long a packet is held before it
// is sent on (nil: not at all). Packets of one client and direction leave
// in the order they came, each no earlier than its own delay.
func (p *UDPProxy) SetDelay(f func(Direction, []byte) time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = f
}

// SetFixedDelay holds every packet, either way, for d.
func (p *UDPProxy) SetFixedDelay(d time.Duration) {
	if d <= 0 {
		p.SetDelay(nil)
		return
	}
	p.SetDelay(func(Direction, []byte) time.Duration { return d })
}

// Partition drops every packet both ways until Heal.
func (p *UDPProxy) Partition() { p.partitioned.Store(true) }

// Heal ends a partition.
func (p *UDPProxy) Heal() { p.partitioned.Store(false) }

// Stats returns the proxy's counters.
func (p *UDPProxy) Stats() UDPStats {
	p.mu.Lock()
	n := len(p.clients)
	p.mu.Unlock()
	var s UDPStats
	s.Clients = n
	for d := range 2 {
		s.Forwarded[d], s.Dropped[d], s.Blackholed[d] = p.forwarded[d].Load(), p.dropped[d].Load(), p.blackholed[d].Load()
	}
	return s
}

func (p *UDPProxy) String() string {
	s := p.Stats()
	return fmt.Sprintf("udp proxy %s -> %s (partitioned %v, clients %d, forwarded %v, dropped %v, blackholed %v)",
		p.Addr(), p.server.Load(), p.partitioned.Load(), s.Clients, s.Forwarded, s.Dropped, s.Blackholed)
}

// Close stops the proxy and its sockets.
func (p *UDPProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	clients := make([]*udpClient, 0, len(p.clients))
	for _, c := range p.clients {
		clients = append(clients, c)
	}
	p.mu.Unlock()
	p.conn.Close()
	for _, c := range clients {
		c.close()
	}
	p.wg.Wait()
}

// udpClient is one client address and its own socket to the server.
type udpClient struct {
	addr   *net.UDPAddr
	server *net.UDPConn
	queue  [2]chan udpPacket
	done   chan struct{}
	once   sync.Once
}

func (c *udpClient) close() {
	c.once.Do(func() {
		c.server.Close()
		close(c.done)
	})
}

type udpPacket struct {
	b   []byte
	due time.Time
}

func (p *UDPProxy) readClients() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		c := p.client(from)
		if c == nil {
			return
		}
		p.pass(c, ToServer, buf[:n])
	}
}

// client returns the state of client address a, opening its socket to the
// server on its first packet; nil once the proxy is closed.
func (p *UDPProxy) client(a *net.UDPAddr) *udpClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if c := p.clients[a.String()]; c != nil {
		return c
	}
	s, err := net.DialUDP("udp", nil, p.server.Load())
	if err != nil {
		// The packet is lost; the next one tries again.
		return &udpClient{addr: a, done: make(chan struct{})}
	}
	c := &udpClient{addr: a, server: s, done: make(chan struct{})}
	for d := range c.queue {
		c.queue[d] = make(chan udpPacket, udpQueue)
	}
	p.clients[a.String()] = c
	p.wg.Add(3)
	go p.readServer(c)
	go p.send(c, ToServer)
	go p.send(c, ToClient)
	return c
}

// readServer reads what the server sends to client c.
func (p *UDPProxy) readServer(c *udpClient) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.server.Read(buf)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			// ICMP port unreachable (server gone for now) surfaces as a
			// read error on a connected socket: keep reading.
			time.Sleep(time.Millisecond)
			continue
		}
		p.pass(c, ToClient, buf[:n])
	}
}

// pass applies partition, drop and delay to one packet and queues it.
func (p *UDPProxy) pass(c *udpClient, d Direction, b []byte) {
	if c.server == nil {
		p.dropped[d].Add(1)
		return
	}
	if p.partitioned.Load() {
		p.blackholed[d].Add(1)
		return
	}
	p.mu.Lock()
	drop, delay := p.drop, p.delay
	p.mu.Unlock()
	if drop != nil && drop(d, b) {
		p.dropped[d].Add(1)
		return
	}
	var due time.Time
	if delay != nil {
		if w := delay(d, b); w > 0 {
			due = time.Now().Add(w)
		}
	}
	select {
	case c.queue[d] <- udpPacket{b: append([]byte(nil), b...), due: due}:
	default:
		p.dropped[d].Add(1)
	}
}

// send writes c's queued packets in direction d, each at its time.
func (p *UDPProxy) send(c *udpClient, d Direction) {
	defer p.wg.Done()
	for {
		var pk udpPacket
		select {
		case pk = <-c.queue[d]:
		case <-c.done:
			return
		}
		if w := time.Until(pk.due); !pk.due.IsZero() && w > 0 {
			select {
			case <-time.After(w):
			case <-c.done:
				return
			}
		}
		// A partition that began while the packet waited catches it too.
		if p.partitioned.Load() {
			p.blackholed[d].Add(1)
			continue
		}
		var err error
		if d == ToServer {
			_, err = c.server.Write(pk.b)
		} else {
			_, err = p.conn.WriteToUDP(pk.b, c.addr)
		}
		if err == nil {
			p.forwarded[d].Add(1)
		}
	}
}
