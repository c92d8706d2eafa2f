package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

func healthID(t *testing.T, h *Host) string {
	t.Helper()
	ctx, cancel := ctx()
	defer cancel()
	hl, err := h.Client.Health(ctx)
	if err != nil || hl.ID == "" {
		t.Fatalf("host %q: health: %+v, %v", h.Name, hl, err)
	}
	return hl.ID
}

// Three in-process hosts in a chain: c reaches a's echo through b; a
// killed (closed) takes the route with it; a restarted comes back with the
// same id and ports, and the route returns.
func TestInProcessChainKillRestart(t *testing.T) {
	c := Start(t, Options{Hosts: 3, Topology: Chain, DeadAfter: time.Second,
		Plugins: map[string]string{"a": WatEcho("echo", "echo")}})
	a, cc := c.Host("a"), c.Host("c")
	hosttest.CheckFor(t, routeTimeout, func() error { return cc.CallOK("echo.upper", "x", "X") })
	id := healthID(t, a)
	tcp, quic := a.ListenAddrs()
	if err := a.Freeze(); err == nil || !strings.Contains(err.Error(), "Proxied") {
		t.Fatalf("Freeze of an in-process host without proxies: %v, want an error saying it needs them", err)
	}
	a.Kill()
	if a.Running() || a.Node() != nil {
		t.Fatal("a still running after Kill")
	}
	hosttest.CheckFor(t, lossTimeout, func() error { return cc.NoRoute("echo") })
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if got := healthID(t, a); got != id {
		t.Fatalf("a restarted as %s, want the same id %s", got, id)
	}
	if t2, q2 := a.ListenAddrs(); t2 != tcp || q2 != quic {
		t.Errorf("a restarted on %s %s, was %s %s", t2, q2, tcp, quic)
	}
	hosttest.CheckFor(t, routeTimeout, func() error { return cc.CallOK("echo.upper", "y", "Y") })
}

// In process, Freeze partitions the proxies of a host's links: its peer
// loses it after the dead time, and Thaw brings it back.
func TestInProcessFreezeThroughProxies(t *testing.T) {
	c := Start(t, Options{Transport: "quic", Proxied: true, DeadAfter: time.Second,
		Plugins: map[string]string{"a": WatEcho("echo", "echo")}})
	a, b := c.Host("a"), c.Host("b")
	hosttest.CheckFor(t, routeTimeout, func() error { return b.CallOK("echo.upper", "x", "X") })
	if err := a.Freeze(); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, lossTimeout, func() error { return b.NoRoute("echo") })
	if s := c.UDPProxy("b", "a").Stats(); s.Blackholed[hosttest.ToServer] == 0 {
		t.Fatalf("the frozen link's packets were not blackholed: %+v", s)
	}
	if err := a.Thaw(); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, routeTimeout, func() error { return b.CallOK("echo.upper", "y", "Y") })
	if err := c.CheckProxied(); err != nil {
		t.Fatal(err)
	}
}

// Two hosts as processes: SIGSTOP makes a silent (b drops it after the
// dead time), SIGCONT brings it back, SIGKILL takes it away, and a
// restart comes back with the same id.
func TestProcessFreezeKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pycomms-host processes")
	}
	c := Start(t, Options{Mode: Process, DeadAfter: time.Second,
		Plugins: map[string]string{"a": WatEcho("echo", "echo")}})
	a, b := c.Host("a"), c.Host("b")
	hosttest.CheckFor(t, routeTimeout, func() error { return b.CallOK("echo.upper", "x", "X") })
	id := healthID(t, a)
	if err := a.Freeze(); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, lossTimeout, func() error { return b.NoLink("a") })
	if err := a.Thaw(); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, routeTimeout, func() error { return b.CallOK("echo.upper", "y", "Y") })
	a.Kill()
	hosttest.CheckFor(t, lossTimeout, func() error { return b.NoRoute("echo") })
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := healthID(t, a); got != id {
		t.Fatalf("a restarted as %s, want the same id %s", got, id)
	}
	hosttest.CheckFor(t, routeTimeout, func() error { return b.CallOK("echo.upper", "z", "Z") })
	if !strings.Contains(a.Logs.String(), `"msg":"node started"`) {
		t.Fatalf("a's logs were not captured:\n%s", a.Logs.String())
	}
}

