//go:build linux

package main

// Fault tests with real host processes: a cluster of the fault-test kit
// (internal/hosttest/cluster) whose hosts are this test binary re-executed
// as `pycomms-host run -c FILE` (see TestMain and procCluster), on
// loopback, and the tests kill (SIGKILL) or freeze (SIGSTOP) them in the
// middle of traffic, over TCP and over QUIC. The CLI is driven in-process
// with runCLI, exactly as a user's shell would run it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// asHostEnv makes the test binary run main's run() instead of the tests.
// Its name must not start with PYCOMMS_: the node rejects unknown PYCOMMS_*
// variables as config typos.
const (
	asHostEnv     = "GO_TEST_PYCOMMS_HOST_AS_MAIN"
	asHostPPIDEnv = "GO_TEST_PYCOMMS_HOST_PPID"
)

func TestMain(m *testing.M) {
	if os.Getenv(asHostEnv) == "1" {
		runAsHost()
	}
	// cluster.Main runs the tests, and would remove a pycomms-host binary
	// that a cluster built (these tests' clusters run this binary instead:
	// procCluster).
	code := cluster.Main(m)
	if procCacheDir != "" {
		os.RemoveAll(procCacheDir)
	}
	os.Exit(code)
}

// runAsHost is main() for a host process started by procCluster. It exits
// when the test process that started it goes away (for example a test
// binary killed by -timeout, whose cleanups never run), so that no host
// outlives its test.
func runAsHost() {
	if ppid, err := strconv.Atoi(os.Getenv(asHostPPIDEnv)); err == nil {
		go func() {
			for {
				if os.Getppid() != ppid {
					os.Exit(2)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// hostBinary returns the program that runs a host: this test binary, which
// TestMain turns into pycomms-host when asHostEnv is set. Re-executing it
// needs no toolchain and no build step, and under -race the hosts run with
// the race detector too.
func hostBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("test binary: %v", err)
	}
	return exe
}

// asHost is the environment that makes this test binary run as the host
// (TestMain) and end with this test process.
func asHost() []string {
	return []string{asHostEnv + "=1", asHostPPIDEnv + "=" + strconv.Itoa(os.Getpid())}
}

// hostEnv is the environment of a host or CLI process that is no
// cluster's: asHost, extra, and this process's environment without
// PYCOMMS_* variables (hermetic) and GO_TEST_PYCOMMS_HOST_* ones.
func hostEnv(extra ...string) []string {
	env := append(asHost(), extra...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYCOMMS_") && !strings.HasPrefix(kv, "GO_TEST_PYCOMMS_HOST_") {
			env = append(env, kv)
		}
	}
	return env
}

var (
	procCacheOnce sync.Once
	procCacheDir  string
	procCacheErr  error
)

// sharedCache is one compile cache for every host process of this test
// run, so that builtin:echo (a Go plugin, seconds to compile) is compiled
// once. TestMain removes it.
func sharedCache(t *testing.T) string {
	t.Helper()
	procCacheOnce.Do(func() { procCacheDir, procCacheErr = os.MkdirTemp("", "pycomms-proc-cache-") })
	if procCacheErr != nil {
		t.Fatal(procCacheErr)
	}
	return procCacheDir
}

// Bounds. Generous: a loaded two-core machine, maybe under -race.
const (
	procRouteTimeout = 30 * time.Second // a route appears after a start or redial
	procDeadAfter    = 5 * time.Second  // the mesh default (abi/PROTOCOL.md)
	procSecret       = "process-fault-test-cluster-secret"
)

// watEchoPath is the WAT echo plugin: it upper-cases the payload of a
// request and ignores sends and events.
func watEchoPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "wat", "echo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// procCluster is cluster.New for the CLI's process tests: its hosts are
// this test binary run as pycomms-host (see TestMain and hostBinary),
// sharing one compile cache (sharedCache).
func procCluster(t *testing.T, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	opts.Mode = cluster.Process
	opts.Binary = hostBinary(t)
	opts.Env = append(opts.Env, asHost()...)
	if opts.CacheDir == "" {
		opts.CacheDir = sharedCache(t)
	}
	return cluster.New(t, opts)
}

// startProcCluster is procCluster then StartAll.
func startProcCluster(t *testing.T, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	c := procCluster(t, opts)
	c.StartAll()
	return c
}

// watPlugin is a plugins: item running the WAT echo.
func watPlugin(t *testing.T, name string, services, topics []string) string {
	return fmt.Sprintf("  - {name: %s, path: %q, services: [%s], topics: [%s], instances: 1, watch: false}\n",
		name, watEchoPath(t), strings.Join(services, ", "), strings.Join(topics, ", "))
}

// hostCLI runs one pycomms-host command, in this process as a user's shell
// would run it, against the host's control API.
func hostCLI(t *testing.T, h *cluster.Host, args ...string) result {
	return runCLI(t, "", append(args, "--control", h.ControlAddr())...)
}

// cliPeers is the host's `peers --json`.
func cliPeers(t *testing.T, h *cluster.Host) []control.PeerInfo {
	t.Helper()
	r := hostCLI(t, h, "peers", "--json")
	if r.code != 0 {
		t.Fatalf("host %s: peers --json: %+v", h, r)
	}
	var ps []control.PeerInfo
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
		t.Fatalf("host %s: peers --json: %v\n%s", h, err, r.stdout)
	}
	return ps
}

// cliPlugin is plugin name of the host's `plugins --json`.
func cliPlugin(t *testing.T, h *cluster.Host, name string) control.PluginInfo {
	t.Helper()
	r := hostCLI(t, h, "plugins", "--json")
	var ps []control.PluginInfo
	if err := json.Unmarshal([]byte(r.stdout), &ps); r.code != 0 || err != nil {
		t.Fatalf("host %s: plugins --json: %v %+v", h, err, r)
	}
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("host %s has no plugin %q: %s", h, name, r.stdout)
	return control.PluginInfo{}
}

func peerNamed(ps []control.PeerInfo, name string) (control.PeerInfo, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return control.PeerInfo{}, false
}

// procEventually is hosttest.CheckFor at 100ms intervals, described by
// what, that returns how long the check took to pass: several tests
// report how long recovery took.
func procEventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	hosttest.CheckForEvery(t, timeout, 100*time.Millisecond, hosttest.Describe(what, f))
	return time.Since(start)
}

