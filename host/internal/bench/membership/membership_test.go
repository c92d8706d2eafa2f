package membership

import (
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/bench/gossipbaseline"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestStarConvergesAndDropsKilled checks the harness the benchmark
// measures with: six hosts that know only a seed (one in a child process)
// come to hold each other as live members with their services, and when
// the child is killed (SIGKILL, no goodbye) every other host stops holding
// it alive within three dead times.
func TestStarConvergesAndDropsKilled(t *testing.T) {
	tm := timing{ping: 200 * time.Millisecond, dead: 2 * time.Second}
	s := startStar(t, 6, tm)
	// Every 5ms: the benchmark times convergence and detection with it.
	hosttest.CheckForEvery(t, 30*time.Second, 5*time.Millisecond, s.convergedErr)
	if s.controlBytes() == 0 {
		t.Fatal("converged hosts report no control bytes written")
	}
	if err := s.kill(); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckForEvery(t, 3*tm.dead, 5*time.Millisecond, s.victimDroppedErr)
}

// BenchmarkMembership compares this mesh's membership with hashicorp/
// memberlist (SWIM), the library the discovery issue proposed, at 50 hosts
// joining one seed on loopback with the same dead time (5s): time until
// every host knows every other alive, control bytes per host per second
// once steady, and time until every other host has dropped a killed one
// (ours: a host in a child process, SIGKILLed; memberlist: a member whose
// sockets are closed). memberlist runs on its own UDP and TCP sockets,
// unauthenticated: its best case. Ratios are ours over memberlist (below
// 1: ours is cheaper or faster). Our traffic is that of the 49 hosts in
// this process (the killed one's is not counted), per host.
//
//	go test ./membership -run XXX -bench Membership -benchtime 1x
//
// With -short (as scripts/test.sh runs it, to check that it still works
// rather than to measure) it runs 10 hosts and a 1s traffic window.
func BenchmarkMembership(b *testing.B) {
	n, window := 50, 5*time.Second
	if testing.Short() {
		n, window = 10, time.Second
	}
	const dead = 5 * time.Second
	// settle is how long after convergence the benchmark waits before it
	// measures steady traffic: records and interest still on their way
	// when the last host learnt the last member are part of joining.
	const settle = time.Second
	for range b.N {
		// Ours.
		start := time.Now()
		s := startStar(b, n, production)
		hosttest.CheckForEvery(b, 60*time.Second, 5*time.Millisecond, s.convergedErr)
		ourConv := time.Since(start)
		time.Sleep(settle)
		joined := s.controlBytes()
		time.Sleep(window)
		ourSteady := float64(s.controlBytes()-joined) / window.Seconds() / float64(len(s.nodes))
		start = time.Now()
		if err := s.kill(); err != nil {
			b.Fatal(err)
		}
		hosttest.CheckForEvery(b, 30*time.Second, 5*time.Millisecond, s.victimDroppedErr)
		ourDetect := time.Since(start)

		// memberlist, same shape.
		c, err := gossipbaseline.Start(gossipbaseline.Options{N: n, DeadAfter: dead})
		if err != nil {
			b.Fatal(err)
		}
		mlConv, err := c.WaitConverged(120 * time.Second)
		if err != nil {
			c.Close()
			b.Fatal(err)
		}
		time.Sleep(settle)
		before := c.Bytes()
		time.Sleep(window)
		mlSteady := float64(c.Bytes()-before) / window.Seconds() / float64(n)
		if err := c.Kill(n / 2); err != nil {
			c.Close()
			b.Fatal(err)
		}
		mlDetect, err := c.WaitDead(n/2, 60*time.Second)
		c.Close()
		if err != nil {
			b.Fatal(err)
		}

		b.ReportMetric(ourConv.Seconds(), "s-to-converge")
		b.ReportMetric(mlConv.Seconds(), "memberlist-s-to-converge")
		b.ReportMetric(ourConv.Seconds()/mlConv.Seconds(), "converge-ratio")
		b.ReportMetric(ourSteady, "steady-B/host/s")
		b.ReportMetric(mlSteady, "memberlist-steady-B/host/s")
		b.ReportMetric(ourSteady/mlSteady, "steady-ratio")
		b.ReportMetric(float64(ourDetect.Milliseconds()), "ms-to-drop-killed")
		b.ReportMetric(float64(mlDetect.Milliseconds()), "memberlist-ms-to-drop-killed")
		b.ReportMetric(ourDetect.Seconds()/mlDetect.Seconds(), "drop-ratio")
	}
}
