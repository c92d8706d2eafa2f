//go:build linux

package main

// Fault tests with real host processes: each host is this test binary
// re-executed as `pycomms-host run -c FILE` (see TestMain), on loopback,
// and the tests kill (SIGKILL) or freeze (SIGSTOP) them in the middle of
// traffic, over TCP and over QUIC. The CLI is driven in-process with
// runCLI, exactly as a user's shell would run it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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
	// cluster.Main runs the tests and removes the pycomms-host binary
	// that the tests using hosttest/cluster's Process mode build.
	code := cluster.Main(m)
	if procCacheDir != "" {
		os.RemoveAll(procCacheDir)
	}
	os.Exit(code)
}

// runAsHost is main() for a host process started by startHost. It exits
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
	procStartTimeout = 120 * time.Second // start, including a cold plugin compile
	procRouteTimeout = 30 * time.Second  // a route appears after a start or redial
	procDeadAfter    = 5 * time.Second   // the mesh default (abi/PROTOCOL.md)
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

// procConfig is one host's pycomms.yaml.
type procConfig struct {
	name    string
	dir     string   // the host's directory: config, data
	listen  string   // host:port for both transports; "" is 127.0.0.1:0
	peers   []string // peer URLs
	plugins string   // the YAML list items under plugins:, indented by 2
}

func (c procConfig) write(t *testing.T) string {
	t.Helper()
	listen := c.listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	peers := make([]string, len(c.peers))
	for i, p := range c.peers {
		peers[i] = strconv.Quote(p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "node: {name: %s}\n", c.name)
	fmt.Fprintf(&b, "control: 127.0.0.1:0\n")
	fmt.Fprintf(&b, "listen: {tcp: %q, quic: %q}\n", listen, listen)
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(c.dir, "data"))
	fmt.Fprintf(&b, "cache_dir: %q\n", sharedCache(t))
	fmt.Fprintf(&b, "log: {format: json, level: debug}\n")
	fmt.Fprintf(&b, "trust: {secret: %q}\n", procSecret)
	fmt.Fprintf(&b, "peers: [%s]\n", strings.Join(peers, ", "))
	if c.plugins == "" {
		b.WriteString("plugins: []\n")
	} else {
		b.WriteString("plugins:\n" + c.plugins)
	}
	path := filepath.Join(c.dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// watPlugin is a plugins: item running the WAT echo.
func watPlugin(t *testing.T, name string, services, topics []string) string {
	return fmt.Sprintf("  - {name: %s, path: %q, services: [%s], topics: [%s], instances: 1, watch: false}\n",
		name, watEchoPath(t), strings.Join(services, ", "), strings.Join(topics, ", "))
}

// hostProc is one running `pycomms-host run` process.
type hostProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	control string        // host:port of the control API
	tcp     string        // host:port of the TCP mesh listener
	quic    string        // host:port of the QUIC mesh listener
	logs    *procLogs
}

// procLogs collects a host's JSON log lines from its stderr.
type procLogs struct {
	mu      sync.Mutex
	partial []byte
	lines   []map[string]any
	raw     []string
	changed chan struct{} // closed and replaced on every new line
}

func newProcLogs() *procLogs { return &procLogs{changed: make(chan struct{})} }

func (l *procLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.raw = append(l.raw, line)
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			m["_at"] = time.Now()
			l.lines = append(l.lines, m)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// find returns the first log record with message msg, if any, and a
// channel that is closed when more lines arrive.
func (l *procLogs) find(msg string) (map[string]any, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if m["msg"] == msg {
			return m, l.changed
		}
	}
	return nil, l.changed
}

// firstAt is when a record with one of msgs was first logged at or after
// since (zero: never).
func (l *procLogs) firstAt(since time.Time, msgs ...string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		for _, msg := range msgs {
			if m["msg"] == msg && !m["_at"].(time.Time).Before(since) {
				return m["_at"].(time.Time)
			}
		}
	}
	return time.Time{}
}

// rawIndex is the index of the first stderr line containing s, or -1.
func (l *procLogs) rawIndex(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, line := range l.raw {
		if strings.Contains(line, s) {
			return i
		}
	}
	return -1
}

// from returns up to n stderr lines from index i.
func (l *procLogs) from(i, n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw[i:min(len(l.raw), i+n)], "\n")
}

func (l *procLogs) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.raw)-n)
	return strings.Join(l.raw[from:], "\n")
}