// Per-host settings: a chain whose links mix transports (a dials b over
// QUIC, b dials c over TCP), a host with a trust of its own that its peer
// refuses, two hosts with the same name told apart by number, and a
// config rewritten and reloaded: a new plugin serves, a change reload
// cannot apply is refused. The log records say when the node started.
func TestPerHostSettingsAndReload(t *testing.T) {
	c := Start(t, Options{Names: []string{"c", "b", "a", "x", "x"}, Topology: Chain,
		Transports: map[string]string{"a": "quic"},
		Trust:      map[string]string{"x": `{secret: "another-secret-0123456789"}`},
		ListenHost: map[string]string{"b": "127.0.0.2"},
		Plugins:    map[string]string{"c": WatEcho("echo", "echo")}})
	a, b := c.Host("a"), c.Host("b")
	hosttest.CheckFor(t, routeTimeout, func() error { return a.CallOK("echo.upper", "x", "X") })
	if tcp, quic := b.ListenAddrs(); !strings.HasPrefix(tcp, "127.0.0.2:") || !strings.HasPrefix(quic, "127.0.0.2:") {
		t.Errorf("b listens on %s, %s; want on its ListenHost 127.0.0.2", tcp, quic)
	}
	for _, l := range []struct {
		h        *Host
		peer, tr string
	}{{a, "b", "quic"}, {b, "c", "tcp"}} {
		ps, err := l.h.Peers()
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(ps, func(p control.PeerInfo) bool { return p.Name == l.peer && p.Dialed }); i < 0 || ps[i].Transport != l.tr {
			t.Errorf("host %s: dialled link to %s: %s, want over %s", l.h, l.peer, peersString(ps), l.tr)
		}
	}
	// x#3 dials a with a secret a does not share: no link; x#4 dials x#3
	// with the same secret: linked.
	x3, x4 := c.HostAt(3), c.HostAt(4)
	if x3.Name != "x" || x4.Name != "x" || x3.String() != "x#3" || a.String() != "a" {
		t.Fatalf("HostAt: %q %q, names %q %q", x3, x4, x3.Name, x4.Name)
	}
	hosttest.CheckFor(t, routeTimeout, func() error { return x4.LinkUp("x") })
	hosttest.CheckFor(t, routeTimeout, func() error {
		if a.Records.Index("refused a connection") < 0 && a.Records.Index("refused a host the trust policy does not admit") < 0 {
			return errors.New(`host "a": has not refused x#3`)
		}
		return nil
	})
	if err := x3.LinkUp("a"); err == nil {
		t.Error("x#3, whose trust a does not share, linked to a")
	}
	if err := x3.HasRoute("echo"); err == nil || !strings.HasPrefix(err.Error(), `host "x#3"`) {
		t.Errorf("x#3 (no route, named by number): %v", err)
	}
	if r, ok := a.Records.Find("node started"); !ok || r.Fields["control"] != a.ControlAddr() {
		t.Errorf("a's records: node started %+v (found %v), control %s", r, ok, a.ControlAddr())
	}

	a.SetPlugins(WatEcho("local", "local"))
	if err := a.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.CallOK("local.upper", "y", "Y"); err != nil {
		t.Fatal(err)
	}
	if err := a.RewriteConfig(func(s string) string { return strings.Replace(s, `quic: "127.0.0.1:0"`, `quic: ""`, 1) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "listen") || !strings.HasPrefix(err.Error(), `host "a"`) {
		t.Fatalf("reload of a changed listen.quic: %v, want a refusal naming listen", err)
	}
	if err := a.Signal(syscall.SIGHUP); err == nil {
		t.Error("Signal of an in-process host did not fail")
	}
}

// A process host, started through a wrapper (env, which execs it with a
// variable of the test's): SIGHUP applies a rewritten config, a Reload
// through the control API refuses a change it cannot apply, and SIGTERM
// stops it cleanly (exit 0).
func TestProcessSignalReloadExit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pycomms-host processes")
	}
	env, err := exec.LookPath("env")
	if err != nil {
		t.Skip("needs env(1) as the wrapper: ", err)
	}
	c := Start(t, Options{Hosts: 1, Mode: Process, Env: []string{"CLUSTER_TEST_ENV=1"},
		Wrap: func(h *Host, cmd *exec.Cmd) {
			cmd.Args = append([]string{env, "CLUSTER_TEST_WRAPPED=" + h.Name}, cmd.Args...)
			cmd.Path = env
		}})
	a := c.Host("a")
	if a.PID() == 0 || a.Exited() == nil {
		t.Fatalf("process host: pid %d, exited %v", a.PID(), a.Exited())
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", a.PID()))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"CLUSTER_TEST_ENV=1", "CLUSTER_TEST_WRAPPED=a"} {
		if !slices.Contains(strings.Split(string(environ), "\x00"), kv) {
			t.Errorf("the host process's environment has no %s", kv)
		}
	}
	if _, err := a.ExitCode(); err == nil {
		t.Fatal("ExitCode of a running process did not fail")
	}
	a.SetPlugins(WatEcho("echo", "echo"))
	if err := a.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	if err := a.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, routeTimeout, func() error { return a.CallOK("echo.upper", "x", "X") })
	if err := a.RewriteConfig(func(s string) string { return strings.Replace(s, `tcp: "127.0.0.1:0"`, `tcp: ""`, 1) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("reload of a changed listen.tcp: %v, want a refusal naming listen", err)
	}
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("a did not exit within 30s of SIGTERM")
	}
	if code, err := a.ExitCode(); err != nil || code != 0 {
		t.Fatalf("exit after SIGTERM: %d, %v; want 0", code, err)
	}
	if a.Records.FirstAt(time.Time{}, "node started").IsZero() {
		t.Errorf("a's records have no \"node started\":\n%s", a.Records.Tail(20))
	}
}

// A process host whose config (EditConfig) names a TCP address another
// socket holds exits during Start: Start says so with the host's last
// output, and ExitCode has its exit code.
func TestProcessStartFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pycomms-host processes")
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	c := New(t, Options{Hosts: 1, Mode: Process})
	a := c.Host("a")
	a.EditConfig(func(s string) string {
		return strings.Replace(s, `tcp: "127.0.0.1:0"`, "tcp: "+strconv.Quote(held.Addr().String()), 1)
	})
	err = a.Start()
	if err == nil || !strings.Contains(err.Error(), "exited during start") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a held address: %v, want an exit during start with the host's output", err)
	}
	if a.Running() {
		t.Error("a failed start left the host running")
	}
	if code, err := a.ExitCode(); err != nil || code <= 0 {
		t.Errorf("exit code %d, %v; want a failure code", code, err)
	}
	if b, err := os.ReadFile(a.ConfigPath()); err != nil || !strings.Contains(string(b), held.Addr().String()) {
		t.Errorf("the config file does not have the edit: %v\n%s", err, b)
	}
}