// callOK is a poll function: the call prints want and exits 0.
func callOK(t *testing.T, h *cluster.Host, subject, data, want string) func() error {
	return func() error {
		r := hostCLI(t, h, "call", subject, data, "--timeout", "2s")
		if r.code != 0 || r.stdout != want+"\n" {
			return fmt.Errorf("call %s %s: exit %d, stdout %q, stderr %q", subject, data, r.code, r.stdout, r.stderr)
		}
		return nil
	}
}

// TestProcessPeerKilledMidRequest: B serves a slow method; a call from A is
// in flight at B when B's process is SIGKILLed. The call must fail
// (unreachable, or at worst its own timeout), never hang; A keeps serving
// and stops listing B as up.
func TestProcessPeerKilledMidRequest(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			// a dials b.
			cl := startProcCluster(t, cluster.Options{Names: []string{"b", "a"}, Transport: tr, Plugins: map[string]string{
				"b": "  - {name: echo, path: builtin:echo, services: [echo], instances: 2, watch: false, limits: {timeout: 1m}}\n",
				"a": watPlugin(t, "local", []string{"local"}, nil)}})
			b, a := cl.Host("b"), cl.Host("a")

			procEventually(t, procRouteTimeout, "a calls echo.upper served by b", callOK(t, a, "echo.upper", "hi", "HI"))

			const callTimeout = 20 * time.Second
			done := make(chan result, 1)
			go func() { done <- hostCLI(t, a, "call", "echo.sleep", "30s", "--timeout", callTimeout.String()) }()
			// Kill b once the slow call runs in its plugin, not after a guessed
			// delay.
			procEventually(t, 15*time.Second, "the slow call is in flight at b", func() error {
				select {
				case r := <-done:
					t.Fatalf("the slow call ended before b was killed: %+v", r)
				default:
				}
				if p := cliPlugin(t, b, "echo"); p.Busy < 1 {
					return fmt.Errorf("b's echo plugin: busy %d", p.Busy)
				}
				return nil
			})
			time.Sleep(100 * time.Millisecond) // let it settle in the plugin
			killed := time.Now()
			b.Kill()

			var r result
			select {
			case r = <-done:
			case <-time.After(callTimeout + 10*time.Second):
				t.Fatalf("the call still hangs %v after b was killed", time.Since(killed).Round(time.Millisecond))
			}
			elapsed := time.Since(killed)
			t.Logf("%s: call failed %v after SIGKILL of b: exit %d, %s", tr, elapsed.Round(time.Millisecond), r.code, strings.TrimSpace(r.stderr))
			if r.code != exitUnreachable && r.code != exitTimeout {
				t.Errorf("exit %d (stdout %q, stderr %q), want %d (unreachable) or %d (timeout)",
					r.code, r.stdout, r.stderr, exitUnreachable, exitTimeout)
			}
			if r.code == exitTimeout {
				t.Logf("note: the failure was only detected by the call's own %v timeout", callTimeout)
			}

			// a goes on serving its own plugin.
			if err := callOK(t, a, "local.x", "still here", "STILL HERE")(); err != nil {
				t.Errorf("a after b died: %v", err)
			}
			down := procEventually(t, 3*procDeadAfter+10*time.Second, "a no longer lists b as up", func() error {
				for _, p := range cliPeers(t, a) {
					if p.State == "up" && p.Name == "b" {
						return fmt.Errorf("b is %+v", p)
					}
				}
				return nil
			})
			t.Logf("%s: a lists b as not up %v after the call ended", tr, down.Round(time.Millisecond))
			r = hostCLI(t, a, "call", "echo.upper", "x", "--timeout", "2s")
			if r.code == 0 {
				t.Errorf("a still reaches echo on a dead b: %+v", r)
			}
		})
	}
}

