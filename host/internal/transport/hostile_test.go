package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/message"
)

// expectClosed waits until the host closes c (the peer reads EOF or a
// reset), discarding what arrives before.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(liveness))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the host did not close the connection", what)
	}
}

// TestHostileLoop: an event that never ends is stopped at limits.timeout;
// the instance is replaced and only its connections are closed, the other
// instance's connection keeps working, and new connections are served.
func TestHostileLoop(t *testing.T) {
	g := start(t, "transport_loop", Config{Accept: []string{"127.0.0.1:0"},
		Spec: plugin.Spec{Instances: 2, Timeout: 300 * time.Millisecond}}, nil, nil)
	a := dialTo(t, g.tr)
	waitFor(t, "conn a", func() bool { return len(g.tr.Stats().Conns) == 1 })
	b := dialTo(t, g.tr)
	waitFor(t, "conn b", func() bool { return len(g.tr.Stats().Conns) == 2 })
	if cs := g.tr.Stats().Conns; cs[0].Instance == cs[1].Instance {
		t.Fatalf("both connections on instance %d; the test needs one on each", cs[0].Instance)
	}
	a.Write([]byte("x"))
	if got := readN(t, a, 1); got != "x" {
		t.Fatalf("a read %q", got)
	}
	// An operator reads the stats while the instance is replaced (under
	// the race detector, this checks they read nothing the slot writes).
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			default:
				g.tr.Stats()
			}
		}
	}()
	defer func() { close(stop); <-polled }()
	b.Write([]byte("L"))
	expectClosed(t, b, "looping instance's connection")
	waitFor(t, "the failure to be counted", func() bool {
		st := g.tr.Stats()
		return st.InstanceFailures == 1 && st.Closes["instance failed"] == 1 && st.Restarts == 1
	})
	a.Write([]byte("y"))
	if got := readN(t, a, 1); got != "y" {
		t.Fatalf("the other instance's connection stopped serving: read %q", got)
	}
	c := dialTo(t, g.tr)
	c.Write([]byte("z"))
	if got := readN(t, c, 1); got != "z" {
		t.Fatalf("a new connection after the failure read %q", got)
	}
}

// TestHostileForeignWrite: conn_write on a connection of another instance
// (or on none) is refused with not_found and writes nothing there; within
// one instance the same write goes through.
func TestHostileForeignWrite(t *testing.T) {
	for _, tc := range []struct {
		instances int
		want      string
	}{{2, "NF\n"}, {1, "OK\n"}} {
		g := start(t, "transport_foreign", Config{Accept: []string{"127.0.0.1:0"}, Spec: plugin.Spec{Instances: tc.instances}}, nil, nil)
		a := dialTo(t, g.tr)
		waitFor(t, "conn a", func() bool { return len(g.tr.Stats().Conns) == 1 })
		b := dialTo(t, g.tr)
		waitFor(t, "conn b", func() bool { return len(g.tr.Stats().Conns) == 2 })
		if cs := g.tr.Stats().Conns; cs[1].ID != cs[0].ID+1 {
			t.Fatalf("connection ids %d, %d are not consecutive", cs[0].ID, cs[1].ID)
		}
		a.Write([]byte("x"))
		if got := readN(t, a, 3); got != tc.want {
			t.Fatalf("%d instances: the plugin saw %q, want %q", tc.instances, got, tc.want)
		}
		if tc.instances == 1 {
			if got := readN(t, b, 6); got != "stolen" {
				t.Fatalf("within one instance, b read %q", got)
			}
			continue
		}
		// b's first bytes are its own answer: nothing of a's "stolen".
		b.Write([]byte("y"))
		if got := readN(t, b, 3); got != "NF\n" {
			t.Fatalf("b read %q first, want its own NF (a foreign write got through?)", got)
		}
		if got := readN(t, a, 0); got != "" {
			t.Fatal(got)
		}
		if st := g.tr.Stats(); st.Errors < 4 || st.InstanceFailures != 0 {
			t.Errorf("stats %+v: want the 4 refused writes counted as errors and no instance failure", st)
		}
	}
}

// TestHostileDialOutsideList: conn_open with an index outside the dial
// list is refused with invalid and dials nothing.
func TestHostileDialOutsideList(t *testing.T) {
	g := start(t, "transport_baddial", Config{Accept: []string{"127.0.0.1:0"}}, nil, nil)
	c := dialTo(t, g.tr)
	if got := readN(t, c, 4); got != "INV\n" {
		t.Fatalf("the plugin saw %q, want INV (both dials refused with invalid)", got)
	}
	st := g.tr.Stats()
	if st.Errors != 2 || st.Dialed != 0 || st.DialErrors != 0 || st.InstanceFailures != 0 {
		t.Errorf("stats %+v: want 2 errors, nothing dialled, no instance failure", st)
	}
}

