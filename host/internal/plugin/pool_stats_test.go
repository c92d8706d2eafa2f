package plugin

import (
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestPoolWaitsCounted: with one instance and a queue of one, three
// requests to a looping guest: one runs, one waits for the instance, one
// is refused busy. Stats counts the wait and the refusal, and keeps both
// after the version is swapped out (for /metrics, whose counters must
// never go back).
func TestPoolWaitsCounted(t *testing.T) {
	e := newEngine(t)
	v := load(t, e, Spec{Name: "loop", Wasm: fixture(t, "loop.wasm"), Instances: 1, Queue: 1, Timeout: time.Second})
	p := New("loop", v)
	t.Cleanup(p.Close)
	errs := make(chan error, 3)
	for range 3 {
		go func() { _, err := request(p, "loop.x", "", 5*time.Second); errs <- err }()
	}
	busy := 0
	for range 3 {
		if err := <-errs; message.StatusOf(err) == abi.StatusBusy {
			busy++
		}
	}
	st := p.Stats()
	if busy != 1 || st.RefusedBusy != 1 || st.Waits < 1 || st.Waiting != 0 {
		t.Fatalf("busy answers %d, stats %+v: want 1 refused, at least 1 wait, none waiting now", busy, st)
	}
	<-p.Swap(load(t, e, Spec{Name: "loop", Wasm: fixture(t, "echo.wasm"), Instances: 1, Queue: 1}))
	if after := p.Stats(); after.RefusedBusy != st.RefusedBusy || after.Waits != st.Waits {
		t.Errorf("after a swap: %+v, before %+v", after, st)
	}
}