// TestProcessReconnectRestoresRoutes: B is SIGKILLed and restarted with the
// same config, data dir (key) and ports; A redials it on its own and its
// calls to B's service succeed again.
func TestProcessReconnectRestoresRoutes(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			// a dials b.
			cl := startProcCluster(t, cluster.Options{Names: []string{"b", "a"}, Transport: tr, Plugins: map[string]string{
				"b": watPlugin(t, "echo", []string{"echo"}, nil), "a": watPlugin(t, "local", []string{"local"}, nil)}})
			b, a := cl.Host("b"), cl.Host("a")
			bTCP, bQUIC := b.ListenAddrs()
			procEventually(t, procRouteTimeout, "a calls echo on b", callOK(t, a, "echo.upper", "hi", "HI"))
			before, ok := peerNamed(cliPeers(t, a), "b")
			if !ok || before.State != "up" || before.Transport != tr {
				t.Fatalf("a's view of b: %+v (found %v)", before, ok)
			}

			for round := 1; round <= 2; round++ {
				b.Kill()
				// While b is down, a call fails promptly: never a hang.
				start := time.Now()
				r := hostCLI(t, a, "call", "echo.upper", "x", "--timeout", "2s")
				el := time.Since(start)
				t.Logf("%s round %d: call while b is down: exit %d after %v: %s", tr, round, r.code, el.Round(time.Millisecond), strings.TrimSpace(r.stderr))
				switch r.code {
				case exitNoHandler, exitTimeout, exitUnreachable:
				default:
					t.Errorf("round %d: call while b is down: %+v, want exit 2, 3 or 7", round, r)
				}
				if el > 2*time.Second+10*time.Second {
					t.Errorf("round %d: call with --timeout 2s while b is down returned after %v", round, el)
				}
				if err := callOK(t, a, "local.x", "ok", "OK")(); err != nil {
					t.Errorf("round %d: a while b is down: %v", round, err)
				}

				restarted := time.Now()
				if err := b.Start(); err != nil {
					t.Fatal(err)
				}
				if tcp, quic := b.ListenAddrs(); tcp != bTCP || quic != bQUIC {
					t.Fatalf("restarted b listens on tcp %s, quic %s; want %s, %s", tcp, quic, bTCP, bQUIC)
				}
				back := procEventually(t, procRouteTimeout, "a calls echo on the restarted b", callOK(t, a, "echo.upper", "again", "AGAIN"))
				t.Logf("%s round %d: route restored %v after b's restart began (%v after it was ready)",
					tr, round, time.Since(restarted).Round(time.Millisecond), back.Round(time.Millisecond))
				after, ok := peerNamed(cliPeers(t, a), "b")
				if !ok || after.State != "up" || after.ID != before.ID || after.Transport != tr {
					t.Errorf("round %d: a's view of the restarted b: %+v, want up over %s with id %s", round, after, tr, before.ID)
				}
			}
		})
	}
}

