package gossipbaseline

import (
	"fmt"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// bindAttempts bounds the retries of newCountingTransport when the port the
// kernel gave the TCP listener is already taken for UDP.
const bindAttempts = 20

// countingTransport is a memberlist.NodeAwareTransport that delegates to a
// memberlist.NetTransport bound to 127.0.0.1 and counts the bytes this member
// sends: UDP payloads handed to WriteTo/WriteToAddress, and everything written
// on TCP streams, both those it dials and those it accepts. IP, UDP and TCP
// headers are not counted.
type countingTransport struct {
	inner *memberlist.NetTransport
	port  int

	sent atomic.Uint64

	// streamCh carries the accepted conns, wrapped, to memberlist. A
	// goroutine (forward) moves them from inner.StreamCh().
	streamCh chan net.Conn
	closing  chan struct{} // closed first in Shutdown: stop handing conns over
	stopped  chan struct{} // closed once inner is shut down: forward exits
	wg       sync.WaitGroup
	once     sync.Once
	err      error
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

// newCountingTransport binds a NetTransport on 127.0.0.1. With BindPort 0 the
// NetTransport listens on TCP port 0 and then binds UDP to the port the kernel
// picked for TCP; that fails when the UDP port is taken, so we retry with a
// fresh TCP port. The bound port is then advertised explicitly.
func newCountingTransport(logger *log.Logger) (*countingTransport, error) {
	var (
		nt  *memberlist.NetTransport
		err error
	)
	for range bindAttempts {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"},
			BindPort:  0,
			Logger:    logger,
		})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
	if err != nil {
		return nil, fmt.Errorf("binding a TCP+UDP port pair on 127.0.0.1: %w", err)
	}
	t := &countingTransport{
		inner:    nt,
		port:     nt.GetAutoBindPort(),
		streamCh: make(chan net.Conn),
		closing:  make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	t.wg.Add(1)
	go t.forward()
	return t, nil
}

// forward wraps the conns the inner transport accepts and hands them to
// memberlist. It keeps draining the inner channel until the inner transport
// is shut down, because NetTransport's accept loop blocks on that channel
// and NetTransport.Shutdown waits for the accept loop.
func (t *countingTransport) forward() {
	defer t.wg.Done()
	in := t.inner.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.streamCh <- &countingConn{Conn: c, n: &t.sent}:
			case <-t.closing:
				_ = c.Close()
			}
		case <-t.stopped:
			return
		}
	}
}

// Sent returns the bytes this transport has sent so far.
func (t *countingTransport) Sent() uint64 { return t.sent.Load() }

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ts, err := t.inner.WriteTo(b, addr)
	if err == nil {
		t.sent.Add(uint64(len(b)))
	}
	return ts, err
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	ts, err := t.inner.WriteToAddress(b, addr)
	if err == nil {
		t.sent.Add(uint64(len(b)))
	}
	return ts, err
}

// PacketCh implements memberlist.Transport.
func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.inner.PacketCh() }

// DialTimeout implements memberlist.Transport.
func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.sent}, nil
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.sent}, nil
}

// StreamCh implements memberlist.Transport.
func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport. It is idempotent and returns once
// the listeners and the forwarding goroutine are gone.
func (t *countingTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.closing)
		t.err = t.inner.Shutdown()
		close(t.stopped)
		t.wg.Wait()
	})
	return t.err
}

// countingConn counts the bytes written on a stream. It embeds only the
// net.Conn interface, so io.Copy and friends cannot bypass Write through
// ReadFrom.
type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(uint64(n))
	return n, err
}
