package mesh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// proxyTo puts the link to far over transport through a proxy of the test
// kit. It returns the Peer to dial; freeze, which partitions the proxy (a
// frozen process, a pulled cable: nothing passes either way, no FIN, new
// connections go unanswered); kill, which over TCP also ends the live
// connections with a FIN, as the kernel does for a killed process (over
// QUIC a kill is as silent as a freeze); and the TCP proxy (nil for QUIC).
func proxyTo(t *testing.T, transport string, far *host) (peer Peer, freeze, kill func(), tcp *hosttest.TCPProxy) {
	t.Helper()
	target := far.peer(transport).Addr
	if transport == TCP {
		p := hosttest.NewTCPProxy(t, target)
		return Peer{Transport: TCP, Addr: p.Addr()}, p.Partition, func() { p.Partition(); p.Hangup() }, p
	}
	p := hosttest.NewUDPProxy(t, target)
	return Peer{Transport: QUIC, Addr: p.Addr()}, p.Partition, p.Partition, nil
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
			bPeer, freeze, kill, _ := proxyTo(t, tc.transport, b)
			a := newHost(t, "a", slowDeath, withPeers(bPeer, c.peer(tc.transport)))
			hosttest.CheckFor(t, 10*time.Second, func() error { return routeErr(a, "echo.x", 2) })

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
			hosttest.CheckFor(t, 10*time.Second, func() error {
				mu.Lock()
				defer mu.Unlock()
				if okB < 100 || okC < 100 {
					return fmt.Errorf("calls reached b %d and c %d times, want 100 each; %d failed; a %s", okB, okC, len(failed), describeRoute(a, "echo.x"))
				}
				return nil
			})

			atFault := inflight.Load()
			if tc.fault == "kill" {
				kill()
			} else {
				freeze()
			}
			faultAt.Store(time.Now().UnixNano())
			faultTime := time.Now()

			// Detection is about half a second to suspicion and a second and
			// a quarter to the close on an idle machine (probe timeout
			// 250ms); the bound leaves a 3x margin and stays well below the
			// dead time that detected it before.
			const bound = 4 * time.Second
			hosttest.CheckFor(t, bound, func() error {
				mu.Lock()
				defer mu.Unlock()
				if okAfter < 200 {
					return fmt.Errorf("%d of 200 calls started after the fault succeeded (%d failed); a %s", okAfter, len(failed), describeRoute(a, "echo.x"))
				}
				return nil
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
	bPeer, _, _, px := proxyTo(t, TCP, b)
	px.SetRate(hosttest.ToClient, 256<<10)
	a := newHost(t, "a", big, withPeers(bPeer))
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