// vmKB reads a VmRSS/VmHWM-style line of /proc/PID/status, in KiB.
func vmKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/status: %v", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.Atoi(f[0])
				if err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// TestProcessFrozenPeer: B is SIGSTOPped (a stuck peer: it never reads and
// never answers). A flood of large events towards B must not block A's
// publishers or grow A's memory (events are dropped, counted), calls to B
// fail within their deadline, and A closes the dead link and goes on
// serving. After SIGCONT, B is reached again.
func TestProcessFrozenPeer(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			// a dials b.
			c := startProcCluster(t, cluster.Options{Names: []string{"b", "a"}, Transport: tr, Plugins: map[string]string{
				"b": watPlugin(t, "echo", []string{"echo"}, []string{"flood.>"}), "a": watPlugin(t, "local", []string{"local"}, nil)}})
			b, a := c.Host("b"), c.Host("a")
			procEventually(t, procRouteTimeout, "a calls echo on b", callOK(t, a, "echo.upper", "hi", "HI"))
			cl := a.Client
			procEventually(t, procRouteTimeout, "a learns b's topic", func() error {
				n, err := cl.Publish(context.Background(), "flood.probe", nil, nil)
				if err != nil || n != 1 {
					return fmt.Errorf("receivers %d, %v", n, err)
				}
				return nil
			})
			baseRSS := vmKB(t, a.PID(), "VmRSS")

			if err := b.Freeze(); err != nil { // SIGSTOP
				t.Fatal(err)
			}
			// kill(2) returns before the kernel has stopped every thread:
			// wait until /proc says the process is stopped ("T").
			procEventually(t, 10*time.Second, "b is stopped", func() error {
				stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.PID()))
				if err != nil {
					return err
				}
				if _, rest, ok := strings.Cut(string(stat), ") "); !ok || !strings.HasPrefix(rest, "T") {
					return fmt.Errorf("state %q", rest[:min(len(rest), 1)])
				}
				return nil
			})
			stopped := time.Now()

			// A call to the frozen b fails at its deadline.
			start := time.Now()
			r := hostCLI(t, a, "call", "echo.upper", "x", "--timeout", "1s")
			el := time.Since(start)
			t.Logf("%s: call to frozen b: exit %d after %v: %s", tr, r.code, el.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if r.code != exitTimeout && r.code != exitUnreachable && r.code != exitBusy {
				t.Errorf("call to frozen b: exit %d, want %d, %d or %d: %+v", r.code, exitTimeout, exitUnreachable, exitBusy, r)
			}
			if el > 1*time.Second+5*time.Second {
				t.Errorf("call with --timeout 1s returned after %v", el)
			}

			// Watch a's memory and its view of b while the flood runs.
			var maxDropped atomic.Uint64
			watchCtx, stopWatch := context.WithCancel(context.Background())
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				for watchCtx.Err() == nil {
					ctx, cancel := context.WithTimeout(watchCtx, 5*time.Second)
					ps, err := cl.Peers(ctx)
					cancel()
					if err == nil {
						if p, ok := peerNamed(ps, "b"); ok && p.Dropped > maxDropped.Load() {
							maxDropped.Store(p.Dropped)
						}
					}
					select {
					case <-watchCtx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()

			// Calls with short timeouts during the flood.
			type callResult struct {
				start   time.Time
				elapsed time.Duration
				r       result
			}
			var calls []callResult
			callsDone := make(chan struct{})
			go func() {
				defer close(callsDone)
				for watchCtx.Err() == nil {
					s := time.Now()
					r := runCLI(t, "", "call", "echo.upper", "x", "--timeout", "500ms", "--control", a.ControlAddr())
					calls = append(calls, callResult{s, time.Since(s), r})
					select {
					case <-watchCtx.Done():
					case <-time.After(200 * time.Millisecond):
					}
				}
			}()

			const (
				events     = 2000
				size       = 64 << 10
				publishers = 4
			)
			payload := bytes.Repeat([]byte("e"), size)
			var (
				published, receivers atomic.Int64
				slowest              atomic.Int64
				pubErr               atomic.Value
			)
			floodStart := time.Now()
			var wg sync.WaitGroup
			for range publishers {
				wg.Go(func() {
					for published.Add(1) <= events {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						s := time.Now()
						n, err := cl.Publish(ctx, "flood.x", payload, nil)
						d := time.Since(s)
						cancel()
						if err != nil {
							pubErr.CompareAndSwap(nil, err)
							return
						}
						receivers.Add(int64(n))
						for {
							old := slowest.Load()
							if int64(d) <= old || slowest.CompareAndSwap(old, int64(d)) {
								break
							}
						}
					}
				})
			}
			wg.Wait()
			floodTime := time.Since(floodStart)
			if err := pubErr.Load(); err != nil {
				t.Fatalf("publish to a with b frozen: %v", err)
			}
			hwm := vmKB(t, a.PID(), "VmHWM")
			rss := vmKB(t, a.PID(), "VmRSS")
			// Keep the calls and the watcher going until a has given up on
			// the link, so both outcomes are seen.
			closeMsgs := []string{"peer silent, closing its link", "peer stopped reading, closing its link", "peer does not answer probes, closing its link", "peer disconnected"}
			procEventually(t, 3*procDeadAfter+15*time.Second, "a closes its link to the frozen b", func() error {
				if a.Records.FirstAt(stopped, closeMsgs...).IsZero() {
					return errors.New("no link close logged")
				}
				return nil
			})
			closedAt := a.Records.FirstAt(stopped, closeMsgs...)
			stopWatch()
			<-watched
			<-callsDone

			t.Logf("%s: %d × %d KiB published in %v (slowest publish %v), %d delivered (queued) to b, b's dropped counter reached %d",
				tr, events, size>>10, floodTime.Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond),
				receivers.Load(), maxDropped.Load())
			t.Logf("%s: a's RSS %d MiB before, %d MiB after, peak %d MiB; link closed %v after SIGSTOP (%q)",
				tr, baseRSS>>10, rss>>10, hwm>>10, closedAt.Sub(stopped).Round(time.Millisecond), closeReason(a.Records))
			if d := time.Duration(slowest.Load()); d > 5*time.Second {
				t.Errorf("a publish blocked for %v with b frozen", d)
			}
			if hwm > 300<<10 {
				t.Errorf("a's peak RSS %d MiB, want < 300 MiB: a stuck peer grows the sender's memory", hwm>>10)
			}
			if maxDropped.Load() == 0 && a.Records.FirstAt(stopped, closeMsgs[:3]...).IsZero() {
				t.Errorf("neither a dropped event for b nor a link closed as silent, stuck or not answering probes")
			}
			if closedAt.Sub(stopped) > 3*procDeadAfter+10*time.Second {
				t.Errorf("a closed its link to the frozen b only %v after SIGSTOP", closedAt.Sub(stopped))
			}
			for _, c := range calls {
				if c.elapsed > 500*time.Millisecond+5*time.Second {
					t.Errorf("call with --timeout 500ms returned after %v", c.elapsed)
				}
				ok := c.r.code == exitTimeout || c.r.code == exitUnreachable || c.r.code == exitBusy ||
					// Once the link is gone, so is the route to echo.
					(c.r.code == exitNoHandler && !c.start.Before(closedAt.Add(-time.Second)))
				if !ok {
					t.Errorf("call at +%v: exit %d (%s)", c.start.Sub(stopped).Round(time.Millisecond), c.r.code, strings.TrimSpace(c.r.stderr))
				}
			}
			t.Logf("%s: %d calls during the freeze, all failed within their deadline", tr, len(calls))

			// a still serves its own plugin.
			if err := callOK(t, a, "local.x", "alive", "ALIVE")(); err != nil {
				t.Errorf("a with b frozen: %v", err)
			}
			// b thaws: a reaches it again (it redials; b drains what its kernel
			// buffered and accepts).
			if err := b.Thaw(); err != nil { // SIGCONT
				t.Fatal(err)
			}
			back := procEventually(t, procRouteTimeout+procDeadAfter, "a reaches b again after SIGCONT", callOK(t, a, "echo.upper", "thawed", "THAWED"))
			t.Logf("%s: b reached again %v after SIGCONT", tr, back.Round(time.Millisecond))
			b.Kill()
			if err := callOK(t, a, "local.x", "alive", "ALIVE")(); err != nil {
				t.Errorf("a after b was killed: %v", err)
			}
		})
	}
}

