package hosttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// tcpEcho runs a TCP server on loopback that writes back what it reads.
func tcpEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, c); c.Close() })
		}
	})
	return ln.Addr().String()
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back within wait.
func roundTrip(c net.Conn, msg string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	return readN(c, len(msg), wait)
}

func readN(c net.Conn, n int, wait time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestTCPProxyForwardsAndCounts(t *testing.T) {
	p := NewTCPProxy(t, tcpEcho(t))
	c := dialTCP(t, p.Addr())
	if got, err := roundTrip(c, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	CheckFor(t, 5*time.Second, func() error {
		if s := p.Stats(); s.Accepted != 1 || s.Live != 1 || s.ToServer != 5 || s.ToClient != 5 {
			return errors.New(p.String())
		}
		return nil
	})
	// A close is forwarded as a close: the echo server's EOF ends the pair.
	c.Close()
	CheckFor(t, 5*time.Second, func() error {
		if p.Stats().Live != 0 {
			return errors.New(p.String())
		}
		return nil
	})
}

func TestTCPProxyDelay(t *testing.T) {
	p := NewTCPProxy(t, tcpEcho(t))
	c := dialTCP(t, p.Addr())
	if _, err := roundTrip(c, "warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	const d = 150 * time.Millisecond
	p.SetDelay(ToServer, d)
	p.SetDelay(ToClient, d)
	start := time.Now()
	if got, err := roundTrip(c, "slow", 10*time.Second); err != nil || got != "slow" {
		t.Fatalf("delayed round trip: %q, %v", got, err)
	}
	if el := time.Since(start); el < 2*d {
		t.Fatalf("round trip took %v with %v each way", el, d)
	}
}

// A partition holds bytes on live connections and new connections alike,
// with neither a close nor a reset; Heal delivers what was held.
func TestTCPProxyPartitionAndHeal(t *testing.T) {
	p := NewTCPProxy(t, tcpEcho(t))
	live := dialTCP(t, p.Addr())
	if _, err := roundTrip(live, "up", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A counter goes up after its bytes are written: wait for it.
	CheckFor(t, 5*time.Second, func() error {
		if s := p.Stats(); s.ToServer != 2 || s.ToClient != 2 {
			return errors.New(p.String())
		}
		return nil
	})
	p.Partition()
	if !p.Partitioned() {
		t.Fatal("not partitioned after Partition")
	}
	before := p.Stats()
	if _, err := roundTrip(live, "held", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("live connection during a partition: %v, want a read timeout (no bytes, no close)", err)
	}
	fresh := dialTCP(t, p.Addr()) // accepted: the kernel answers the SYN
	if _, err := roundTrip(fresh, "new", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection during a partition: %v, want a read timeout", err)
	}
	if s := p.Stats(); s.ToServer != before.ToServer || s.ToClient != before.ToClient {
		t.Fatalf("bytes crossed a partition: %+v -> %+v", before, s)
	}
	p.Heal()
	if got, err := readN(live, 4, 5*time.Second); err != nil || got != "held" {
		t.Fatalf("live connection after Heal: %q, %v; want what was held", got, err)
	}
	if got, err := readN(fresh, 3, 5*time.Second); err != nil || got != "new" {
		t.Fatalf("connection made during the partition, after Heal: %q, %v", got, err)
	}
	if got, err := roundTrip(live, "again", 5*time.Second); err != nil || got != "again" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}

// Drop resets live connections; Refuse resets new ones until turned off.
func TestTCPProxyDropAndRefuse(t *testing.T) {
	p := NewTCPProxy(t, tcpEcho(t))
	c := dialTCP(t, p.Addr())
	if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Drop()
	if _, err := readN(c, 1, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Drop: %v, want the connection closed", err)
	}
	p.Refuse(true)
	// The reset may come before connect returns, or on the first read.
	if r, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second); err == nil {
		_, err = roundTrip(r, "x", 5*time.Second)
		r.Close()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("refused connection: %v, want it closed", err)
		}
	}
	p.Refuse(false)
	ok := dialTCP(t, p.Addr())
	if got, err := roundTrip(ok, "back", 5*time.Second); err != nil || got != "back" {
		t.Fatalf("after Refuse(false): %q, %v", got, err)
	}
}

// Hangup ends live connections with a FIN (the client reads EOF, not a
// reset); after a Partition, new connections then go unanswered.
func TestTCPProxyHangup(t *testing.T) {
	p := NewTCPProxy(t, tcpEcho(t))
	c := dialTCP(t, p.Addr())
	if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Partition()
	p.Hangup()
	if _, err := readN(c, 1, 5*time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("read after Hangup: %v, want EOF", err)
	}
	CheckFor(t, 5*time.Second, func() error {
		if p.Stats().Live != 0 {
			return errors.New(p.String())
		}
		return nil
	})
	fresh := dialTCP(t, p.Addr())
	if _, err := roundTrip(fresh, "new", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection after Partition and Hangup: %v, want a read timeout", err)
	}
}

// SetRate paces one direction: 20 KiB back at 40 KiB/s takes about half a
// second, and arrives whole; the other direction is not limited.
func TestTCPProxyRate(t *testing.T) {
	p := NewTCPProxy(t, tcpEcho(t))
	c := dialTCP(t, p.Addr())
	if _, err := roundTrip(c, "warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	const rate, n = 40 << 10, 20 << 10
	p.SetRate(ToClient, rate)
	msg := strings.Repeat("r", n)
	start := time.Now()
	if got, err := roundTrip(c, msg, 20*time.Second); err != nil || got != msg {
		t.Fatalf("paced round trip: %d bytes, %v", len(got), err)
	}
	// The last piece's pause comes after its write: the bytes are all
	// there after (n/piece - 1) pauses of a twentieth of a second.
	if el, least := time.Since(start), time.Duration(n/(rate/20)-1)*time.Second/20; el < least {
		t.Fatalf("%d bytes at %d B/s arrived after %v, want at least %v", n, rate, el, least)
	}
	p.SetRate(ToClient, 0)
	if got, err := roundTrip(c, "free", 5*time.Second); err != nil || got != "free" {
		t.Fatalf("after SetRate(0): %q, %v", got, err)
	}
}

// udpEcho runs a UDP server on loopback that sends each datagram back,
// and counts the distinct addresses it heard from.
func udpEcho(t *testing.T) (string, func() int) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	t.Cleanup(func() { c.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			seen[from.String()] = true
			mu.Unlock()
			c.WriteToUDP(buf[:n], from)
		}
	})
	return c.LocalAddr().String(), func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
}

func dialUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpTrip sends msg and waits up to wait for a datagram back.
func udpTrip(c *net.UDPConn, msg string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func TestUDPProxyForwardsPerClient(t *testing.T) {
	srv, heard := udpEcho(t)
	p := NewUDPProxy(t, srv)
	a, b := dialUDP(t, p.Addr()), dialUDP(t, p.Addr())
	for _, c := range []*net.UDPConn{a, b, a} {
		if got, err := udpTrip(c, "ping", 5*time.Second); err != nil || got != "ping" {
			t.Fatalf("through the proxy: %q, %v", got, err)
		}
	}
	// A counter goes up after its packet is sent: the reply may be first.
	CheckFor(t, 5*time.Second, func() error {
		if s := p.Stats(); s.Clients != 2 || s.Forwarded != [2]uint64{3, 3} {
			return fmt.Errorf("stats %+v, want 2 clients and 3 packets each way", s)
		}
		return nil
	})
	if n := heard(); n != 2 {
		t.Fatalf("the server heard %d addresses, want one per client (2)", n)
	}
}

func TestUDPProxyDropAndDelay(t *testing.T) {
	srv, _ := udpEcho(t)
	p := NewUDPProxy(t, srv)
	c := dialUDP(t, p.Addr())
	// Drop only replies: the request reaches the server, nothing comes back.
	p.SetDrop(func(d Direction, b []byte) bool { return d == ToClient && bytes.Equal(b, []byte("lost")) })
	if _, err := udpTrip(c, "lost", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dropped reply: %v, want a timeout", err)
	}
	if s := p.Stats(); s.Forwarded[ToServer] != 1 || s.Dropped[ToClient] != 1 {
		t.Fatalf("stats %+v, want 1 forwarded to the server and 1 reply dropped", s)
	}
	p.SetDropRate(1)
	if _, err := udpTrip(c, "x", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("drop rate 1: %v, want a timeout", err)
	}
	p.SetDropRate(0)
	const d = 100 * time.Millisecond
	p.SetFixedDelay(d)
	start := time.Now()
	if got, err := udpTrip(c, "slow", 5*time.Second); err != nil || got != "slow" {
		t.Fatalf("delayed: %q, %v", got, err)
	}
	if el := time.Since(start); el < 2*d {
		t.Fatalf("round trip took %v with %v each way", el, d)
	}
}

func TestUDPProxyPartitionAndHeal(t *testing.T) {
	srv, _ := udpEcho(t)
	p := NewUDPProxy(t, srv)
	c := dialUDP(t, p.Addr())
	if _, err := udpTrip(c, "up", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Partition()
	if _, err := udpTrip(c, "cut", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("during a partition: %v, want a timeout", err)
	}
	if s := p.Stats(); s.Blackholed[ToServer] != 1 || s.Forwarded[ToServer] != 1 {
		t.Fatalf("stats %+v, want the packet blackholed", s)
	}
	p.Heal()
	if got, err := udpTrip(c, "healed", 5*time.Second); err != nil || got != "healed" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}
