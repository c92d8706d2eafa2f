package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Bounds, with a 3x margin or more for a loaded two-core machine.
const (
	routeTimeout = 45 * time.Second // a first link, or one after a heal: dial backoff up to 5s plus a 10s handshake timeout
	deadAfter    = time.Second      // discovery.dead_after of the fault tests (its minimum)
	lossTimeout  = 10 * deadAfter   // a silent link is closed within deadAfter
)

// TestTCPPartitionHeals: b links to a (which serves echo) through a TCP
// proxy. While the proxy is partitioned (bytes stop both ways, new
// connections hang: a cut cable, no RST), b drops its link to a after
// its dead time and its calls fail with no_handler instead of hanging;
// after Heal, b links again through the proxy and calls flow. The proxy's
// counters and CheckProxied show that the link went through the proxy and
// that gossip made no direct link around it.
func TestTCPPartitionHeals(t *testing.T) {
	c := Start(t, Options{Transport: "tcp", Proxied: true, DeadAfter: deadAfter,
		Plugins: map[string]string{"a": WatEcho("echo", "echo")}})
	a, b := c.Host("a"), c.Host("b")
	p := c.TCPProxy("b", "a")
	hosttest.CheckFor(t, routeTimeout, func() error { return b.CallOK("echo.upper", "hi", "HI") })
	if err := c.CheckProxied(); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Accepted == 0 || s.ToServer == 0 || s.ToClient == 0 {
		t.Fatalf("the link did not go through the proxy: %v", p)
	}

	atCut := p.Stats()
	p.Partition()
	cut := time.Now()
	hosttest.CheckFor(t, lossTimeout, func() error { return b.NoRoute("echo") })
	hosttest.CheckFor(t, lossTimeout, func() error { return a.NoLink("b") })
	t.Logf("partitioned: b dropped its route to echo and a its link to b within %v (dead_after %v)", time.Since(cut).Round(time.Millisecond), deadAfter)
	before := p.Stats()
	_, err := b.Call("echo.upper", "hi", 2*time.Second)
	if st := message.StatusOf(err); st != abi.StatusNoHandler && st != abi.StatusUnreachable {
		t.Fatalf("a call on b during the partition: %v (status %v), want no_handler or unreachable", err, st)
	}
	if s := p.Stats(); s.ToServer != before.ToServer || s.ToClient != before.ToClient {
		t.Fatalf("bytes crossed the partition: %+v -> %v", before, p)
	}

	p.Heal()
	healed := time.Now()
	hosttest.CheckFor(t, routeTimeout, func() error { return b.CallOK("echo.upper", "again", "AGAIN") })
	t.Logf("healed: calls flow again after %v", time.Since(healed).Round(time.Millisecond))
	if err := c.CheckProxied(); err != nil {
		t.Fatal(err)
	}
	// b's new link is a connection the proxy accepted after the cut (b
	// redials during the partition; that connection is held until Heal).
	if s := p.Stats(); s.Accepted <= atCut.Accepted || s.ToServer <= before.ToServer {
		t.Fatalf("after Heal the link did not come back through the proxy: at the cut %+v, now %v", atCut, p)
	}
	for i := range 20 {
		want := fmt.Sprintf("CALL %d", i)
		if err := b.CallOK("echo.upper", fmt.Sprintf("call %d", i), want); err != nil {
			t.Fatalf("after Heal: %v", err)
		}
	}
}

// TestLossyQUICPathCompletesCalls: b links to a over QUIC through a UDP
// proxy that drops 15% of the packets each way and delays each by 5ms.
// Every one of 100 calls answers correctly: QUIC retransmits what is lost,
// and the mesh's liveness does not give up on a lossy but live path.
func TestLossyQUICPathCompletesCalls(t *testing.T) {
	c := New(t, Options{Transport: "quic", Proxied: true,
		Plugins: map[string]string{"a": WatEcho("echo", "echo")}})
	c.StartAll()
	a, b := c.Host("a"), c.Host("b")
	p := c.UDPProxy("b", "a")
	p.SetDropRate(0.15)
	p.SetFixedDelay(5 * time.Millisecond)
	hosttest.CheckFor(t, routeTimeout, func() error { return b.HasRoute("echo") })
	const calls = 100
	for i := range calls {
		want := fmt.Sprintf("LOSSY %d", i)
		out, err := b.Call("echo.upper", fmt.Sprintf("lossy %d", i), 20*time.Second)
		if err != nil || out != want {
			t.Fatalf("call %d of %d over the lossy path: %q, %v; want %q (%v)", i, calls, out, err, want, p)
		}
	}
	s := p.Stats()
	if s.Dropped[hosttest.ToServer] == 0 || s.Dropped[hosttest.ToClient] == 0 {
		t.Fatalf("the proxy dropped nothing one way: %v", p)
	}
	if err := c.CheckProxied(); err != nil {
		t.Fatal(err)
	}
	if err := a.LinkUp("b"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls all answered over %v", calls, p)
}