// closeReason is the first link-close message a logged, for the test log.
func closeReason(logs *hosttest.LogRecords) string {
	for _, msg := range []string{"peer silent, closing its link", "peer stopped reading, closing its link", "peer does not answer probes, closing its link"} {
		if _, ok := logs.Find(msg); ok {
			return msg
		}
	}
	if r, ok := logs.Find("peer disconnected"); ok {
		return fmt.Sprint(r.Fields["cause"])
	}
	return ""
}

// TestProcessThreeHostChainCLI is the acceptance scenario through the real
// CLI and real processes: A lists only B, B lists only C; C serves echo
// and subscribes to news.>. A reaches C's service, sends to C by name, and
// publishes to C's subscription, all relayed by B.
func TestProcessThreeHostChainCLI(t *testing.T) {
	for _, tt := range []struct{ ab, bc string }{{"tcp", "tcp"}, {"quic", "tcp"}} {
		t.Run("a-"+tt.ab+"-b-"+tt.bc+"-c", func(t *testing.T) {
			// b dials c over tt.bc, a dials b over tt.ab.
			cl := startProcCluster(t, cluster.Options{Names: []string{"c", "b", "a"}, Transports: map[string]string{"b": tt.bc, "a": tt.ab},
				Plugins: map[string]string{"c": watPlugin(t, "upper", []string{"echo"}, []string{"news.>"})}})
			c, b, a := cl.Host("c"), cl.Host("b"), cl.Host("a")

			took := procEventually(t, procRouteTimeout, "call on a served by c", callOK(t, a, "echo.upper", "hi", "HI"))
			t.Logf("chain up %v after the hosts started", took.Round(time.Millisecond))
			if r := hostCLI(t, a, "call", "echo.upper", "hi"); r.code != 0 || r.stdout != "HI\n" || r.stderr != "" {
				t.Errorf("call echo.upper hi: %+v", r)
			}

			before := cliPlugin(t, c, "upper").Calls
			if r := hostCLI(t, a, "send", "--node", "c", "echo.note", "x"); r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Fatalf("send --node c: %+v", r)
			}
			procEventually(t, 10*time.Second, "c's plugin handles the send", func() error {
				if got := cliPlugin(t, c, "upper").Calls; got <= before {
					return fmt.Errorf("c's plugin calls %d, before the send %d", got, before)
				}
				return nil
			})

			ps := cliPeers(t, a)
			if p, ok := peerNamed(ps, "b"); !ok || p.State != "up" || p.Transport != tt.ab || !p.Dialed || p.Config != b.PeerURL(tt.ab) {
				t.Errorf("a's link to b: %+v (found %v), want up over %s, dialled from %s", p, ok, tt.ab, b.PeerURL(tt.ab))
			}
			// c is relayed via b until a and c, which learnt of each other
			// through b, link directly (gossip on the dialling side).
			if p, ok := peerNamed(ps, "c"); !ok || (p.State != "relayed" || p.Via != "b") && (p.State != "up" || p.Found != "gossip" && p.Found != "inbound") {
				t.Errorf("a's view of c: %+v (found %v), want relayed via b or linked by gossip", p, ok)
			}
			if r := hostCLI(t, a, "peers"); r.code != 0 || !strings.Contains(r.stdout, "via b") && !strings.Contains(r.stdout, "gossip") && !strings.Contains(r.stdout, "inbound") {
				t.Errorf("peers table: %+v", r)
			}

			// pub prints nothing; with --json the number of receivers.
			procEventually(t, 10*time.Second, "pub on a reaches c's subscriber", func() error {
				r := hostCLI(t, a, "pub", "news.x", "hello", "--json")
				if r.code != 0 || r.stdout != `{"receivers":1}`+"\n" {
					return fmt.Errorf("pub --json: %+v", r)
				}
				return nil
			})
			if r := hostCLI(t, a, "pub", "news.x", "hello"); r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Errorf("pub: %+v", r)
			}
			if r := hostCLI(t, a, "pub", "nobody.listens", "x", "--json"); r.code != 0 || r.stdout != `{"receivers":0}`+"\n" {
				t.Errorf("pub to no subscriber: %+v", r)
			}
		})
	}
}

