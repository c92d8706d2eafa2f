package mesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// childEnv makes the test binary, re-executed by a test, run that test's
// part that must have a process of its own.
const childEnv = "PYCOMMS_MESH_TEST_CHILD"

// TestAcceptSurvivesDescriptorExhaustion runs out of file descriptors
// while a peer connects, frees them, and then has a new host join: the TCP
// accept loop must have kept going through EMFILE. The descriptor limit is
// per process, so the part with the lowered limit runs in a child process.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	if os.Getenv(childEnv) == "emfile" {
		emfileChild(t)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestAcceptSurvivesDescriptorExhaustion$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=emfile")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "emfile child: joined") {
		t.Fatalf("the child process did not run the test:\n%s", out)
	}
	t.Logf("%s", out)
}

func emfileChild(t *testing.T) {
	a := newHost(t, "a")
	if a.logs == nil {
		t.Fatal("the child needs the mesh log: run it without -test.v")
	}
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := orig
	low.Cur = uint64(len(fds) + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	free := func() {
		for _, f := range files {
			f.Close()
		}
		files = nil
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)
	}
	defer free()
	for range 64 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !strings.Contains(err.Error(), "too many open files") {
				t.Fatalf("exhausting descriptors: %v", err)
			}
			break
		}
		files = append(files, f)
	}
	if len(files) == 0 || len(files) == 64 {
		t.Fatalf("opened %d files under a limit of %d: not exhausted", len(files), low.Cur)
	}
	// Free one descriptor for a connection to a: a's Accept then needs
	// one more and gets EMFILE.
	var raw net.Conn
	for i := 0; raw == nil && i < 8 && len(files) > 0; i++ {
		files[len(files)-1].Close()
		files = files[:len(files)-1]
		raw, _ = net.Dial("tcp", a.peer(TCP).Addr)
	}
	if raw == nil {
		t.Fatal("could not connect to a with one descriptor free")
	}
	defer raw.Close()
	hosttest.CheckFor(t, 10*time.Second, func() error {
		return holds(a.logs.Contains("too many open files"), "a's log does not show an accept failing with EMFILE", a)
	})
	raw.Close()
	free()
	b := newHost(t, "b", withPeers(a.peer(TCP)))
	start := time.Now()
	hosttest.CheckFor(t, 10*time.Second, hosttest.Describe("b joins a after the descriptors are freed", func() error { return joinedErr(a, b) }))
	fmt.Printf("emfile child: joined %v after the descriptors were freed (limit was %d)\n", time.Since(start).Round(time.Millisecond), low.Cur)
}

// idleAttack keeps idle connections open to a host, from given source
// addresses: each one sends nothing, and when the host closes it, it is
// opened again after a pause, as by an attacker that wants to keep the
// host's handshake slots full. It stops, closing them all, when the test
// ends.
type idleAttack struct {
	opened atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
}

// keep runs one attacking connection: open returns a connection and a
// function that blocks until it closes, or an error.
func (a *idleAttack) keep(open func() (io.Closer, func(), error)) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			select {
			case <-a.stop:
				return
			default:
			}
			if c, wait, err := open(); err == nil {
				a.opened.Add(1)
				done := make(chan struct{})
				go func() {
					select {
					case <-a.stop:
						c.Close()
					case <-done:
					}
				}()
				wait()
				close(done)
				c.Close()
			}
			select {
			case <-a.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

func newIdleAttack(t *testing.T) *idleAttack {
	a := &idleAttack{stop: make(chan struct{})}
	t.Cleanup(func() {
		close(a.stop)
		a.wg.Wait()
	})
	return a
}

// idleTCP keeps n TCP connections to addr open from srcs, round robin,
// each sending first and then nothing.
func idleTCP(t *testing.T, addr string, n int, srcs []string, first []byte) *idleAttack {
	a := newIdleAttack(t)
	for i := range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcs[i%len(srcs)])}, Timeout: 2 * time.Second}
		a.keep(func() (io.Closer, func(), error) {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return nil, nil, err
			}
			if _, err := c.Write(first); err != nil {
				c.Close()
				return nil, nil, err
			}
			return c, func() { io.Copy(io.Discard, c) }, nil
		})
	}
	return a
}

