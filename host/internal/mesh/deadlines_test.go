package mesh

import (
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestDeadlinesOneTimer: with one timer for every request, each request
// still fails at its own deadline, whichever order they were made in: a
// later request with an earlier deadline brings the timer forward.
func TestDeadlinesOneTimer(t *testing.T) {
	b := newHost(t, "b")
	a := newHost(t, "a", withPeers(b.peer(TCP)))
	b.serve("work", &tryEP{slowFor: 3 * time.Second}, []string{"slow"}, nil)
	waitRoute(t, a, "slow.x")
	var wg sync.WaitGroup
	for i, d := range []time.Duration{900 * time.Millisecond, 500 * time.Millisecond, 200 * time.Millisecond} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := call(a, "slow.x", "x", d)
			took := time.Since(start)
			if message.StatusOf(err) != abi.StatusTimeout {
				t.Errorf("request %d (deadline %v): %v, want a timeout", i, d, err)
			}
			// Not before the deadline; the upper bound leaves room for a
			// loaded machine and is far below the handler's 3 s.
			if took < d || took > d+700*time.Millisecond {
				t.Errorf("request %d (deadline %v) ended after %v", i, d, took)
			}
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
}
