package plugin

import (
	"context"
	"errors"
	"fmt"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/plugins"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "wat", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := NewEngine(EngineOptions{WatchdogTick: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func load(t testing.TB, e *Engine, spec Spec) *Version {
	t.Helper()
	v, err := e.Load(context.Background(), spec, nil)
	if err != nil {
		t.Fatalf("load %s: %v", spec.Name, err)
	}
	t.Cleanup(v.Close)
	return v
}

func request(v interface {
	Request(context.Context, *message.Message) ([]byte, error)
}, subject, payload string, timeout time.Duration) ([]byte, error) {
	return v.Request(context.Background(), &message.Message{
		Kind: abi.KindRequest, Subject: subject, Payload: []byte(payload),
		Deadline: time.Now().Add(timeout),
	})
}

func TestEchoWAT(t *testing.T) {
	e := newEngine(t)
	v := load(t, e, Spec{Name: "echo", Wasm: fixture(t, "echo.wasm"), Instances: 2})
	for _, tc := range []struct{ in, want string }{
		{"hello", "HELLO"},
		{"", ""},
		{"Mixed 123 ünïcode", "MIXED 123 üNïCODE"},
		{strings.Repeat("ab", 40000), strings.Repeat("AB", 40000)},
	} {
		got, err := request(v, "echo.upper", tc.in, time.Second)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if string(got) != tc.want {
			t.Fatalf("%q: got %q", tc.in[:min(len(tc.in), 20)], got[:min(len(got), 20)])
		}
	}
}

// TestHostile runs every abusive fixture and checks the exact error, that
// the instance was replaced, and that other plugins kept serving meanwhile.
func TestHostile(t *testing.T) {
	e := newEngine(t)
	echo := load(t, e, Spec{Name: "echo", Wasm: fixture(t, "echo.wasm"), Instances: 1})
	for _, tc := range []struct {
		fixture  string
		spec     Spec
		payload  string
		status   abi.Status
		contains string
		restart  bool
	}{
		{"loop.wasm", Spec{Timeout: 300 * time.Millisecond}, "x", abi.StatusTimeout, "did not finish within its deadline", true},
		{"memgrow.wasm", Spec{Memory: 1 << 20}, "x", abi.StatusTrap, "memory.grow failed at its memory limit (1048576 bytes, limits.memory; memory is 1048576 bytes)", true},
		// One refused grow, memory far below the cap: still named.
		{"biggrow.wasm", Spec{Memory: 1 << 20}, "x", abi.StatusTrap, "memory.grow failed at its memory limit (1048576 bytes, limits.memory; memory is 131072 bytes)", true},
		{"trap.wasm", Spec{}, "boom", abi.StatusTrap, "trapped: wasm error: unreachable", true},
		{"badptr.wasm", Spec{}, "x", abi.StatusTrap, "ABI violation: reply: range [0xfffffff0, +64) is outside linear memory", true},
		{"badalloc.wasm", Spec{}, "x", abi.StatusTrap, "ABI violation: pycomms_alloc(", true},
		{"badwrite.wasm", Spec{Config: map[string]any{"k": "v"}}, "x", abi.StatusTrap, "ABI violation: config: range [0xfffffff0, +5) is outside linear memory", true},
		{"nogrant.wasm", Spec{}, "x", abi.StatusDenied, `capability "publish" not granted to plugin "nogrant"`, false},
		{"bigreply.wasm", Spec{MaxReply: 1 << 20}, "x", abi.StatusTooLarge, "reply of 2097152 bytes exceeds max_reply (1048576 bytes)", false},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			spec := tc.spec
			spec.Name = strings.TrimSuffix(tc.fixture, ".wasm")
			spec.Wasm = fixture(t, tc.fixture)
			spec.Instances = 1
			v := load(t, e, spec)

			// Keep the other plugin busy while the hostile one misbehaves.
			stop := make(chan struct{})
			var served, failed atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if r, err := request(echo, "echo.upper", "ok", time.Second); err != nil || string(r) != "OK" {
						failed.Add(1)
					} else {
						served.Add(1)
					}
				}
			}()
			for i := 0; served.Load() == 0 && i < 1000; i++ {
				time.Sleep(time.Millisecond)
			}
			before := served.Load()
			_, err := request(v, spec.Name+".x", tc.payload, 5*time.Second)
			close(stop)
			wg.Wait()
			if err == nil {
				t.Fatal("want an error")
			}
			if got := message.StatusOf(err); got != tc.status {
				t.Fatalf("status %v, want %v (%v)", got, tc.status, err)
			}
			if !strings.Contains(err.Error(), tc.contains) || !strings.Contains(err.Error(), `plugin "`+spec.Name+`"`) {
				t.Fatalf("error %q does not name %q and the plugin", err, tc.contains)
			}
			if want := map[bool]uint64{true: 1, false: 0}[tc.restart]; v.Restarts() != want {
				t.Fatalf("restarts = %d, want %d", v.Restarts(), want)
			}
			if failed.Load() > 0 || before == 0 {
				t.Fatalf("other plugin: %d served, %d failed", served.Load(), failed.Load())
			}
			// The fresh (or same) instance still answers.
			_, err2 := request(v, spec.Name+".x", tc.payload, 5*time.Second)
			if message.StatusOf(err2) != tc.status {
				t.Fatalf("second call: %v", err2)
			}
		})
	}
}

