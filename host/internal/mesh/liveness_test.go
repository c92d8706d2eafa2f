package mesh

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// faultProxy stands between two hosts on loopback and can make the far
// host look dead: freeze drops everything in both directions while the
// sockets stay open (a frozen process, a cable pulled: no FIN, no
// acknowledgement), cut closes the TCP connections it carries (what the
// kernel does when a process is killed) and from then on accepts new ones
// without answering.
type faultProxy struct {
	t         *testing.T
	transport string
	addr      string // where to dial the far host through the proxy
	target    string
	frozen    atomic.Bool
	slow      int // bytes per second from the far host, 0: unlimited
	stop      chan struct{}
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn // TCP: both ends of every carried connection
	cut   bool
}

func newFaultProxy(t *testing.T, transport, target string) *faultProxy {
	t.Helper()
	return newFaultProxyWith(t, transport, target, nil)
}

// newFaultProxyWith is newFaultProxy with set applied before it starts.
func newFaultProxyWith(t *testing.T, transport, target string, set func(*faultProxy)) *faultProxy {
	t.Helper()
	p := &faultProxy{t: t, transport: transport, target: target, stop: make(chan struct{})}
	if set != nil {
		set(p)
	}
	if transport == TCP {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.addr = l.Addr().String()
		p.wg.Go(func() { p.acceptTCP(l) })
		t.Cleanup(func() { l.Close(); p.close() })
		return p
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = pc.LocalAddr().String()
	p.wg.Go(func() { p.relayUDP(pc.(*net.UDPConn)) })
	t.Cleanup(func() { pc.Close(); p.close() })
	return p
}

func (p *faultProxy) peer() Peer { return Peer{Transport: p.transport, Addr: p.addr} }

// freeze starts dropping everything.
func (p *faultProxy) freeze() { p.frozen.Store(true) }

// kill closes the TCP connections carried (the peer sees them end at
// once) and blackholes new ones; over UDP it is freeze.
func (p *faultProxy) kill() {
	p.freeze()
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (p *faultProxy) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// track remembers c so kill and close can end it; false when the proxy
// was cut meanwhile (c is then closed by the caller's cleanup only).
func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *faultProxy) acceptTCP(l net.Listener) {
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		if p.frozen.Load() || !p.track(in) {
			// A dead host's address: the connection is neither refused nor
			// answered; closed when the proxy closes.
			p.wg.Go(func() {
				<-p.stop
				in.Close()
			})
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(out) {
			in.Close()
			out.Close()
			continue
		}
		p.wg.Go(func() { p.pipe(out, in, 0) })
		p.wg.Go(func() { p.pipe(in, out, p.slow) })
	}
}

// pipe copies src to dst until either fails; once frozen it stops reading,
// so the sender's buffers fill as with a process that no longer runs.
func (p *faultProxy) pipe(dst, src net.Conn, rate int) {
	buf := make([]byte, 64<<10)
	if rate > 0 {
		buf = buf[:rate/20]
	}
	for {
		if p.frozen.Load() {
			<-p.stop
			return
		}
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if rate > 0 {
				// A slow path: pacing, not waiting for something to happen.
				time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			dst.Close()
			return
		}
	}
}

// relayUDP forwards datagrams between each client address and the target
// through one upstream socket per client, dropping all of them while
// frozen.
func (p *faultProxy) relayUDP(pc *net.UDPConn) {
	target, err := net.ResolveUDPAddr("udp", p.target)
	if err != nil {
		p.t.Error(err)
		return
	}
	ups := map[string]*net.UDPConn{}
	defer func() {
		for _, u := range ups {
			u.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if p.frozen.Load() {
			continue
		}
		up := ups[from.String()]
		if up == nil {
			up, err = net.DialUDP("udp", nil, target)
			if err != nil {
				continue
			}
			ups[from.String()] = up
			p.wg.Go(func() {
				b := make([]byte, 64<<10)
				for {
					n, err := up.Read(b)
					if err != nil {
						return
					}
					if !p.frozen.Load() {
						pc.WriteToUDP(b[:n], from)
					}
				}
			})
		}
		up.Write(buf[:n])
	}
}

// TestDeadProviderLeavesRotation: a calls echo, served by b and c, from
// 16 callers at once; b is cut off (frozen over either transport, its
// connection closed over TCP). The calls that were waiting on b fail as
// unreachable, and calls go on succeeding on c well before the dead time
// (10s here): a link with requests outstanding that does not answer a
// probe is taken out of rotation, then closed. Before, over QUIC, every
// caller in turn got stuck on b until the dead time.
func TestDeadProviderLeavesRotation(t *testing.T) {
	const dead = 10 * time.Second
	slowDeath := func(o *Options) { o.DeadAfter = dead; o.PingInterval = time.Second }
	for _, tc := range []struct{ transport, fault string }{{TCP, "freeze"}, {QUIC, "freeze"}, {TCP, "kill"}} {
		t.Run(tc.transport+"/"+tc.fault, func(t *testing.T) {
			b := newHost(t, "b", slowDeath)
			c := newHost(t, "c", slowDeath)
			b.serve("echo", &echoEP{prefix: "b:"}, []string{"echo"}, nil)
			c.serve("echo", &echoEP{prefix: "c:"}, []string{"echo"}, nil)
			px := newFaultProxy(t, tc.transport, b.peer(tc.transport).Addr)
			a := newHost(t, "a", slowDeath, withPeers(px.peer(), c.peer(tc.transport)))
			eventually(t, 10*time.Second, "a routes echo to b and c", func() bool {
				p := a.mesh.routes.load().lookup("echo.x")
				return p != nil && len(p.nodes) == 2
			})

			const callers = 16
			var (
				mu        sync.Mutex
				faultAt   atomic.Int64 // unix ns
				okB, okC  int
				okAfter   int // calls started after the fault that succeeded
				failed    []error
				perCaller [callers]int // failures
				inflight  atomic.Int64
			)
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					for ctx.Err() == nil {
						fa := faultAt.Load()
						inflight.Add(1)
						got, err := call(a, "echo.x", "x", 3*dead)
						inflight.Add(-1)
						mu.Lock()
						switch {
						case err != nil:
							failed = append(failed, err)
							perCaller[i]++
						case got == "b:x":
							okB++
						case got == "c:x":
							okC++
						}
						if err == nil && fa != 0 {
							okAfter++
						}
						mu.Unlock()
					}
				})
			}
			defer func() { stop(); wg.Wait() }()
			eventually(t, 10*time.Second, "calls reach both b and c", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return okB >= 100 && okC >= 100
			})

			atFault := inflight.Load()
			if tc.fault == "kill" {
				px.kill()
			} else {
				px.freeze()
			}
			faultAt.Store(time.Now().UnixNano())
			faultTime := time.Now()

			// Detection is about half a second to suspicion and a second and
			// a quarter to the close on an idle machine (probe timeout
			// 250ms); the bound leaves a 3x margin and stays well below the
			// dead time that detected it before.
			const bound = 4 * time.Second
			eventually(t, bound, "200 calls started after the fault succeed on c", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return okAfter >= 200
			})
			recovered := time.Since(faultTime)
			stop()
			wg.Wait()
			t.Logf("%d calls in flight at the fault; 200 calls after it succeeded within %v; %d failed",
				atFault, recovered.Round(time.Millisecond), len(failed))
			// The calls in flight at the fault fail, and so may calls started
			// between the fault and its detection that went to b: but a caller
			// whose call hangs makes no other, and once the hung calls fail b's
			// link is out of rotation. So at most one failure per caller
			// (the callers are the most that can be in flight), all of them
			// unreachable.
			if len(failed) > callers {
				t.Errorf("%d calls failed, more than the %d callers could have had in flight", len(failed), callers)
			}
			for i, n := range perCaller {
				if n > 1 {
					t.Errorf("caller %d failed %d times: calls went on being sent to the dead provider", i, n)
				}
			}
			for _, err := range failed {
				if s := message.StatusOf(err); s != abi.StatusUnreachable {
					t.Errorf("failed call: status %v, want unreachable: %v", s, err)
				}
			}
		})
	}
}