// idleQUIC keeps n QUIC connections to addr open from srcs, round robin:
// each completes the handshake with a key of its own (the host is open to
// any) and then opens no stream.
func idleQUIC(t *testing.T, addr string, n int, srcs []string) *idleAttack {
	id, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "attacker.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := (&identity.Policy{}).ClientTLS(id)
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := newIdleAttack(t)
	var trs []*quic.Transport
	for _, src := range srcs {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
		if err != nil {
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: udp}
		trs = append(trs, tr)
		t.Cleanup(func() { tr.Close(); udp.Close() })
	}
	for i := range n {
		tr := trs[i%len(trs)]
		a.keep(func() (io.Closer, func(), error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := tr.Dial(ctx, to, cfg, quicConfig(3*time.Second))
			if err != nil {
				return nil, nil, err
			}
			return closerFunc(func() error { return c.CloseWithError(0, "") }), func() { <-c.Context().Done() }, nil
		})
	}
	return a
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// TestIdleConnectionsCannotLockHandshakes holds many idle connections
// open to a host, reopening each one the host closes, and has a new host
// join meanwhile: it must get a handshake slot within a few seconds, when
// the attacker uses other addresses (silent connections beyond 256 push
// out the idlest, from the fullest source) and when it uses the joining
// host's own address (beyond 64 from one source, the same), over TCP and
// over QUIC (connections that complete the QUIC handshake and open no
// stream).
func TestIdleConnectionsCannotLockHandshakes(t *testing.T) {
	others := make([]string, 10)
	for i := range others {
		others[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	for _, tc := range []struct {
		name      string
		transport string // of the attack and of the join
		n         int
		srcs      []string
		first     []byte // what each TCP connection sends before it falls silent
	}{
		{"tcp from other addresses", TCP, 500, others, nil},
		{"tcp from the same address", TCP, 500, []string{"127.0.0.1"}, nil},
		// A TLS record's first byte: each connection takes a handshake
		// slot, at most 16 of them from the one address.
		{"tcp one byte from another address", TCP, 500, others[:1], []byte{0x16}},
		// Fewer, as each is a full QUIC handshake: still more than the
		// slots in all and per source.
		{"quic from other addresses", QUIC, 100, others, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newHost(t, "a")
			var atk *idleAttack
			if tc.transport == TCP {
				atk = idleTCP(t, a.peer(TCP).Addr, tc.n, tc.srcs, tc.first)
			} else {
				atk = idleQUIC(t, a.peer(QUIC).Addr, tc.n, tc.srcs)
			}
			hosttest.CheckFor(t, 60*time.Second, func() error {
				if n := atk.opened.Load(); n < int64(tc.n) {
					return fmt.Errorf("the attacker opened %d of %d connections", n, tc.n)
				}
				return nil
			})
			start := time.Now()
			b := newHost(t, "b", withPeers(a.peer(tc.transport)))
			// A real peer joins in well under a second here; before these
			// limits it waited for the idle sockets' 10-second handshake
			// timeout. The margin is for the attacker's handshakes, which
			// share the CPU of a loaded 2-core machine under -race.
			hosttest.CheckFor(t, 8*time.Second, hosttest.Describe("b joins a under the attack", func() error { return joinedErr(a, b) }))
			t.Logf("b joined in %v with %d attacking connections opened so far", time.Since(start).Round(time.Millisecond), atk.opened.Load())
		})
	}
}

// TestQUICListenerComesBack breaks the QUIC listener's UDP socket, as a
// receive error quic-go does not count as temporary would (it then closes
// the whole transport), and has a new host join over QUIC: the accept loop
// must listen again on the same address instead of ending.
func TestQUICListenerComesBack(t *testing.T) {
	a := newHost(t, "a")
	addr := a.peer(QUIC).Addr
	_, tr := a.mesh.ln.quic()
	tr.Conn.Close()
	b := newHost(t, "b", withPeers(Peer{Transport: QUIC, Addr: addr}))
	hosttest.CheckFor(t, 10*time.Second, hosttest.Describe("b joins a over QUIC after a's socket broke", func() error { return joinedErr(a, b) }))
	if got := a.peer(QUIC).Addr; got != addr {
		t.Fatalf("a listens on %s after the break, want %s", got, addr)
	}
}
