//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestProcessKilledProviderLeavesRotation: b and c serve echo; a calls it
// from 16 callers at once through its control API; b is SIGKILLed. Over
// QUIC a killed process sends nothing (no FIN), so before, every caller in
// turn got stuck on b until the dead time and throughput fell to a few
// calls a second. Now calls go on succeeding on c within a few seconds
// (the dead time is 15s here, so it is not what saves them), and the
// failed calls are at most one per caller, all unreachable.
func TestProcessKilledProviderLeavesRotation(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			c := procCluster(t, cluster.Options{Names: []string{"b", "c", "a"}, Topology: cluster.None,
				DeadAfter: 15 * time.Second, Plugins: map[string]string{"b": cluster.WatEcho("echo", "echo"), "c": cluster.WatEcho("echo", "echo")}})
			b, cc, a := c.Host("b"), c.Host("c"), c.Host("a")
			for _, h := range []*cluster.Host{b, cc} {
				if err := h.Start(); err != nil {
					t.Fatal(err)
				}
			}
			a.SetPeers(b.PeerURL(tr), cc.PeerURL(tr))
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			procEventually(t, procRouteTimeout, "a links to b and c, both serving echo", func() error {
				ps, err := a.Peers()
				if err != nil {
					return err
				}
				n := 0
				for _, p := range ps {
					if p.State == "up" && len(p.Services) > 0 {
						n++
					}
				}
				if n != 2 {
					return fmt.Errorf("%d providers up", n)
				}
				return nil
			})
			cl := a.Client
			defer cl.CloseIdleConnections()

			const callers = 16
			var (
				ok, okAfter atomic.Int64
				killedAt    atomic.Int64
				mu          sync.Mutex
				failed      []error
				perCaller   [callers]int
			)
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					for ctx.Err() == nil {
						after := killedAt.Load() != 0
						out, err := cl.Call(ctx, "echo.upper", []byte("x"), nil, 60*time.Second)
						if ctx.Err() != nil {
							return
						}
						if err == nil && string(out) != "X" {
							err = fmt.Errorf("reply %q", out)
						}
						if err != nil {
							mu.Lock()
							failed = append(failed, err)
							perCaller[i]++
							mu.Unlock()
							continue
						}
						ok.Add(1)
						if after {
							okAfter.Add(1)
						}
					}
				})
			}
			defer func() { stop(); wg.Wait() }()
			procEventually(t, 30*time.Second, "calls flow", func() error {
				if n := ok.Load(); n < 500 {
					return fmt.Errorf("%d calls", n)
				}
				return nil
			})
			b.Kill()
			killed := time.Now()
			killedAt.Store(killed.UnixNano())
			// Detection takes about 1.25s over QUIC on an idle machine (probe
			// timeout 250ms) and is immediate over TCP; 3x margin, well below
			// the 15s dead time.
			const bound = 4 * time.Second
			recovered := procEventually(t, bound, "200 calls started after the kill succeed", func() error {
				if n := okAfter.Load(); n < 200 {
					return fmt.Errorf("%d calls succeeded", n)
				}
				return nil
			})
			stop()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Logf("%s: 200 calls succeeded on c %v after SIGKILL of b; %d calls failed", tr, recovered.Round(time.Millisecond), len(failed))
			if len(failed) > callers {
				t.Errorf("%d calls failed, more than the %d callers could have had in flight", len(failed), callers)
			}
			for i, n := range perCaller {
				if n > 1 {
					t.Errorf("caller %d failed %d times: calls went on being sent to the dead provider", i, n)
				}
			}
			for _, err := range failed {
				var me *message.Error
				if !errors.As(err, &me) || me.Status != abi.StatusUnreachable {
					t.Errorf("failed call, want unreachable: %v", err)
				}
			}
		})
	}
}
