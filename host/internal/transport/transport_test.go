package transport

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// liveness is the bound every wait in these tests polls against: about
// 3x what a loaded 2-core machine needs.
const liveness = 10 * time.Second

func wat(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "wat", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rig is a router and a transport plugin routed from it.
type rig struct {
	r  *router.Router
	tr *Transport
}

func start(t *testing.T, fixture string, cfg Config, services, topics []string) *rig {
	t.Helper()
	return startWasm(t, wat(t, fixture), cfg, services, topics)
}

// startWasm runs the transport module wasm, routed from a fresh router.
func startWasm(t *testing.T, wasm []byte, cfg Config, services, topics []string) *rig {
	t.Helper()
	engine, err := plugin.NewEngine(plugin.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	r := router.New(router.Options{})
	if cfg.Spec.Name == "" {
		cfg.Spec.Name = "wire"
	}
	cfg.Spec.Wasm = wasm
	if cfg.Spec.Grants == nil {
		cfg.Spec.Grants = []abi.Capability{abi.CapLog, abi.CapPublish, abi.CapSend, abi.CapCall}
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 10 * time.Millisecond
	}
	tr, err := New(context.Background(), engine, cfg, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	if err := r.SetRoutes(cfg.Spec.Name, tr, services, topics); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	return &rig{r: r, tr: tr}
}

// waitFor polls cond until it holds or liveness passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialTo(t *testing.T, tr *Transport) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", tr.Addrs()[0].String(), liveness)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(liveness))
	return c
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if k, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v (got %d: %.64q)", n, err, k, b[:k])
	}
	return string(b)
}

func call(r *router.Router, subject, payload string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	return r.Call(ctx, &message.Message{Kind: abi.KindRequest, Subject: subject, Payload: []byte(payload),
		Deadline: time.Now().Add(liveness), From: "test"})
}

// TestAcceptEcho runs transport_echo.wat behind an accept listener: whole
// lines come back and are published, a partial line waits in the host, a
// request routed out is written on the connection and answered.
func TestAcceptEcho(t *testing.T) {
	g := start(t, "transport_echo", Config{Accept: []string{"127.0.0.1:0"}}, []string{"x"}, nil)
	sub, err := g.r.Subscribe("wire.in", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	if _, err := call(g.r, "x.y", "hi"); message.StatusOf(err) != abi.StatusUnreachable {
		t.Fatalf("request with no connection open: err %v, want unreachable", err)
	}

	c := dialTo(t, g.tr)
	waitFor(t, "the accepted connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	if _, err := c.Write([]byte("ab\ncd")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, c, 3); got != "ab\n" {
		t.Fatalf("echo %q, want %q", got, "ab\n")
	}
	select {
	case m := <-sub.C():
		if string(m.Payload) != "ab\n" || m.From != "wire" {
			t.Fatalf("event %q from %q, want %q from wire", m.Payload, m.From, "ab\n")
		}
	case <-time.After(liveness):
		t.Fatal("no event on wire.in")
	}
	// "cd" was kept by the host: the newline completes it.
	if _, err := c.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, c, 3); got != "cd\n" {
		t.Fatalf("echo %q, want %q (the kept partial line)", got, "cd\n")
	}

	reply, err := call(g.r, "x.y", "out")
	if err != nil || string(reply) != "out" {
		t.Fatalf("request through the transport: %q, %v; want %q", reply, err, "out")
	}
	if got := readN(t, c, 3); got != "out" {
		t.Fatalf("peer read %q, want %q", got, "out")
	}

	// A request without a deadline of its own gets the plugin's timeout.
	reply, err = g.tr.Request(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "x.nd", Payload: []byte("nd")})
	if err != nil || string(reply) != "nd" {
		t.Fatalf("request without a deadline: %q, %v", reply, err)
	}
	if got := readN(t, c, 2); got != "nd" {
		t.Fatalf("peer read %q, want %q", got, "nd")
	}

	// The writer counts bytes once its write returns, which may be after
	// the peer read them.
	waitFor(t, "the counters", func() bool {
		st := g.tr.Stats()
		return st.Accepted == 1 && st.BytesIn == 6 && st.BytesOut == 11 && st.MessagesIn == 2 && st.MessagesOut == 2
	})
	c.Close()
	waitFor(t, "the close to be seen", func() bool { return g.tr.Stats().Closes["peer closed"] == 1 })
}

// TestDialReconnectAndTimer: the host dials its dial entry, the plugin's
// timer writes on it, and when the server drops it the host dials again.
func TestDialReconnectAndTimer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g := start(t, "transport_echo", Config{Dial: []Dial{{Raw: "tcp://" + ln.Addr().String(), Addr: ln.Addr().String()}}}, nil, nil)
	for round := range 2 {
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(liveness))
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("round %d: the transport did not dial: %v", round, err)
		}
		c.SetDeadline(time.Now().Add(liveness))
		if got := readN(t, c, 5); got != "tick\n" {
			t.Fatalf("round %d: server read %q, want the timer's tick", round, got)
		}
		c.Close()
	}
	waitFor(t, "a counted reconnect", func() bool { return g.tr.Stats().Reconnects >= 1 })
}

