package router

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestUpdateMovesServiceInOneSnapshot: a service moved between two owners
// by one Update is never without an owner, however the lookups interleave.
func TestUpdateMovesServiceInOneSnapshot(t *testing.T) {
	var changes atomic.Int64
	r := newRouter(t, Options{OnChange: func() { changes.Add(1) }})
	a, b := &stubEndpoint{name: "a"}, &stubEndpoint{name: "b"}
	mustSetRoutes(t, r, "a", a, []string{"svc", "x"}, nil)
	mustSetRoutes(t, r, "b", b, []string{"y"}, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, s := range []string{"svc.m", "x.m", "y.m"} {
					calls.Add(1)
					if _, err := r.Call(context.Background(), &message.Message{Subject: s}); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
			}
		}()
	}
	before := changes.Load()
	const moves = 2000
	for i := range moves {
		aSvcs, bSvcs := []string{"x"}, []string{"svc", "y"}
		if i%2 == 1 {
			aSvcs, bSvcs = []string{"svc", "x"}, []string{"y"}
		}
		if err := r.Update(Change{Owner: "a", Endpoint: a, Services: aSvcs}, Change{Owner: "b", Endpoint: b, Services: bSvcs}); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed while a service moved, first: %v", n, calls.Load(), firstErr.Load())
	}
	if n := changes.Load() - before; n != moves {
		t.Fatalf("OnChange called %d times for %d updates, want once per update", n, moves)
	}
}

// TestUpdateRefusesTwoOwners: a result where two owners serve one service
// is refused whole, naming both.
func TestUpdateRefusesTwoOwners(t *testing.T) {
	r := newRouter(t, Options{})
	a, b, c := &stubEndpoint{name: "a"}, &stubEndpoint{name: "b"}, &stubEndpoint{name: "c"}
	mustSetRoutes(t, r, "a", a, []string{"svc"}, nil)
	err := r.Update(Change{Owner: "c", Endpoint: c, Services: []string{"z"}}, Change{Owner: "b", Endpoint: b, Services: []string{"svc"}})
	if err == nil || !strings.Contains(err.Error(), `set routes for "b": service "svc" is already served by "a"`) {
		t.Fatalf("err = %v", err)
	}
	if got := r.Routes(); len(got) != 1 || got[0].Owner != "a" {
		t.Fatalf("a refused update changed the routes: %+v", got)
	}
	// Removing a and adding b in the same update is a move, not a clash.
	if err := r.Update(Change{Owner: "a"}, Change{Owner: "b", Endpoint: b, Services: []string{"svc"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Call(context.Background(), &message.Message{Subject: "svc.m"}); string(got) != "b" || err != nil {
		t.Fatalf("after the move: %q %v", got, err)
	}
	if err := r.Update(Change{Owner: "b"}, Change{Owner: "b", Endpoint: b}); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Fatalf("owner twice: %v", err)
	}
}

// goneEndpoint is a plugin removed by a reload between the lookup that
// chose it and its Request: it moves its service to next, as the reload
// did, and then answers ErrGone.
type goneEndpoint struct {
	r    *Router
	next Endpoint
}

func (g *goneEndpoint) Request(context.Context, *message.Message) ([]byte, error) {
	g.r.Update(Change{Owner: "old"}, Change{Owner: "new", Endpoint: g.next, Services: []string{"svc"}})
	return nil, ErrGone
}

func (g *goneEndpoint) Post(*message.Message) error {
	g.r.Update(Change{Owner: "old"}, Change{Owner: "new", Endpoint: g.next, Services: []string{"svc"}})
	return ErrGone
}

// TestGoneEndpointIsRoutedAgain: a request or send that meets a closed
// endpoint goes to the owner of the moment instead of failing.
func TestGoneEndpointIsRoutedAgain(t *testing.T) {
	for _, verb := range []string{"call", "send"} {
		t.Run(verb, func(t *testing.T) {
			r := newRouter(t, Options{})
			next := &stubEndpoint{name: "new"}
			mustSetRoutes(t, r, "old", &goneEndpoint{r: r, next: next}, []string{"svc"}, nil)
			m := &message.Message{Subject: "svc.m", Deadline: time.Now().Add(time.Second)}
			if verb == "call" {
				if got, err := r.Call(context.Background(), m); string(got) != "new" || err != nil {
					t.Fatalf("call: %q %v", got, err)
				}
			} else if err := r.Send(context.Background(), m); err != nil {
				t.Fatalf("send: %v", err)
			}
			if reqs, posts := next.got(); len(reqs)+len(posts) != 1 {
				t.Fatalf("the new owner got %d requests and %d posts, want 1", len(reqs), len(posts))
			}
			if s := r.Stats(); s.Calls+s.Sends != 1 || s.NoHandler != 0 {
				t.Fatalf("stats %+v: a message routed again counts once", s)
			}
		})
	}
	// An owner that is gone every time ends with no_handler, not a loop.
	r := newRouter(t, Options{})
	mustSetRoutes(t, r, "g", alwaysGone{}, []string{"svc"}, nil)
	_, err := r.Call(context.Background(), &message.Message{Subject: "svc.m"})
	wantStatus(t, err, abi.StatusNoHandler, "went away")
}

type alwaysGone struct{}

func (alwaysGone) Request(context.Context, *message.Message) ([]byte, error) { return nil, ErrGone }
func (alwaysGone) Post(*message.Message) error                               { return ErrGone }