// TestHostileGarbage: a data result beyond what was given and an
// out-of-bounds pointer are ABI violations: the instance is replaced, its
// connection closed, the routed request fails with trap.
func TestHostileGarbage(t *testing.T) {
	g := start(t, "transport_garbage", Config{Accept: []string{"127.0.0.1:0"}}, []string{"g"}, nil)
	a := dialTo(t, g.tr)
	a.Write([]byte("x"))
	expectClosed(t, a, "garbage data result")
	waitFor(t, "the violation counted", func() bool { return g.tr.Stats().InstanceFailures == 1 })

	b := dialTo(t, g.tr)
	waitFor(t, "conn b", func() bool { return len(g.tr.Stats().Conns) == 1 })
	_, err := call(g.r, "g.x", "payload")
	if message.StatusOf(err) != abi.StatusTrap || !bytes.Contains([]byte(err.Error()), []byte("outside linear memory")) {
		t.Fatalf("request into a garbage instance: %v, want trap naming the bad range", err)
	}
	expectClosed(t, b, "after the bad pointer")
	if st := g.tr.Stats(); st.InstanceFailures != 2 || st.Closes["instance failed"] != 2 {
		t.Errorf("stats %+v: want 2 instance failures, 2 connections closed for it", st)
	}
}

// TestHostileNeverReads: a plugin that consumes nothing holds at most
// limits.read_buffer bytes of a connection; then the connection is closed.
func TestHostileNeverReads(t *testing.T) {
	const limit = 4096
	g := start(t, "transport_noread", Config{Accept: []string{"127.0.0.1:0"}, ReadBuffer: limit}, nil, nil)
	c := dialTo(t, g.tr)
	go c.Write(make([]byte, 1<<20)) // ends with an error once the host closes
	expectClosed(t, c, "a connection the plugin never reads")
	waitFor(t, "the close counted", func() bool { return g.tr.Stats().Closes["read buffer full"] == 1 })
	if st := g.tr.Stats(); st.BytesIn > limit {
		t.Errorf("the host read %d bytes for a plugin that consumed none; the limit is %d", st.BytesIn, limit)
	}
}

// TestWriteBufferLimit: a write larger than limits.write_buffer closes that
// connection only.
func TestWriteBufferLimit(t *testing.T) {
	g := start(t, "transport_echo", Config{Accept: []string{"127.0.0.1:0"}, WriteBuffer: 1024}, nil, nil)
	other := dialTo(t, g.tr)
	c := dialTo(t, g.tr)
	waitFor(t, "two connections", func() bool { return len(g.tr.Stats().Conns) == 2 })
	c.Write(append(bytes.Repeat([]byte("a"), 2000), '\n'))
	expectClosed(t, c, "a write over the buffer")
	waitFor(t, "the close counted", func() bool { return g.tr.Stats().Closes["write buffer full"] == 1 })
	other.Write([]byte("ok\n"))
	if got := readN(t, other, 3); got != "ok\n" {
		t.Fatalf("the other connection read %q", got)
	}
}

// TestInstanceFailureRedials: when the instance that owns a dial
// connection fails, the connection closes with it and the host dials the
// entry again, after a backoff.
func TestInstanceFailureRedials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	g := start(t, "transport_loop", Config{Dial: []Dial{{Raw: "tcp://" + addr, Addr: addr}},
		Spec: plugin.Spec{Instances: 1, Timeout: 300 * time.Millisecond}}, nil, nil)
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(liveness))
	first, err := ln.Accept()
	if err != nil {
		t.Fatalf("the transport did not dial: %v", err)
	}
	defer first.Close()
	first.Write([]byte("L"))
	expectClosed(t, first, "the failed instance's dial connection")
	second, err := ln.Accept()
	if err != nil {
		t.Fatalf("the transport did not dial again after its instance failed: %v", err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(liveness))
	second.Write([]byte("x"))
	if got := readN(t, second, 1); got != "x" {
		t.Fatalf("the redialled connection read %q", got)
	}
	// The dialler counts the reconnect once its dial returns, which may
	// be after the first bytes went through.
	waitFor(t, "1 instance failure and 1 reconnect counted", func() bool {
		st := g.tr.Stats()
		return st.InstanceFailures == 1 && st.Reconnects == 1 && st.Closes["instance failed"] == 1
	})
}