// startHost runs `pycomms-host run -c cfg` and waits until the node has
// logged its mesh listeners and its control address, all on loopback. The
// process is killed when the test ends.
func startHost(t *testing.T, name, cfg string) *hostProc {
	t.Helper()
	cmd := exec.Command(hostBinary(t), "run", "-c", cfg)
	cmd.Dir = filepath.Dir(cfg)
	env := []string{asHostEnv + "=1", asHostPPIDEnv + "=" + strconv.Itoa(os.Getpid())}
	for _, kv := range os.Environ() {
		// Hermetic: no PYCOMMS_* override from the caller's environment.
		if !strings.HasPrefix(kv, "PYCOMMS_") && !strings.HasPrefix(kv, "GO_TEST_PYCOMMS_HOST_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdout = io.Discard
	h := launchHost(t, name, cmd, "")
	for what, addr := range map[string]string{"tcp": h.tcp, "quic": h.quic, "control": h.control} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("host %s: %s address %q is not a loopback host:port (%v)", name, what, addr, err)
		}
	}
	return h
}

// launchHost starts cmd, a `pycomms-host run` (directly or through a
// wrapper that execs it), collecting its stderr (and its stdout, unless
// cmd has one) as logs, and waits until
// the node has logged its mesh listeners and its control address, which
// it fills in. The process is killed when the test ends, and a data race
// it reports fails the test. where names the host's place in failure
// reports (a network namespace, say).
func launchHost(t *testing.T, name string, cmd *exec.Cmd, where string) *hostProc {
	t.Helper()
	logs := newProcLogs()
	cmd.Stderr = logs
	if cmd.Stdout == nil {
		cmd.Stdout = logs
	}
	cmd.WaitDelay = 5 * time.Second
	// If the test binary dies (a -timeout panic skips cleanups), the kernel
	// kills the host, even a SIGSTOPped one that cannot notice by itself;
	// the death signal survives an exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h := &hostProc{t: t, name: name, cmd: cmd, exited: make(chan struct{}), logs: logs}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start host %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		h.kill()
		// A host built with -race reports data races on stderr (the exit
		// status is lost to SIGKILL).
		if race := logs.rawIndex("WARNING: DATA RACE"); race >= 0 {
			t.Errorf("host %s reported a data race:\n%s", name, logs.from(race, 80))
		}
		if t.Failed() {
			t.Logf("host %s (pid %d%s), last log lines:\n%s", name, cmd.Process.Pid, where, logs.tail(60))
		}
	})

	deadline := time.After(procStartTimeout)
	var listening, started map[string]any
	for {
		var changed <-chan struct{}
		listening, changed = logs.find("mesh listening")
		started, _ = logs.find("node started")
		if listening != nil && started != nil {
			break
		}
		select {
		case <-changed:
		case <-h.exited:
			t.Fatalf("host %s exited during start (%v):\n%s", name, cmd.ProcessState, logs.tail(40))
		case <-deadline:
			t.Fatalf("host %s not started within %v:\n%s", name, procStartTimeout, logs.tail(40))
		}
	}
	h.tcp = strings.TrimPrefix(fmt.Sprint(listening["tcp"]), "tcp://")
	h.quic = strings.TrimPrefix(fmt.Sprint(listening["quic"]), "quic://")
	h.control = fmt.Sprint(started["control"])
	return h
}

// addr is the host's mesh listen address for transport, as a peer URL.
func (h *hostProc) addr(transport string) string {
	if transport == "quic" {
		return "quic://" + h.quic
	}
	return "tcp://" + h.tcp
}

func (h *hostProc) pid() int { return h.cmd.Process.Pid }

func (h *hostProc) signal(sig syscall.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		h.t.Fatalf("signal %v to host %s: %v", sig, h.name, err)
	}
}

// kill SIGKILLs the process (stopped or not) and waits for it to exit.
func (h *hostProc) kill() {
	select {
	case <-h.exited:
		return
	default:
	}
	h.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-h.exited:
	case <-time.After(15 * time.Second):
		h.t.Errorf("host %s (pid %d) did not exit within 15s of SIGKILL", h.name, h.pid())
	}
}

// cli runs one pycomms-host command against the host's control API.
func (h *hostProc) cli(args ...string) result {
	return runCLI(h.t, "", append(args, "--control", h.control)...)
}