func TestTrapThenServe(t *testing.T) {
	e := newEngine(t)
	v := load(t, e, Spec{Name: "trap", Wasm: fixture(t, "trap.wasm"), Instances: 1})
	if _, err := request(v, "trap.x", "boom", time.Second); message.StatusOf(err) != abi.StatusTrap {
		t.Fatalf("boom: %v", err)
	}
	r, err := request(v, "trap.x", "fine", time.Second)
	if err != nil || string(r) != "ok" {
		t.Fatalf("after trap: %q %v", r, err)
	}
	if v.Restarts() != 1 {
		t.Fatalf("restarts %d", v.Restarts())
	}
}

func TestLoadErrors(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct{ fixture, contains string }{
		{"wrongabi.wasm", "plugin ABI version 7 is not supported: this host accepts 1..1"},
		{"noexport.wasm", `missing export "pycomms_handle"`},
		{"notwasm.wasm", "not a WebAssembly module"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			err := e.Check(context.Background(), Spec{Name: "x", Wasm: fixture(t, tc.fixture)})
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("got %v, want %q", err, tc.contains)
			}
		})
	}
}

func TestDeadlineFromCaller(t *testing.T) {
	e := newEngine(t)
	v := load(t, e, Spec{Name: "loop", Wasm: fixture(t, "loop.wasm"), Timeout: time.Hour})
	start := time.Now()
	_, err := request(v, "loop.x", "", 200*time.Millisecond)
	if message.StatusOf(err) != abi.StatusTimeout {
		t.Fatalf("got %v", err)
	}
	// Liveness bound with a generous margin for a loaded 2-core machine.
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stopped after %v", d)
	}
}