// TestProcessGossipChain: five real hosts on loopback, mDNS off, each
// listing only the host before it (a chain of seeds, beyond what interest
// reaches). Every host learns every other by membership; a calls the
// plugin four links away, linking to it first; a frozen host three links
// from a is shown lost after the dead time, a killed one at once, and a
// host that stops cleanly is shown left.
func TestProcessGossipChain(t *testing.T) {
	// b dials a, c dials b, and so on.
	cl := startProcCluster(t, cluster.Options{Names: []string{"a", "b", "c", "d", "e"},
		Plugins: map[string]string{"e": watPlugin(t, "upper", []string{"echo"}, nil)}})
	a, b, c, d := cl.Host("a"), cl.Host("b"), cl.Host("c"), cl.Host("d")
	took := procEventually(t, procRouteTimeout, "a knows e as a member four links away", func() error {
		p, ok := peerNamed(cliPeers(t, a), "e")
		if !ok || p.State != "member" || p.Found != "gossip" || p.Hops != 4 {
			return fmt.Errorf("a's view of e: %+v (listed %v)", p, ok)
		}
		return nil
	})
	t.Logf("a learnt of e, four links away, %v after the hosts started", took.Round(time.Millisecond))
	if r := hostCLI(t, a, "peers"); r.code != 0 || !strings.Contains(r.stdout, "4 links away") {
		t.Errorf("peers table on a: %+v", r)
	}
	procEventually(t, 10*time.Second, "a's health counts the four others", func() error {
		if r := hostCLI(t, a, "health"); r.code != 0 || !strings.Contains(r.stdout, "4 other hosts alive") {
			return fmt.Errorf("health on a: %+v", r)
		}
		return nil
	})

	if r := hostCLI(t, a, "call", "echo.upper", "far", "--timeout", "10s"); r.code != 0 || r.stdout != "FAR\n" {
		t.Fatalf("a calls e's plugin, four links away: %+v", r)
	}
	if p, _ := peerNamed(cliPeers(t, a), "e"); p.State != "up" || p.Found != "gossip" {
		t.Errorf("a's link to e after the call: %+v, want up, found by gossip", p)
	}

	// A frozen host (SIGSTOP: sockets open, nothing answers) three links
	// from a: its neighbours close their links after the dead time, and
	// their records tell a.
	start := time.Now()
	if err := d.Freeze(); err != nil { // SIGSTOP
		t.Fatal(err)
	}
	// The promise is the dead time (c closes its link to the silent d
	// after at most that, and its record reaches a ~50 ms per link); the
	// bound is the project's ~3x margin for a loaded 2-core machine, and
	// the poll runs a little past it so that a slow pass reports its time.
	took = procEventually(t, 3*procDeadAfter+5*time.Second, "a shows the frozen d lost", func() error {
		if p, ok := peerNamed(cliPeers(t, a), "d"); ok && p.State != "lost" {
			return fmt.Errorf("a's view of d: %+v", p)
		}
		return nil
	})
	t.Logf("SIGSTOPped d, three links from a, shown lost on a after %v (dead time %v)", took.Round(time.Millisecond), procDeadAfter)
	if took > 3*procDeadAfter {
		t.Errorf("d lost after %v, more than 3 x the dead time %v", took, procDeadAfter)
	}
	d.Kill()

	// A killed host two links from a: its neighbours' reads end at once.
	start = time.Now()
	c.Kill()
	took = procEventually(t, 3*procDeadAfter, "a shows the killed c lost", func() error {
		if p, ok := peerNamed(cliPeers(t, a), "c"); ok && p.State != "lost" {
			return fmt.Errorf("a's view of c: %+v", p)
		}
		return nil
	})
	t.Logf("SIGKILLed c, two links from a, shown lost on a after %v", took.Round(time.Millisecond))
	if took > procDeadAfter {
		t.Errorf("c lost after %v, more than the dead time %v", took, procDeadAfter)
	}
	if r := hostCLI(t, a, "peers"); r.code != 0 || !strings.Contains(r.stdout, "lost") {
		t.Errorf("peers table on a after c died: %+v", r)
	}
	if at := a.Records.FirstAt(start, "peer lost: no chain of live links reaches it"); at.IsZero() {
		t.Error("a logged no \"peer lost\" for c")
	}

	// A host that stops cleanly is shown left.
	start = time.Now()
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	procEventually(t, 10*time.Second, "a shows b left", func() error {
		if p, ok := peerNamed(cliPeers(t, a), "b"); ok && p.State != "left" {
			return fmt.Errorf("a's view of b: %+v", p)
		}
		return nil
	})
	if at := a.Records.FirstAt(start, "peer left"); at.IsZero() {
		t.Error("a logged no \"peer left\" for b")
	}
	// a still reaches e over the link it made.
	if r := hostCLI(t, a, "call", "echo.upper", "still"); r.code != 0 || r.stdout != "STILL\n" {
		t.Errorf("a -> e after b, c and d went: %+v", r)
	}
}