func (h *hostProc) peers(t *testing.T) []control.PeerInfo {
	t.Helper()
	r := h.cli("peers", "--json")
	if r.code != 0 {
		t.Fatalf("host %s: peers --json: %+v", h.name, r)
	}
	var ps []control.PeerInfo
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
		t.Fatalf("host %s: peers --json: %v\n%s", h.name, err, r.stdout)
	}
	return ps
}

func (h *hostProc) plugin(t *testing.T, name string) control.PluginInfo {
	t.Helper()
	r := h.cli("plugins", "--json")
	var ps []control.PluginInfo
	if err := json.Unmarshal([]byte(r.stdout), &ps); r.code != 0 || err != nil {
		t.Fatalf("host %s: plugins --json: %v %+v", h.name, err, r)
	}
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("host %s has no plugin %q: %s", h.name, name, r.stdout)
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
func callOK(h *hostProc, subject, data, want string) func() error {
	return func() error {
		r := h.cli("call", subject, data, "--timeout", "2s")
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
			bDir, aDir := t.TempDir(), t.TempDir()
			b := startHost(t, "b", procConfig{name: "b", dir: bDir,
				plugins: "  - {name: echo, path: builtin:echo, services: [echo], instances: 2, watch: false, limits: {timeout: 1m}}\n",
			}.write(t))
			a := startHost(t, "a", procConfig{name: "a", dir: aDir, peers: []string{b.addr(tr)},
				plugins: watPlugin(t, "local", []string{"local"}, nil)}.write(t))

			procEventually(t, procRouteTimeout, "a calls echo.upper served by b", callOK(a, "echo.upper", "hi", "HI"))

			const callTimeout = 20 * time.Second
			done := make(chan result, 1)
			go func() { done <- a.cli("call", "echo.sleep", "30s", "--timeout", callTimeout.String()) }()
			// Kill b once the slow call runs in its plugin, not after a guessed
			// delay.
			procEventually(t, 15*time.Second, "the slow call is in flight at b", func() error {
				select {
				case r := <-done:
					t.Fatalf("the slow call ended before b was killed: %+v", r)
				default:
				}
				if p := b.plugin(t, "echo"); p.Busy < 1 {
					return fmt.Errorf("b's echo plugin: busy %d", p.Busy)
				}
				return nil
			})
			time.Sleep(100 * time.Millisecond) // let it settle in the plugin
			killed := time.Now()
			b.kill()

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
			if err := callOK(a, "local.x", "still here", "STILL HERE")(); err != nil {
				t.Errorf("a after b died: %v", err)
			}
			down := procEventually(t, 3*procDeadAfter+10*time.Second, "a no longer lists b as up", func() error {
				for _, p := range a.peers(t) {
					if p.State == "up" && p.Name == "b" {
						return fmt.Errorf("b is %+v", p)
					}
				}
				return nil
			})
			t.Logf("%s: a lists b as not up %v after the call ended", tr, down.Round(time.Millisecond))
			r = a.cli("call", "echo.upper", "x", "--timeout", "2s")
			if r.code == 0 {
				t.Errorf("a still reaches echo on a dead b: %+v", r)
			}
		})
	}
}

// freePort returns a port number free on 127.0.0.1 for both TCP and UDP,
// so that a host restarted on it is found again on either transport.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return 0
}