// TestDialTLS dials a tls:// entry and verifies the server with the
// configured CA.
func TestDialTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	start(t, "transport_echo", Config{Dial: []Dial{{Raw: "tls://" + addr, TLS: true, Addr: addr}},
		TLS: &tls.Config{RootCAs: pool, ServerName: "transport.test"}}, nil, nil)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	select {
	case c := <-accepted:
		defer c.Close()
		c.SetDeadline(time.Now().Add(liveness))
		if got := readN(t, c, 5); got != "tick\n" {
			t.Fatalf("over TLS the server read %q, want the tick", got)
		}
	case <-time.After(liveness):
		t.Fatal("the transport did not connect over TLS")
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "transport.test"},
		DNSNames: []string{"transport.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestConnectionsPinned: with several instances, each connection stays on
// the instance that accepted it (the fixture's per-instance "last
// connection" state answers for it), and connections spread over them.
func TestConnectionsPinned(t *testing.T) {
	g := start(t, "transport_echo", Config{Accept: []string{"127.0.0.1:0"}, Spec: plugin.Spec{Instances: 2}}, nil, nil)
	var conns []net.Conn
	for range 4 {
		conns = append(conns, dialTo(t, g.tr))
	}
	waitFor(t, "4 connections", func() bool { return len(g.tr.Stats().Conns) == 4 })
	seen := map[int]int{}
	for _, ci := range g.tr.Stats().Conns {
		seen[ci.Instance]++
	}
	if len(seen) != 2 {
		t.Errorf("connections by instance %v: want them spread over both", seen)
	}
	for i, c := range conns {
		line := strings.Repeat(string(rune('a'+i)), 3) + "\n"
		c.Write([]byte(line))
		if got := readN(t, c, 4); got != line {
			t.Errorf("conn %d: echo %q, want %q", i, got, line)
		}
	}
}

// TestAcceptRefused: a source outside allow_from, and a connection past
// limits.max_conns, are closed at once and counted; the plugin never sees
// them.
func TestAcceptRefused(t *testing.T) {
	g := start(t, "transport_echo", Config{Accept: []string{"127.0.0.1:0"},
		AllowFrom: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, nil, nil)
	c := dialTo(t, g.tr)
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a source outside allow_from was served")
	}
	if st := g.tr.Stats(); st.Refused != 1 || st.Accepted != 0 {
		t.Errorf("stats %+v: want 1 refused, 0 accepted", st)
	}

	g = start(t, "transport_echo", Config{Accept: []string{"127.0.0.1:0"}, MaxConns: 1}, nil, nil)
	first := dialTo(t, g.tr)
	waitFor(t, "the first connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	second := dialTo(t, g.tr)
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection past max_conns was served")
	}
	first.Write([]byte("ok\n"))
	if got := readN(t, first, 3); got != "ok\n" {
		t.Fatalf("the first connection read %q", got)
	}
	waitFor(t, "1 refused and 1 accepted counted", func() bool {
		st := g.tr.Stats()
		return st.Refused == 1 && st.Accepted == 1
	})
}

// TestWritesKeepOrder: many small writes queued while the writer is busy
// come out complete and in order (the writer swaps two buffers with the
// plugin's writes; reusing one it was still writing corrupted the stream).
func TestWritesKeepOrder(t *testing.T) {
	g := start(t, "transport_echo", Config{Accept: []string{"127.0.0.1:0"}}, nil, nil)
	c := dialTo(t, g.tr)
	const n = 5000
	pad := strings.Repeat("x", 200)
	go func() {
		for i := range n {
			if _, err := fmt.Fprintf(c, "line-%d-%s\n", i, pad); err != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(c)
	for i := range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if want := fmt.Sprintf("line-%d-%s\n", i, pad); line != want {
			t.Fatalf("line %d is %q, want %q", i, line, want)
		}
	}
}

// TestDataEventFillingItsPages: a data event whose bytes, doubled by the
// fixture's alloc, end exactly on a page boundary (32 KiB of whole lines in
// one read) is echoed; the fixture once built its event 7 bytes past the
// memory it had grown and trapped, closing the connection mid-stream.
func TestDataEventFillingItsPages(t *testing.T) {
	g := start(t, "transport_echo", Config{Accept: []string{"127.0.0.1:0"}}, nil, nil)
	c := dialTo(t, g.tr)
	line := strings.Repeat("y", 127) + "\n"
	block := strings.Repeat(line, 32<<10/len(line))
	if _, err := io.WriteString(c, block); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, c, len(block)); got != block {
		t.Fatalf("echoed %d bytes, not the %d written", len(got), len(block))
	}
	if n := g.tr.Stats().Closes["plugin error"]; n != 0 {
		t.Fatalf("%d connections closed by a plugin error", n)
	}
}