// TestDeadlineBounds: the deadline a message gets is the sender's when
// that comes first, exactly; otherwise the plugin's timeout from the
// message's arrival, at most clockSlack late (when deadline skips the clock
// read); never earlier than either bound.
func TestDeadlineBounds(t *testing.T) {
	e := newEngine(t)
	const timeout = time.Second
	v := load(t, e, Spec{Name: "echo", Wasm: fixture(t, "echo.wasm"), Timeout: timeout})
	T := int64(timeout)
	for _, c := range []struct {
		name   string
		sender time.Duration // from now; 0: no sender deadline
	}{
		{"no sender deadline", 0},
		{"sender first", timeout / 2},
		{"sender just past the timeout", timeout + time.Duration(clockSlack)/2},
		{"sender the same as the timeout", timeout},
		{"sender a few slacks past the timeout", timeout + 5*time.Duration(clockSlack)},
		{"sender long after the timeout", 10 * timeout},
		{"sender long gone", -time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range 3 { // the first may read the clock, the next ones not
				m := &message.Message{Kind: abi.KindRequest, Subject: "echo.x"}
				sender := int64(math.MaxInt64)
				if c.sender != 0 {
					m.Deadline = time.Now().Add(c.sender)
					sender = max(int64(m.Deadline.Sub(epoch)), 1)
				}
				a0 := nanotime()
				dl := v.deadline(m)
				a1 := nanotime()
				lo, hi := min(sender, a0+T), min(sender, a1+T)+clockSlack
				if dl < lo || dl > hi {
					t.Fatalf("deadline %d outside [%d, %d] (sender %d, arrival in [%d, %d])", dl, lo, hi, sender, a0, a1)
				}
				if sender < a0+T && dl != sender {
					t.Fatalf("deadline %d, want the sender's %d exactly", dl, sender)
				}
			}
		})
	}
}

func TestBusy(t *testing.T) {
	e := newEngine(t)
	v := load(t, e, Spec{Name: "loop", Wasm: fixture(t, "loop.wasm"), Instances: 1, Queue: 1, Timeout: 2 * time.Second})
	errs := make(chan error, 3)
	for range 3 {
		go func() { _, err := request(v, "loop.x", "", 2*time.Second); errs <- err }()
	}
	var busy int
	for range 3 {
		if err := <-errs; message.StatusOf(err) == abi.StatusBusy {
			busy++
		}
	}
	if busy != 1 {
		t.Fatalf("busy = %d, want exactly 1 (one running, one queued)", busy)
	}
}

// slowService is a plain-Go service on the router that takes a while to
// answer, so that a handler calling it leaves its goroutine parked while
// holding its instance.
type slowService struct{}

func (slowService) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	time.Sleep(200 * time.Microsecond)
	return []byte("ok"), nil
}

func (slowService) Post(*message.Message) error { return nil }