// TestProcessReconnectRestoresRoutes: B is SIGKILLed and restarted with the
// same config, data dir (key) and port; A redials it on its own and its
// calls to B's service succeed again.
func TestProcessReconnectRestoresRoutes(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			port := freePort(t)
			listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			bDir, aDir := t.TempDir(), t.TempDir()
			bCfg := procConfig{name: "b", dir: bDir, listen: listen,
				plugins: watPlugin(t, "echo", []string{"echo"}, nil)}.write(t)
			b := startHost(t, "b", bCfg)
			a := startHost(t, "a", procConfig{name: "a", dir: aDir, peers: []string{tr + "://" + listen},
				plugins: watPlugin(t, "local", []string{"local"}, nil)}.write(t))
			procEventually(t, procRouteTimeout, "a calls echo on b", callOK(a, "echo.upper", "hi", "HI"))
			before, ok := peerNamed(a.peers(t), "b")
			if !ok || before.State != "up" || before.Transport != tr {
				t.Fatalf("a's view of b: %+v (found %v)", before, ok)
			}

			for round := 1; round <= 2; round++ {
				b.kill()
				// While b is down, a call fails promptly: never a hang.
				start := time.Now()
				r := a.cli("call", "echo.upper", "x", "--timeout", "2s")
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
				if err := callOK(a, "local.x", "ok", "OK")(); err != nil {
					t.Errorf("round %d: a while b is down: %v", round, err)
				}

				restarted := time.Now()
				b = startHost(t, "b", bCfg)
				if b.tcp != listen || b.quic != listen {
					t.Fatalf("restarted b listens on tcp %s, quic %s; want %s", b.tcp, b.quic, listen)
				}
				back := procEventually(t, procRouteTimeout, "a calls echo on the restarted b", callOK(a, "echo.upper", "again", "AGAIN"))
				t.Logf("%s round %d: route restored %v after b's restart began (%v after it was ready)",
					tr, round, time.Since(restarted).Round(time.Millisecond), back.Round(time.Millisecond))
				after, ok := peerNamed(a.peers(t), "b")
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
			bDir, aDir := t.TempDir(), t.TempDir()
			b := startHost(t, "b", procConfig{name: "b", dir: bDir,
				plugins: watPlugin(t, "echo", []string{"echo"}, []string{"flood.>"})}.write(t))
			a := startHost(t, "a", procConfig{name: "a", dir: aDir, peers: []string{b.addr(tr)},
				plugins: watPlugin(t, "local", []string{"local"}, nil)}.write(t))
			procEventually(t, procRouteTimeout, "a calls echo on b", callOK(a, "echo.upper", "hi", "HI"))
			cl := control.NewClient(a.control)
			defer cl.CloseIdleConnections()
			procEventually(t, procRouteTimeout, "a learns b's topic", func() error {
				n, err := cl.Publish(context.Background(), "flood.probe", nil, nil)
				if err != nil || n != 1 {
					return fmt.Errorf("receivers %d, %v", n, err)
				}
				return nil
			})
			baseRSS := vmKB(t, a.pid(), "VmRSS")

			b.signal(syscall.SIGSTOP)
			// kill(2) returns before the kernel has stopped every thread:
			// wait until /proc says the process is stopped ("T").
			procEventually(t, 10*time.Second, "b is stopped", func() error {
				stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.pid()))
				if err != nil {
					return err
				}
				if _, rest, ok := strings.Cut(string(stat), ") "); !ok || !strings.HasPrefix(rest, "T") {
					return fmt.Errorf("state %q", rest[:min(len(rest), 1)])
				}
				return nil
			})
			stopped := time.Now()
			t.Cleanup(func() { b.cmd.Process.Signal(syscall.SIGCONT) })

			// A call to the frozen b fails at its deadline.
			start := time.Now()
			r := a.cli("call", "echo.upper", "x", "--timeout", "1s")
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
					r := runCLI(t, "", "call", "echo.upper", "x", "--timeout", "500ms", "--control", a.control)
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
			hwm := vmKB(t, a.pid(), "VmHWM")
			rss := vmKB(t, a.pid(), "VmRSS")
			// Keep the calls and the watcher going until a has given up on
			// the link, so both outcomes are seen.
			closeMsgs := []string{"peer silent, closing its link", "peer stopped reading, closing its link", "peer does not answer probes, closing its link", "peer disconnected"}
			procEventually(t, 3*procDeadAfter+15*time.Second, "a closes its link to the frozen b", func() error {
				if a.logs.firstAt(stopped, closeMsgs...).IsZero() {
					return errors.New("no link close logged")
				}
				return nil
			})
			closedAt := a.logs.firstAt(stopped, closeMsgs...)
			stopWatch()
			<-watched
			<-callsDone

			t.Logf("%s: %d × %d KiB published in %v (slowest publish %v), %d delivered (queued) to b, b's dropped counter reached %d",
				tr, events, size>>10, floodTime.Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond),
				receivers.Load(), maxDropped.Load())
			t.Logf("%s: a's RSS %d MiB before, %d MiB after, peak %d MiB; link closed %v after SIGSTOP (%q)",
				tr, baseRSS>>10, rss>>10, hwm>>10, closedAt.Sub(stopped).Round(time.Millisecond), closeReason(a))
			if d := time.Duration(slowest.Load()); d > 5*time.Second {
				t.Errorf("a publish blocked for %v with b frozen", d)
			}
			if hwm > 300<<10 {
				t.Errorf("a's peak RSS %d MiB, want < 300 MiB: a stuck peer grows the sender's memory", hwm>>10)
			}
			if maxDropped.Load() == 0 && a.logs.firstAt(stopped, closeMsgs[:3]...).IsZero() {
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
			if err := callOK(a, "local.x", "alive", "ALIVE")(); err != nil {
				t.Errorf("a with b frozen: %v", err)
			}
			// b thaws: a reaches it again (it redials; b drains what its kernel
			// buffered and accepts).
			b.signal(syscall.SIGCONT)
			back := procEventually(t, procRouteTimeout+procDeadAfter, "a reaches b again after SIGCONT", callOK(a, "echo.upper", "thawed", "THAWED"))
			t.Logf("%s: b reached again %v after SIGCONT", tr, back.Round(time.Millisecond))
			b.kill()
			if err := callOK(a, "local.x", "alive", "ALIVE")(); err != nil {
				t.Errorf("a after b was killed: %v", err)
			}
		})
	}
}

