package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// slowService serves service "slow" on the node of h from a Go handler
// that holds every request until release is closed (or the request's
// context ends), counting the requests it holds.
func slowService(t *testing.T, h *cluster.Host, release <-chan struct{}) *atomic.Int64 {
	t.Helper()
	var held atomic.Int64
	stop, err := h.Node().Serve("slow", []string{"slow"}, func(ctx context.Context, m *message.Message) ([]byte, error) {
		held.Add(1)
		select {
		case <-release:
			return []byte("done " + string(m.Payload)), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return &held
}

// callResult is the outcome of a call made in the background.
type callResult struct {
	out string
	err error
}

func callAsync(f func() (string, error)) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		out, err := f()
		ch <- callResult{out, err}
	}()
	return ch
}

// TestDrainFinishesCallsInFlight: host a serves "slow", host b dials a.
// With one call in flight from a's control API and one from b over the
// mesh, a drains: new calls on a are refused with busy ("draining"),
// /readyz on a answers 503 naming the drain, b is told at once that a
// leaves (a is no longer up there, and b has no route to slow any more,
// while its call in flight still waits), and once the handler lets
// go both calls get their replies and Drain returns nil. Before the drain
// existed a stop closed the control API and the mesh within fixed graces
// and nothing refused new calls.
func TestDrainFinishesCallsInFlight(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Hosts: 2})
	a, b := cl.Host("a"), cl.Host("b")
	release := make(chan struct{})
	held := slowService(t, a, release)
	hosttest.CheckFor(t, 15*time.Second, func() error { return b.HasRoute("slow") })

	local := callAsync(func() (string, error) {
		out, err := a.Client.Call(context.Background(), "slow.x", []byte("local"), nil, 60*time.Second)
		return string(out), err
	})
	remote := callAsync(func() (string, error) {
		out, err := b.Client.Call(context.Background(), "slow.x", []byte("remote"), nil, 60*time.Second)
		return string(out), err
	})
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if n := held.Load(); n != 2 {
			return fmt.Errorf("%d calls held by the handler, want 2", n)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- a.Node().Drain(ctx) }()
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if !a.Node().Draining() {
			return errors.New("not draining yet")
		}
		return nil
	})

	_, err := a.Client.Call(context.Background(), "slow.x", []byte("new"), nil, 5*time.Second)
	if message.StatusOf(err) != abi.StatusBusy || !strings.Contains(err.Error(), "draining") {
		t.Errorf("a new call on the draining node: %v, want busy naming the drain", err)
	}
	if _, err := a.Client.CallNode(context.Background(), "a", "slow.x", nil, nil, 5*time.Second); message.StatusOf(err) != abi.StatusBusy {
		t.Errorf("a new call with node= on the draining node: %v, want busy", err)
	}
	if err := a.Client.Send(context.Background(), "slow.x", nil, nil); message.StatusOf(err) != abi.StatusBusy {
		t.Errorf("a new send on the draining node: %v, want busy", err)
	}
	if _, err := a.Client.Publish(context.Background(), "news.x", nil, nil); message.StatusOf(err) != abi.StatusBusy {
		t.Errorf("a new publish on the draining node: %v, want busy", err)
	}
	rd, err := a.Client.Ready(context.Background())
	if err != nil || rd.Ready || !strings.Contains(strings.Join(rd.Reasons, "|"), "draining") {
		t.Errorf("/readyz of the draining node: %+v, %v", rd, err)
	}
	hosttest.CheckFor(t, 15*time.Second, func() error {
		ps, err := b.Peers()
		if err != nil {
			return err
		}
		for _, p := range ps {
			// b dials a, so it shows a by its dialer (redialling a
			// node whose listener is closed) once the link is retired.
			if p.Name == "a" && p.State == control.PeerUp {
				return fmt.Errorf("b sees a %s", p.State)
			}
		}
		return b.NoRoute("slow")
	})
	select {
	case r := <-remote:
		t.Fatalf("b's call in flight ended before the handler let go: %+v", r)
	case r := <-local:
		t.Fatalf("a's call in flight ended before the handler let go: %+v", r)
	case err := <-drained:
		t.Fatalf("Drain returned with two calls in flight: %v", err)
	default:
	}

	close(release)
	for name, ch := range map[string]<-chan callResult{"local": local, "remote": remote} {
		select {
		case r := <-ch:
			if r.err != nil || r.out != "done "+name {
				t.Errorf("%s call in flight: %q, %v", name, r.out, r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s call in flight: no reply 30s after the handler let go", name)
		}
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Drain: %v, want nil: every call finished", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drain still running 30s after the calls finished")
	}
}

// TestDrainTimesOut: a call held past the drain's deadline makes Drain
// return an error that says work was still in flight, at the deadline and
// not when the call ends.
func TestDrainTimesOut(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Hosts: 1})
	a := cl.Host("a")
	release := make(chan struct{})
	defer close(release)
	held := slowService(t, a, release)
	call := callAsync(func() (string, error) {
		out, err := a.Client.Call(context.Background(), "slow.x", nil, nil, 60*time.Second)
		return string(out), err
	})
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if held.Load() != 1 {
			return errors.New("the call has not reached the handler")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.Node().Drain(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 call(s) or send(s) still in flight") {
		t.Errorf("Drain with a call held: %v, want the deadline and the call still in flight", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Drain took %v with a 300ms deadline", took)
	}
	select {
	case r := <-call:
		t.Errorf("the held call ended during the drain: %+v", r)
	default:
	}
}
