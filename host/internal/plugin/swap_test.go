package plugin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestStatsNeverGoDown: counters are Prometheus-style, so a swap must not
// make them drop while the old version drains (its calls used to vanish
// from the sum until it was fully closed).
func TestStatsNeverGoDown(t *testing.T) {
	e := newEngine(t)
	old := load(t, e, Spec{Name: "p", Wasm: fixture(t, "loop.wasm"), Instances: 1, Timeout: 2 * time.Second})
	p := New("p", old)
	defer p.Close()
	done := make(chan error, 1)
	go func() { _, err := request(p, "p.x", "", 2*time.Second); done <- err }()
	hosttest.CheckForEvery(t, 10*time.Second, 5*time.Millisecond, func() error {
		// The instance is taken (Busy) a moment before the call is
		// counted: wait for both.
		if s := p.Stats(); s.Busy == 0 || s.Calls == 0 {
			return fmt.Errorf("the call never started: %+v", s)
		}
		return nil
	})
	before := p.Stats()
	if before.Calls != 1 {
		t.Fatalf("before the swap: %+v, want 1 call", before)
	}
	v, err := e.Load(context.Background(), Spec{Name: "p", Wasm: fixture(t, "echo_a.wasm"), Instances: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	drained := p.Swap(v)
	// The old version is draining: its call is still running.
	if s := p.Stats(); s.Calls < before.Calls || s.Errors < before.Errors {
		t.Fatalf("counters went down during the drain: before %+v, after the swap %+v", before, s)
	}
	if r, err := request(p, "p.x", "hi", 5*time.Second); string(r) != "A:hi" || err != nil {
		t.Fatalf("new version: %q %v", r, err)
	}
	if err := <-done; message.StatusOf(err) != abi.StatusTimeout {
		t.Fatalf("the looping call: %v, want timeout", err)
	}
	<-drained
	if s := p.Stats(); s.Calls != 2 || s.Errors != 1 {
		t.Fatalf("after the drain: %+v, want 2 calls and 1 error", s)
	}
}

// TestErrorsNeverExceedCalls: a request refused busy, or timed out waiting
// for an instance, is a call that failed: it counts in both counters.
func TestErrorsNeverExceedCalls(t *testing.T) {
	e := newEngine(t)
	v := load(t, e, Spec{Name: "loop", Wasm: fixture(t, "loop.wasm"), Instances: 1, Queue: 1, Timeout: 300 * time.Millisecond})
	p := New("loop", v)
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := request(p, "loop.x", "", 2*time.Second); errs <- err }()
	}
	for range 4 {
		if err := <-errs; err == nil {
			t.Fatal("a call to a looping plugin succeeded")
		}
	}
	if s := p.Stats(); s.Calls != 4 || s.Errors != 4 {
		t.Fatalf("stats %+v, want 4 calls and 4 errors", s)
	}
}