// TestSlowProviderIsNotDead: a request whose handler runs for longer than
// the probe timeouts is not a dead peer while the peer answers the
// probes: the call succeeds on the same link, which stays in rotation.
func TestSlowProviderIsNotDead(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			b := newHost(t, "b")
			b.serve("slow", &echoEP{prefix: "b:", delay: 2500 * time.Millisecond}, []string{"slow"}, nil)
			a := newHost(t, "a", withPeers(b.peer(tr)))
			waitRoute(t, a, "slow.x")
			l := a.mesh.links.get(b.mesh.ID())
			if l == nil {
				t.Fatal("no link from a to b")
			}
			done := make(chan error, 1)
			go func() {
				got, err := call(a, "slow.x", "x", 10*time.Second)
				if err == nil && got != "b:x" {
					err = errors.New("wrong reply " + got)
				}
				done <- err
			}()
			deadline := time.After(15 * time.Second)
			for {
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("slow call: %v", err)
					}
					if a.mesh.links.get(b.mesh.ID()) != l {
						t.Fatal("the link was replaced during the slow call")
					}
					return
				case <-deadline:
					t.Fatal("the slow call did not end")
				case <-time.After(20 * time.Millisecond):
					if l.avoid() {
						t.Fatalf("the link to b, which answers probes, was taken out of rotation during a slow call")
					}
				}
			}
		})
	}
}

// TestSlowPathIsNotDead: a big reply arriving slowly (b to a at 256 KiB/s
// over TCP, so the 1 MiB reply takes about four seconds and every frame
// behind it, pongs included, waits) is a live peer: the bytes that keep
// arriving count, and the call succeeds on the same link.
func TestSlowPathIsNotDead(t *testing.T) {
	big := func(o *Options) { o.MaxFrame = 2 << 20 }
	b := newHost(t, "b", big)
	b.serve("echo", &echoEP{prefix: "b:"}, []string{"echo"}, nil)
	px := newFaultProxyWith(t, TCP, b.peer(TCP).Addr, func(p *faultProxy) { p.slow = 256 << 10 })
	a := newHost(t, "a", big, withPeers(px.peer()))
	waitRoute(t, a, "echo.x")
	l := a.mesh.links.get(b.mesh.ID())
	payload := strings.Repeat("x", 1<<20)
	start := time.Now()
	got, err := call(a, "echo.x", payload, 60*time.Second)
	if err != nil || got != "b:"+payload {
		t.Fatalf("a 1 MiB reply over a slow path: %d bytes, %v", len(got), err)
	}
	t.Logf("1 MiB reply over 256 KiB/s took %v", time.Since(start).Round(time.Millisecond))
	if a.mesh.links.get(b.mesh.ID()) != l {
		t.Fatal("the link was closed during the slow reply")
	}
}