// TestPoolHandsOff: many more callers than instances, each handler
// parked in a call while it holds its instance, so that most checkouts
// wait. Every call gets an instance (a waiter never sleeps past a free
// one: put and checkout see each other), and afterwards every instance
// is idle again: in the pool, or in the hand-off channel when its waiter
// had found another.
func TestPoolHandsOff(t *testing.T) {
	e := newEngine(t)
	r := router.New(router.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := r.SetRoutes("slow", slowService{}, []string{"svc.slow"}, nil); err != nil {
		t.Fatal(err)
	}
	v, err := e.Load(context.Background(), Spec{Name: "caller", Wasm: fixture(t, "caller.wasm"), Instances: 2, Queue: 64,
		Grants: []abi.Capability{abi.CapCall}}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	const callers, calls = 16, 50
	errs := make(chan error, callers)
	for range callers {
		go func() {
			for range calls {
				// A waiter that missed a free instance waits until its
				// deadline: 5 s is far beyond a queue of 16 such calls.
				if got, err := request(v, "caller.x", "svc.slow.wait", 5*time.Second); err != nil || string(got) != "ok" {
					errs <- fmt.Errorf("reply %q, err %v", got, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := v.Busy(); n != 0 {
		t.Fatalf("Busy() = %d after every call returned, want 0", n)
	}
	idle := len(v.idle)
	for _, w := range v.all {
		if w.deadline.Load() == 0 {
			idle++
		}
	}
	if idle != len(v.all) {
		t.Fatalf("%d of %d instances idle after every call returned", idle, len(v.all))
	}
}

func TestSwapUnderLoad(t *testing.T) {
	e := newEngine(t)
	a, b := fixture(t, "echo_a.wasm"), fixture(t, "echo_b.wasm")
	v0 := load(t, e, Spec{Name: "ab", Wasm: a, Instances: 2})
	p := New("ab", v0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	var calls int
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := request(p, "ab.x", "hi", 5*time.Second)
				mu.Lock()
				calls++
				if err == nil && string(r) != "A:hi" && string(r) != "B:hi" {
					err = fmt.Errorf("unexpected reply %q", r)
				}
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		}()
	}
	var last string
	for i := range 20 {
		wasm, tag := a, "A:"
		if i%2 == 0 {
			wasm, tag = b, "B:"
		}
		v, err := e.Load(context.Background(), Spec{Name: "ab", Wasm: wasm, Instances: 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		<-p.Swap(v)
		last = tag
	}
	close(stop)
	wg.Wait()
	defer p.Close()
	if len(failures) > 0 {
		t.Fatalf("%d of %d calls failed, first: %v", len(failures), calls, failures[0])
	}
	for range 20 {
		r, err := request(p, "ab.x", "hi", time.Second)
		if err != nil || string(r) != last+"hi" {
			t.Fatalf("after the last swap got %q %v, want %q", r, err, last+"hi")
		}
	}
	if s := p.Stats(); s.Calls < uint64(calls) {
		t.Fatalf("stats lost calls: %d < %d", s.Calls, calls)
	}
}

// TestPayloadLargerThanMemory: a message that cannot fit in the plugin's
// memory fails with too_large naming limits.memory and the sizes, not with
// trap. For the WAT echo and the Go echo, a message larger than the whole
// memory cap is refused before pycomms_alloc runs and the same instance
// (no restart) serves the next message. For the WAT echo, a message that
// fits the cap but not the memory its allocator can still grow to (it
// needs twice the message) gets 0 from pycomms_alloc: the instance is kept
// too. The Go runtime aborts instead (a trap inside pycomms_alloc): still
// too_large, but that instance is replaced.
func TestPayloadLargerThanMemory(t *testing.T) {
	e := newEngine(t)
	goEcho, ok := plugins.Builtin("echo")
	if !ok {
		t.Fatal("no builtin Go echo")
	}
	const limit = 4 << 20
	for _, tc := range []struct {
		name     string
		wasm     []byte
		memory   uint64
		warm     int // a message sent first, to grow the memory
		payload  int
		contains []string
		restarts uint64
	}{
		{"wat over the cap", fixture(t, "echo.wasm"), 4 * 65536, 0, 300 << 10, []string{"exceeds limits.memory (262144 bytes)"}, 0},
		{"wat allocator out of memory", fixture(t, "echo.wasm"), 4 * 65536, 0, 150 << 10,
			[]string{"pycomms_alloc(153610) could not allocate it (memory 65536 of limits.memory 262144 bytes)"}, 0},
		// The memory is at the cap, so address 0 plus the message is in
		// bounds: the 0 from pycomms_alloc must not be taken as a buffer.
		{"wat allocator returns 0 within memory", fixture(t, "echo.wasm"), 4 * 65536, 90 << 10, 100 << 10,
			[]string{"pycomms_alloc(102410) could not allocate it (memory 262144 of limits.memory 262144 bytes)"}, 0},
		{"go over the cap", goEcho, limit, 0, limit + 1, []string{fmt.Sprintf("exceeds limits.memory (%d bytes)", limit)}, 0},
		{"go allocator out of memory", goEcho, limit, 0, 3 << 20,
			[]string{"pycomms_alloc(3145738) trapped with memory ", fmt.Sprintf(" of limits.memory %d bytes (instance replaced)", limit)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := load(t, e, Spec{Name: "echo", Wasm: tc.wasm, Instances: 1, Memory: tc.memory, Timeout: time.Minute})
			if tc.warm > 0 {
				if _, err := request(v, "echo.upper", strings.Repeat("w", tc.warm), time.Minute); err != nil {
					t.Fatalf("warm-up message of %d bytes: %v", tc.warm, err)
				}
			}
			_, err := request(v, "echo.upper", strings.Repeat("x", tc.payload), time.Minute)
			if message.StatusOf(err) != abi.StatusTooLarge {
				t.Fatalf("payload of %d bytes: status %v (%v), want too_large", tc.payload, message.StatusOf(err), err)
			}
			for _, want := range append(tc.contains, fmt.Sprintf("payload %d,", tc.payload)) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if r, err := request(v, "echo.upper", "still here", time.Minute); err != nil || string(r) != "STILL HERE" {
				t.Fatalf("next message: %q, %v", r, err)
			}
			if n := v.Restarts(); n != tc.restarts {
				t.Fatalf("the instance was replaced %d times, want %d", n, tc.restarts)
			}
		})
	}
}

// TestIdleWatchdogSleeps: a version with no message in flight costs no
// CPU: its watchdog stops waking once the last call is done, and wakes
// again for the next one, whose deadline is still enforced.
func TestIdleWatchdogSleeps(t *testing.T) {
	e := newEngine(t) // 5 ms watchdog tick
	echo := load(t, e, Spec{Name: "echo", Wasm: fixture(t, "echo.wasm"), Instances: 2})
	loop := load(t, e, Spec{Name: "loop", Wasm: fixture(t, "loop.wasm"), Instances: 1, Timeout: time.Hour})
	if r, err := request(echo, "echo.upper", "hi", time.Second); err != nil || string(r) != "HI" {
		t.Fatalf("echo: %q %v", r, err)
	}
	// After the call the watchdog may pass a few more times; then it must
	// stay asleep for a window of 40 ticks. Poll for such a window.
	quiet := func(v *Version) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); ; {
			before := v.dogWakes.Load()
			time.Sleep(200 * time.Millisecond)
			if got := v.dogWakes.Load(); got == before {
				return
			} else if time.Now().After(end) {
				t.Fatalf("plugin %q: the idle watchdog still wakes (%d wakeups in the last 200 ms, %d in all)", v.spec.Name, got-before, got)
			}
		}
	}
	quiet(echo)
	quiet(loop)
	// An idle watchdog still stops a runaway guest: it arms on demand.
	start := time.Now()
	if _, err := request(loop, "loop.x", "", 200*time.Millisecond); message.StatusOf(err) != abi.StatusTimeout {
		t.Fatalf("loop after idle: %v, want timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("loop stopped after %v", d)
	}
	quiet(loop)
}

// TestTryRequest: TryRequest runs a request when an instance is idle and
// does nothing (ok false, no call counted) when none is; it never waits.
func TestTryRequest(t *testing.T) {
	e := newEngine(t)
	echo := New("echo", load(t, e, Spec{Name: "echo", Wasm: fixture(t, "echo.wasm"), Instances: 1}))
	out, ok, err := echo.TryRequest(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "echo.upper", Payload: []byte("hi"), Deadline: time.Now().Add(time.Second)})
	if !ok || err != nil || string(out) != "HI" {
		t.Fatalf("TryRequest on an idle instance: %q ok=%v err=%v", out, ok, err)
	}
	loop := load(t, e, Spec{Name: "loop", Wasm: fixture(t, "loop.wasm"), Instances: 1, Timeout: 2 * time.Second})
	done := make(chan error, 1)
	go func() { _, err := request(loop, "loop.x", "", 2*time.Second); done <- err }()
	hosttest.CheckFor(t, 2*time.Second, func() error {
		if loop.Busy() == 0 {
			return errors.New("the loop has not started")
		}
		return nil
	})
	calls := loop.calls.Load()
	start := time.Now()
	_, ok, err = loop.TryRequest(&message.Message{Kind: abi.KindRequest, Subject: "loop.x", Deadline: time.Now().Add(time.Second)})
	if ok || err != nil {
		t.Fatalf("TryRequest with every instance busy: ok=%v err=%v, want ok false", ok, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("TryRequest waited %v", took)
	}
	if loop.calls.Load() != calls {
		t.Fatal("a TryRequest that did nothing was counted as a call")
	}
	<-done
}
