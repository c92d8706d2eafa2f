package cluster

import (
	"strings"
	"testing"
	"time"

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
