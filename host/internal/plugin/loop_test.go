package plugin

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/plugins"
)

// loopEngine is shared by the tests here, so that the Go echo compiles
// once (seconds under -race); each test gets its own log through it.
var loopEngine struct {
	sync.Mutex
	e    *Engine
	logs *hosttest.SyncBuffer
}

// serveGoEcho loads the Go echo plugin with the call grant behind a real
// router, the way a node wires it, and returns the router and the log.
func serveGoEcho(t *testing.T, instances int) (*router.Router, *Plugin, *hosttest.SyncBuffer) {
	t.Helper()
	wasm, ok := plugins.Builtin("echo")
	if !ok {
		t.Fatal("no builtin Go echo")
	}
	loopEngine.Lock()
	if loopEngine.e == nil {
		loopEngine.logs = &hosttest.SyncBuffer{}
		e, err := NewEngine(EngineOptions{WatchdogTick: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(loopEngine.logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		loopEngine.e = e // lives as long as the test binary
	}
	e, logs := loopEngine.e, loopEngine.logs
	loopEngine.Unlock()
	logs.Reset()
	r := router.New(router.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	v, err := e.Load(context.Background(), Spec{Name: "echo", Wasm: wasm, Instances: instances, Timeout: time.Minute,
		Grants: []abi.Capability{abi.CapCall, abi.CapLog}}, r)
	if err != nil {
		t.Fatal(err)
	}
	p := New("echo", v)
	t.Cleanup(p.Close)
	if err := r.SetRoutes("echo", p, []string{"echo"}, nil); err != nil {
		t.Fatal(err)
	}
	return r, p, logs
}

func call(r *router.Router, subject, payload string, timeout time.Duration) ([]byte, error) {
	return r.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: subject,
		Payload: []byte(payload), Deadline: time.Now().Add(timeout), From: "test"})
}

// TestCallLoopRefusedAtOnce: echo.loop calls itself. Once every instance of
// echo is held by that one chain, the next nested call can never get an
// instance: it fails at once with invalid naming the loop, long before the
// deadline, the loop is logged, and the error carries the outermost
// handler's name once, not once per level.
func TestCallLoopRefusedAtOnce(t *testing.T) {
	for _, instances := range []int{1, 3} {
		r, _, logs := serveGoEcho(t, instances)
		_, err := call(r, "echo.loop", "x", 20*time.Second)
		if message.StatusOf(err) != abi.StatusInvalid {
			t.Fatalf("%d instances: status %v (%v), want invalid", instances, message.StatusOf(err), err)
		}
		for _, want := range []string{"call loop", `"echo.loop"`, `plugin "echo"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d instances: error %q does not contain %q", instances, err, want)
			}
		}
		if n := strings.Count(err.Error(), `echo.loop:`); n != 1 {
			t.Errorf("%d instances: the error repeats its prefix (%d times): %q", instances, n, err)
		}
		if !strings.Contains(logs.String(), "call loop") {
			t.Errorf("%d instances: the loop was not logged:\n%s", instances, logs)
		}
		// Every instance is back: the plugin serves again.
		for range instances + 1 {
			if got, err := call(r, "echo.upper", "after", 5*time.Second); err != nil || string(got) != "AFTER" {
				t.Fatalf("%d instances: after the loop: %q %v", instances, got, err)
			}
		}
	}
}

// TestCallChainWaitsWhenNotALoop: a nested call into the chain's own
// plugin whose other instance is held by a different message is no loop:
// it waits for that instance and succeeds.
func TestCallChainWaitsWhenNotALoop(t *testing.T) {
	r, p, logs := serveGoEcho(t, 2)
	slept := make(chan error, 1)
	go func() {
		_, err := call(r, "echo.sleep", "300ms", 20*time.Second)
		slept <- err
	}()
	// Wait until the sleeper holds its instance: then echo.call holds the
	// other one and its nested echo.upper must wait for the sleeper's.
	hosttest.CheckForEvery(t, 10*time.Second, time.Millisecond, func() error {
		if p.Current().Busy() == 0 {
			return errors.New("echo.sleep never started: no instance of echo is busy")
		}
		return nil
	})
	got, err := call(r, "echo.call", "echo.upper chained", 20*time.Second)
	if err != nil || string(got) != "CHAINED" {
		t.Fatalf("echo.call: %q %v", got, err)
	}
	if err := <-slept; err != nil {
		t.Fatalf("echo.sleep: %v", err)
	}
	if strings.Contains(logs.String(), "call loop") {
		t.Fatalf("a wait was taken for a loop:\n%s", logs)
	}
}

// TestCallChainTooDeep: with more instances than the hop limit allows
// levels, echo.loop ends at the router's hop limit (16) instead, with
// invalid, and that error too goes up without a prefix per level.
func TestCallChainTooDeep(t *testing.T) {
	r, _, _ := serveGoEcho(t, router.DefaultMaxHops+2)
	_, err := call(r, "echo.loop", "x", 30*time.Second)
	if message.StatusOf(err) != abi.StatusInvalid || !strings.Contains(err.Error(), `call chain too deep (17 hops > 16): "echo.loop"`) {
		t.Fatalf("got %v (%v), want invalid: call chain too deep", err, message.StatusOf(err))
	}
	if n := strings.Count(err.Error(), `echo.loop:`); n != 1 {
		t.Errorf("the error repeats its prefix (%d times): %q", n, err)
	}
}
