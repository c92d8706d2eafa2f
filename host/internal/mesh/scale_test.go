package mesh

import (
	"fmt"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// startStar starts a seed and n-1 hosts that list only the seed, each
// serving one service, over TCP.
func startStar(tb testing.TB, n int) []*host {
	tb.Helper()
	// TCP only, and the production liveness settings (ping 1s, dead after
	// 5s) rather than the tests' quick ones: with 50 hosts on two cores a
	// 200ms ping to every link is itself the load that makes links look
	// dead.
	only := func(o *Options) { o.ListenQUIC = ""; o.PingInterval = time.Second; o.DeadAfter = 5 * time.Second }
	seed := newHostTB(tb, "seed", only)
	hosts := []*host{seed}
	for i := 1; i < n; i++ {
		h := newHostTB(tb, fmt.Sprintf("h%02d", i), only, func(o *Options) { o.Peers = []Peer{seed.peer(TCP)} })
		hosts = append(hosts, h)
	}
	for i, h := range hosts {
		if err := h.router.SetRoutes("svc", &echoEP{}, []string{fmt.Sprintf("svc%02d", i)}, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return hosts
}

// controlBytes sums the control frames (interest, members, ping, pong)
// all hosts have written.
func controlBytes(hosts []*host) uint64 {
	var n uint64
	for _, h := range hosts {
		n += h.mesh.ControlBytesOut()
	}
	return n
}

// TestStarConverges: ten hosts that know only a seed learn of each other
// and can call each other's services (through the seed).
func TestStarConverges(t *testing.T) {
	hosts := startStar(t, 10)
	hosttest.CheckFor(t, 20*time.Second, func() error { return convergedErr(hosts) })
	got, err := call(hosts[3], "svc07.x", "hi", 5*time.Second)
	if err != nil || got != "hi" {
		t.Fatalf("h03 -> h07 through the seed: %q %v", got, err)
	}
}

// BenchmarkScale starts 50, 100 and 200 hosts from one seed on loopback
// and reports how long until every host holds every other as a live
// member with its services, the control traffic (interest, members, ping,
// pong) per host to get there, and per host per second once steady. The
// time includes starting the hosts, which for 200 in one process on two
// cores is most of it.
//
//	go test ./host/internal/mesh -run XXX -bench 'Scale/' -benchtime 1x
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{50, 100, 200} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			for range b.N {
				start := time.Now()
				hosts := startStar(b, n)
				if err := hosttest.Poll(120*time.Second, 5*time.Millisecond, func() error { return convergedErr(hosts) }); err != nil {
					b.Fatalf("%d hosts did not converge: %v", n, err)
				}
				conv := time.Since(start)
				// Records and interest still on their way when the last host
				// learnt the last member are part of joining, not of steady
				// state.
				time.Sleep(settle)
				joinBytes := controlBytes(hosts)
				const window = 5 * time.Second
				time.Sleep(window)
				steady := float64(controlBytes(hosts)-joinBytes) / window.Seconds() / float64(n)
				b.ReportMetric(conv.Seconds(), "s-to-converge")
				b.ReportMetric(float64(joinBytes)/float64(n), "join-bytes/host")
				b.ReportMetric(steady, "steady-bytes/host/s")
			}
		})
	}
}

// TestStarNoticesDeath: with one seed and no mDNS, hosts learn each other
// and route calls end to end; when one dies without a goodbye, every other
// host marks it lost and drops its routes within the dead time (generous
// margin), and the rest keep serving.
func TestStarNoticesDeath(t *testing.T) {
	hosts := startStar(t, 6)
	hosttest.CheckFor(t, 20*time.Second, func() error { return convergedErr(hosts) })
	if got, err := call(hosts[1], "svc04.x", "before", 5*time.Second); err != nil || got != "before" {
		t.Fatalf("h01 -> h04 through the seed: %q %v", got, err)
	}
	victim := hosts[4]
	start := time.Now()
	kill(victim)
	dead := 5 * time.Second // startStar's DeadAfter
	hosttest.CheckFor(t, 3*dead, func() error {
		for i, h := range hosts {
			if i == 4 {
				continue
			}
			if h.mesh.routes.load().lookup("svc04.x") != nil {
				return fmt.Errorf("%s still %s; %s", h.name, describeRoute(h, "svc04.x"), linksTo(hosts, victim))
			}
			if mb, ok := memberOf(h, victim); ok && mb.State != "lost" {
				return fmt.Errorf("%s holds %s as %s (%d hops); %s", h.name, victim.name, mb.State, mb.Hops, linksTo(hosts, victim))
			}
		}
		return nil
	})
	t.Logf("dead host lost everywhere after %v", time.Since(start).Round(time.Millisecond))
	if got, err := call(hosts[1], "svc05.x", "still", 5*time.Second); err != nil || got != "still" {
		t.Fatalf("the others keep serving: %q %v", got, err)
	}
}

// BenchmarkScaleChain starts 50 hosts each listing only the one before
// it, the longest path membership has to cross (49 links), and reports
// how long until every host holds every other as a live member, and the
// traffic to get there.
//
//	go test ./host/internal/mesh -run XXX -bench ScaleChain -benchtime 1x
func BenchmarkScaleChain(b *testing.B) {
	for range b.N {
		start := time.Now()
		hosts := startChain(b, 50, TCP, func(o *Options) { o.ListenQUIC = ""; o.PingInterval = time.Second; o.DeadAfter = 5 * time.Second })
		if err := hosttest.Poll(60*time.Second, 5*time.Millisecond, func() error { return allAliveErr(hosts) }); err != nil {
			b.Fatalf("a chain of 50 did not converge: %v", err)
		}
		conv := time.Since(start)
		time.Sleep(settle)
		b.ReportMetric(conv.Seconds(), "s-to-converge")
		b.ReportMetric(float64(controlBytes(hosts))/float64(len(hosts)), "join-bytes/host")
	}
}

// settle is how long the benchmarks wait after convergence before they
// measure steady traffic.
const settle = time.Second