// closeReason is the first link-close message a logged, for the test log.
func closeReason(h *hostProc) string {
	for _, msg := range []string{"peer silent, closing its link", "peer stopped reading, closing its link", "peer does not answer probes, closing its link"} {
		if m, _ := h.logs.find(msg); m != nil {
			return msg
		}
	}
	if m, _ := h.logs.find("peer disconnected"); m != nil {
		return fmt.Sprint(m["cause"])
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
			c := startHost(t, "c", procConfig{name: "c", dir: t.TempDir(),
				plugins: watPlugin(t, "upper", []string{"echo"}, []string{"news.>"})}.write(t))
			b := startHost(t, "b", procConfig{name: "b", dir: t.TempDir(), peers: []string{c.addr(tt.bc)}}.write(t))
			a := startHost(t, "a", procConfig{name: "a", dir: t.TempDir(), peers: []string{b.addr(tt.ab)}}.write(t))

			took := procEventually(t, procRouteTimeout, "call on a served by c", callOK(a, "echo.upper", "hi", "HI"))
			t.Logf("chain up %v after the hosts started", took.Round(time.Millisecond))
			if r := a.cli("call", "echo.upper", "hi"); r.code != 0 || r.stdout != "HI\n" || r.stderr != "" {
				t.Errorf("call echo.upper hi: %+v", r)
			}

			before := c.plugin(t, "upper").Calls
			if r := a.cli("send", "--node", "c", "echo.note", "x"); r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Fatalf("send --node c: %+v", r)
			}
			procEventually(t, 10*time.Second, "c's plugin handles the send", func() error {
				if got := c.plugin(t, "upper").Calls; got <= before {
					return fmt.Errorf("c's plugin calls %d, before the send %d", got, before)
				}
				return nil
			})

			ps := a.peers(t)
			if p, ok := peerNamed(ps, "b"); !ok || p.State != "up" || p.Transport != tt.ab || !p.Dialed || p.Config != b.addr(tt.ab) {
				t.Errorf("a's link to b: %+v (found %v), want up over %s, dialled from %s", p, ok, tt.ab, b.addr(tt.ab))
			}
			// c is relayed via b until a and c, which learnt of each other
			// through b, link directly (gossip on the dialling side).
			if p, ok := peerNamed(ps, "c"); !ok || (p.State != "relayed" || p.Via != "b") && (p.State != "up" || p.Found != "gossip" && p.Found != "inbound") {
				t.Errorf("a's view of c: %+v (found %v), want relayed via b or linked by gossip", p, ok)
			}
			if r := a.cli("peers"); r.code != 0 || !strings.Contains(r.stdout, "via b") && !strings.Contains(r.stdout, "gossip") && !strings.Contains(r.stdout, "inbound") {
				t.Errorf("peers table: %+v", r)
			}

			// pub prints nothing; with --json the number of receivers.
			procEventually(t, 10*time.Second, "pub on a reaches c's subscriber", func() error {
				r := a.cli("pub", "news.x", "hello", "--json")
				if r.code != 0 || r.stdout != `{"receivers":1}`+"\n" {
					return fmt.Errorf("pub --json: %+v", r)
				}
				return nil
			})
			if r := a.cli("pub", "news.x", "hello"); r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Errorf("pub: %+v", r)
			}
			if r := a.cli("pub", "nobody.listens", "x", "--json"); r.code != 0 || r.stdout != `{"receivers":0}`+"\n" {
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
	names := []string{"a", "b", "c", "d", "e"}
	hosts := make([]*hostProc, len(names))
	for i, name := range names {
		cfg := procConfig{name: name, dir: t.TempDir()}
		if i > 0 {
			cfg.peers = []string{hosts[i-1].addr("tcp")}
		}
		if name == "e" {
			cfg.plugins = watPlugin(t, "upper", []string{"echo"}, nil)
		}
		hosts[i] = startHost(t, name, cfg.write(t))
	}
	a, b, c, d := hosts[0], hosts[1], hosts[2], hosts[3]
	took := procEventually(t, procRouteTimeout, "a knows e as a member four links away", func() error {
		p, ok := peerNamed(a.peers(t), "e")
		if !ok || p.State != "member" || p.Found != "gossip" || p.Hops != 4 {
			return fmt.Errorf("a's view of e: %+v (listed %v)", p, ok)
		}
		return nil
	})
	t.Logf("a learnt of e, four links away, %v after the hosts started", took.Round(time.Millisecond))
	if r := a.cli("peers"); r.code != 0 || !strings.Contains(r.stdout, "4 links away") {
		t.Errorf("peers table on a: %+v", r)
	}
	procEventually(t, 10*time.Second, "a's health counts the four others", func() error {
		if r := a.cli("health"); r.code != 0 || !strings.Contains(r.stdout, "4 other hosts alive") {
			return fmt.Errorf("health on a: %+v", r)
		}
		return nil
	})

	if r := a.cli("call", "echo.upper", "far", "--timeout", "10s"); r.code != 0 || r.stdout != "FAR\n" {
		t.Fatalf("a calls e's plugin, four links away: %+v", r)
	}
	if p, _ := peerNamed(a.peers(t), "e"); p.State != "up" || p.Found != "gossip" {
		t.Errorf("a's link to e after the call: %+v, want up, found by gossip", p)
	}

	// A frozen host (SIGSTOP: sockets open, nothing answers) three links
	// from a: its neighbours close their links after the dead time, and
	// their records tell a.
	start := time.Now()
	d.signal(syscall.SIGSTOP)
	// The promise is the dead time (c closes its link to the silent d
	// after at most that, and its record reaches a ~50 ms per link); the
	// bound is the project's ~3x margin for a loaded 2-core machine, and
	// the poll runs a little past it so that a slow pass reports its time.
	took = procEventually(t, 3*procDeadAfter+5*time.Second, "a shows the frozen d lost", func() error {
		if p, ok := peerNamed(a.peers(t), "d"); ok && p.State != "lost" {
			return fmt.Errorf("a's view of d: %+v", p)
		}
		return nil
	})
	t.Logf("SIGSTOPped d, three links from a, shown lost on a after %v (dead time %v)", took.Round(time.Millisecond), procDeadAfter)
	if took > 3*procDeadAfter {
		t.Errorf("d lost after %v, more than 3 x the dead time %v", took, procDeadAfter)
	}
	d.kill()

	// A killed host two links from a: its neighbours' reads end at once.
	start = time.Now()
	c.kill()
	took = procEventually(t, 3*procDeadAfter, "a shows the killed c lost", func() error {
		if p, ok := peerNamed(a.peers(t), "c"); ok && p.State != "lost" {
			return fmt.Errorf("a's view of c: %+v", p)
		}
		return nil
	})
	t.Logf("SIGKILLed c, two links from a, shown lost on a after %v", took.Round(time.Millisecond))
	if took > procDeadAfter {
		t.Errorf("c lost after %v, more than the dead time %v", took, procDeadAfter)
	}
	if r := a.cli("peers"); r.code != 0 || !strings.Contains(r.stdout, "lost") {
		t.Errorf("peers table on a after c died: %+v", r)
	}
	if at := a.logs.firstAt(start, "peer lost: no chain of live links reaches it"); at.IsZero() {
		t.Error("a logged no \"peer lost\" for c")
	}

	// A host that stops cleanly is shown left.
	start = time.Now()
	b.signal(syscall.SIGTERM)
	procEventually(t, 10*time.Second, "a shows b left", func() error {
		if p, ok := peerNamed(a.peers(t), "b"); ok && p.State != "left" {
			return fmt.Errorf("a's view of b: %+v", p)
		}
		return nil
	})
	if at := a.logs.firstAt(start, "peer left"); at.IsZero() {
		t.Error("a logged no \"peer left\" for b")
	}
	// a still reaches e over the link it made.
	if r := a.cli("call", "echo.upper", "still"); r.code != 0 || r.stdout != "STILL\n" {
		t.Errorf("a -> e after b, c and d went: %+v", r)
	}
}
