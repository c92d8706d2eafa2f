package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// stubEndpoint stands in for a plugin: it replies with its name and records
// every message it is handed.
type stubEndpoint struct {
	name string
	busy atomic.Bool // Post refuses with StatusBusy while set

	mu       sync.Mutex
	requests []*message.Message
	posts    []*message.Message
}

func (e *stubEndpoint) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	e.mu.Lock()
	e.requests = append(e.requests, m)
	e.mu.Unlock()
	return []byte(e.name), nil
}

func (e *stubEndpoint) Post(m *message.Message) error {
	if e.busy.Load() {
		return message.Errorf(abi.StatusBusy, "%s: queue full", e.name)
	}
	e.mu.Lock()
	e.posts = append(e.posts, m)
	e.mu.Unlock()
	return nil
}

func (e *stubEndpoint) got() (requests, posts []*message.Message) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*message.Message(nil), e.requests...), append([]*message.Message(nil), e.posts...)
}

func (e *stubEndpoint) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests, e.posts = nil, nil
}

func newRouter(t testing.TB, opts Options) *Router {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return New(opts)
}

func mustSetRoutes(t testing.TB, r *Router, owner string, ep Endpoint, services, topics []string) {
	t.Helper()
	if err := r.SetRoutes(owner, ep, services, topics); err != nil {
		t.Fatalf("SetRoutes(%q): %v", owner, err)
	}
}

// wantStatus checks that err is a *message.Error with the given status whose
// text contains msg.
func wantStatus(t *testing.T, err error, status abi.Status, msg string) {
	t.Helper()
	var me *message.Error
	if !errors.As(err, &me) {
		t.Fatalf("error = %v (%T), want a *message.Error with status %v", err, err, status)
	}
	if me.Status != status || !strings.Contains(me.Msg, msg) {
		t.Fatalf("error = %v: %q, want %v containing %q", me.Status, me.Msg, status, msg)
	}
}

func TestRouting(t *testing.T) {
	r := newRouter(t, Options{})
	eps := map[string]*stubEndpoint{"a": {name: "a"}, "b": {name: "b"}, "c": {name: "c"}}
	mustSetRoutes(t, r, "a", eps["a"], []string{"echo"}, nil)
	mustSetRoutes(t, r, "b", eps["b"], []string{"echo.deep", "math.int"}, nil)
	mustSetRoutes(t, r, "c", eps["c"], []string{"x.y.z"}, nil)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name     string
		subject  string
		hops     int
		deadline time.Duration // relative to now; 0 means none
		ctx      context.Context
		want     string // owner that must get the message
		status   abi.Status
		errText  string // substring of the error
	}{
		{name: "method", subject: "echo.upper", want: "a"},
		{name: "deep method", subject: "echo.a.b", want: "a"},
		{name: "longest prefix wins", subject: "echo.deep.x", want: "b"},
		{name: "longest prefix, deeper method", subject: "echo.deep.x.y", want: "b"},
		{name: "nested service name is a method of the shorter", subject: "echo.deep", want: "a"},
		{name: "two-token service", subject: "math.int.add", want: "b"},
		{name: "three-token service", subject: "x.y.z.w", want: "c"},
		{name: "many tokens", subject: "echo" + strings.Repeat(".m", 500), want: "a"},
		{name: "many tokens, deepest service", subject: "x.y.z" + strings.Repeat(".m", 500), want: "c"},
		{name: "sibling of two-token service", subject: "math.add", status: abi.StatusNoHandler, errText: `no handler for "math.add"`},
		{name: "prefix of three-token service", subject: "x.y.w", status: abi.StatusNoHandler, errText: `no handler for "x.y.w"`},
		{name: "unknown", subject: "nosuch.thing", status: abi.StatusNoHandler, errText: `no handler for "nosuch.thing"`},
		{name: "service without method", subject: "echo", status: abi.StatusNoHandler,
			errText: `no handler for "echo": it is a service of "a", a subject needs a method ("echo.<method>")`},
		{name: "empty token", subject: "a..b", status: abi.StatusInvalid, errText: `subject "a..b": empty token at position 1`},
		{name: "wildcard", subject: "echo.*", status: abi.StatusInvalid, errText: `subject "echo.*": wildcard "*" at position 1`},
		{name: "empty subject", subject: "", status: abi.StatusInvalid, errText: `subject "": must not be empty`},
		{name: "hops at limit", subject: "echo.x", hops: 16, want: "a"},
		{name: "hops over limit", subject: "echo.x", hops: 17, status: abi.StatusInvalid, errText: `call chain too deep (17 hops > 16): "echo.x"`},
		{name: "invalid wins over hops", subject: "a..b", hops: 17, status: abi.StatusInvalid, errText: "empty token"},
		{name: "deadline ahead", subject: "echo.x", deadline: time.Hour, want: "a"},
		{name: "deadline passed", subject: "echo.x", deadline: -time.Second, status: abi.StatusTimeout, errText: `"echo.x": deadline passed`},
		{name: "deadline passed, no handler either", subject: "nosuch.x", deadline: -time.Second, status: abi.StatusTimeout, errText: "deadline passed"},
		{name: "context canceled", subject: "echo.x", ctx: canceled, status: abi.StatusTimeout, errText: `"echo.x": context canceled`},
	}
	for _, tt := range tests {
		for _, verb := range []string{"call", "send"} {
			t.Run(verb+"/"+tt.name, func(t *testing.T) {
				for _, ep := range eps {
					ep.reset()
				}
				ctx := tt.ctx
				if ctx == nil {
					ctx = context.Background()
				}
				m := &message.Message{Kind: abi.KindRequest, Subject: tt.subject, Payload: []byte("p"), Hops: tt.hops, From: "test"}
				if tt.deadline != 0 {
					m.Deadline = time.Now().Add(tt.deadline)
				}
				before := *m

				var reply []byte
				var err error
				if verb == "call" {
					reply, err = r.Call(ctx, m)
				} else {
					err = r.Send(ctx, m)
				}

				if !reflect.DeepEqual(*m, before) {
					t.Errorf("%s modified the message: %+v, was %+v", verb, *m, before)
				}
				if tt.want == "" {
					wantStatus(t, err, tt.status, tt.errText)
					for name, ep := range eps {
						if req, post := ep.got(); len(req)+len(post) != 0 {
							t.Errorf("endpoint %q was handed %d requests and %d posts, want none", name, len(req), len(post))
						}
					}
					return
				}
				if err != nil {
					t.Fatalf("%s(%q): %v", verb, tt.subject, err)
				}
				if verb == "call" && string(reply) != tt.want {
					t.Errorf("reply = %q, want %q", reply, tt.want)
				}
				for name, ep := range eps {
					req, post := ep.got()
					got := req
					if verb == "send" {
						got = post
					}
					if len(req)+len(post) != len(got) {
						t.Errorf("endpoint %q: %s went through the wrong method (%d requests, %d posts)", name, verb, len(req), len(post))
					}
					switch {
					case name == tt.want && (len(got) != 1 || got[0] != m):
						t.Errorf("endpoint %q got %v, want exactly the caller's message", name, got)
					case name != tt.want && len(got) != 0:
						t.Errorf("endpoint %q got %d messages, want none", name, len(got))
					}
				}
			})
		}
	}
}

func TestMaxHopsOption(t *testing.T) {
	r := newRouter(t, Options{MaxHops: 2})
	mustSetRoutes(t, r, "a", &stubEndpoint{name: "a"}, []string{"svc"}, []string{">"})
	tests := []struct {
		hops int
		ok   bool
	}{{0, true}, {2, true}, {3, false}}
	for _, tt := range tests {
		m := &message.Message{Subject: "svc.m", Hops: tt.hops}
		_, errCall := r.Call(context.Background(), m)
		errSend := r.Send(context.Background(), m)
		_, errPub := r.Publish(context.Background(), m)
		for name, err := range map[string]error{"Call": errCall, "Send": errSend, "Publish": errPub} {
			if tt.ok && err != nil {
				t.Errorf("%s with %d hops: %v", name, tt.hops, err)
			}
			if !tt.ok {
				wantStatus(t, err, abi.StatusInvalid, fmt.Sprintf("call chain too deep (%d hops > 2)", tt.hops))
			}
		}
	}
}

func TestSendBusy(t *testing.T) {
	r := newRouter(t, Options{})
	ep := &stubEndpoint{name: "a"}
	ep.busy.Store(true)
	mustSetRoutes(t, r, "a", ep, []string{"svc"}, nil)
	err := r.Send(context.Background(), &message.Message{Kind: abi.KindSend, Subject: "svc.m"})
	wantStatus(t, err, abi.StatusBusy, "a: queue full")
}

func TestSetRoutesErrors(t *testing.T) {
	ep := &stubEndpoint{name: "x"}
	tests := []struct {
		name     string
		owner    string
		ep       Endpoint
		services []string
		topics   []string
		errText  string
	}{
		{"conflict", "b", ep, []string{"other", "echo"}, nil, `set routes for "b": service "echo" is already served by "a"`},
		{"invalid service", "b", ep, []string{"ok", "x..y"}, nil, `set routes for "b": services[1]: subject "x..y": empty token at position 1`},
		{"wildcard service", "b", ep, []string{"x.*"}, nil, `set routes for "b": services[0]: subject "x.*": wildcard "*" at position 1: wildcards are only allowed in topic patterns`},
		{"invalid topic", "b", ep, nil, []string{"t.>", "a.>.b"}, `set routes for "b": topics[1]: pattern "a.>.b": wildcard ">" at position 1 must be the last token`},
		{"empty owner", "", ep, []string{"x"}, nil, "set routes: owner name is empty"},
		{"nil endpoint with routes", "b", nil, []string{"x"}, nil, `set routes for "b": endpoint is nil but 1 services and 0 topics are given`},
		{"conflict while replacing own routes", "a", ep, []string{"echo", "taken"}, nil, `set routes for "a": service "taken" is already served by "c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t, Options{})
			a := &stubEndpoint{name: "a"}
			mustSetRoutes(t, r, "a", a, []string{"echo"}, []string{"t.>"})
			mustSetRoutes(t, r, "c", &stubEndpoint{name: "c"}, []string{"taken"}, nil)
			before := r.Routes()

			err := r.SetRoutes(tt.owner, tt.ep, tt.services, tt.topics)
			if err == nil || err.Error() != tt.errText {
				t.Fatalf("SetRoutes error = %v, want %q", err, tt.errText)
			}
			if after := r.Routes(); !reflect.DeepEqual(after, before) {
				t.Errorf("routes changed after a refused SetRoutes: %+v, was %+v", after, before)
			}
			if reply, err := r.Call(context.Background(), &message.Message{Subject: "echo.x"}); err != nil || string(reply) != "a" {
				t.Errorf("echo.x after a refused SetRoutes: %q, %v; want the old owner", reply, err)
			}
		})
	}
}

func TestSetRoutesReplaceAndRemove(t *testing.T) {
	r := newRouter(t, Options{})
	v1, v2, b := &stubEndpoint{name: "v1"}, &stubEndpoint{name: "v2"}, &stubEndpoint{name: "b"}
	call := func(s string) string {
		reply, err := r.Call(context.Background(), &message.Message{Subject: s})
		if err != nil {
			return "error: " + message.StatusOf(err).String()
		}
		return string(reply)
	}

	mustSetRoutes(t, r, "p", v1, []string{"old", "keep", "keep"}, []string{"t.*", "t.*"})
	mustSetRoutes(t, r, "b", b, []string{"bsvc"}, nil)
	want := []Route{
		{Owner: "b", Services: []string{"bsvc"}, Topics: []string{}},
		{Owner: "p", Services: []string{"keep", "old"}, Topics: []string{"t.*"}},
	}
	if got := r.Routes(); !reflect.DeepEqual(normRoutes(got), normRoutes(want)) {
		t.Fatalf("Routes() = %+v, want %+v (sorted, without duplicates)", got, want)
	}

	// A new version replaces everything: the dropped service stops being
	// served and the kept one goes to the new endpoint.
	mustSetRoutes(t, r, "p", v2, []string{"keep", "new"}, nil)
	for s, want := range map[string]string{"old.m": "error: no_handler", "keep.m": "v2", "new.m": "v2", "bsvc.m": "b"} {
		if got := call(s); got != want {
			t.Errorf("after replace, call %q = %q, want %q", s, got, want)
		}
	}
	if n, _ := r.Publish(context.Background(), &message.Message{Subject: "t.x"}); n != 0 {
		t.Errorf("replaced topics still receive events: %d receivers", n)
	}

	// A service released by one owner can be taken by another.
	mustSetRoutes(t, r, "p", v2, []string{"new"}, nil)
	mustSetRoutes(t, r, "b", b, []string{"bsvc", "keep"}, nil)
	if got := call("keep.m"); got != "b" {
		t.Errorf("released service: call = %q, want b", got)
	}

	// Empty lists with a nil endpoint remove the owner, like Remove.
	if err := r.SetRoutes("p", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	r.Remove("b")
	r.Remove("b")       // removing twice is harmless
	r.Remove("unknown") // as is removing what was never there
	if got := r.Routes(); len(got) != 0 {
		t.Errorf("Routes() after removing everything = %+v", got)
	}
	if got := call("new.m"); got != "error: no_handler" {
		t.Errorf("after remove, call = %q", got)
	}

	// Routes returns copies.
	mustSetRoutes(t, r, "p", v1, []string{"s"}, nil)
	r.Routes()[0].Services[0] = "mutated"
	if got := call("s.m"); got != "v1" {
		t.Errorf("mutating Routes() changed routing: %q", got)
	}
}

// normRoutes treats nil and empty lists alike.
func normRoutes(rs []Route) []Route {
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = Route{Owner: r.Owner, Services: append([]string{}, r.Services...), Topics: append([]string{}, r.Topics...)}
	}
	return out
}

// TestSetRoutesAtomicUnderConcurrentCall swaps an owner between two versions
// while callers run: every version serves "x", so a call to it never fails,
// and each version's private service is only ever answered by that version,
// so no caller sees one version's services with another's endpoint.
func TestSetRoutesAtomicUnderConcurrentCall(t *testing.T) {
	r := newRouter(t, Options{})
	versions := []*stubEndpoint{{name: "v0"}, {name: "v1"}}
	services := [][]string{{"x", "only0"}, {"x", "only1"}}
	topics := [][]string{{"t0.>"}, {"t1.>"}}
	mustSetRoutes(t, r, "p", versions[0], services[0], topics[0])

	const swaps = 2000
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	// The swaps start only once every caller has completed a call, so
	// they overlap with calls however the goroutines are scheduled.
	var ready sync.WaitGroup
	const callers = 4
	ready.Add(callers)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; !stop.Load(); i++ {
				if i == 1 {
					ready.Done()
				}
				reply, err := r.Call(ctx, &message.Message{Subject: "x.m"})
				if err != nil || (string(reply) != "v0" && string(reply) != "v1") {
					report(fmt.Errorf("call x.m during swap: %q, %v", reply, err))
					if i == 0 {
						ready.Done()
					}
					return
				}
				only := fmt.Sprintf("only%d", i%2)
				reply, err = r.Call(ctx, &message.Message{Subject: only + ".m"})
				switch {
				case err == nil && string(reply) != "v"+only[len(only)-1:]:
					report(fmt.Errorf("%s.m answered by %s", only, reply))
				case err != nil && message.StatusOf(err) != abi.StatusNoHandler:
					report(fmt.Errorf("%s.m: %v", only, err))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for _, rt := range r.Routes() {
				if len(rt.Services) != 2 || len(rt.Topics) != 1 ||
					rt.Services[0][len("only"):] != rt.Topics[0][1:2] {
					report(fmt.Errorf("inconsistent routes snapshot: %+v", rt))
					return
				}
			}
		}
	}()

	ready.Wait()
	for i := 1; i <= swaps; i++ {
		v := i % 2
		if err := r.SetRoutes("p", versions[v], services[v], topics[v]); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPublishFanOut(t *testing.T) {
	r := newRouter(t, Options{})
	eps := map[string]*stubEndpoint{}
	for owner, patterns := range map[string][]string{
		"orders":  {"orders.>", "orders.*.created"}, // both match orders.eu.created: still one Post
		"eu":      {"*.eu.*"},
		"billing": {"billing.>"},
		"all":     {">"},
	} {
		eps[owner] = &stubEndpoint{name: owner}
		mustSetRoutes(t, r, owner, eps[owner], nil, patterns)
	}
	// An owner's services do not receive events.
	mustSetRoutes(t, r, "svc", &stubEndpoint{name: "svc"}, []string{"orders"}, nil)

	subs := map[string]*Subscription{}
	for _, p := range []string{"orders.>", "orders.eu.*", "x.>", "orders.eu.created"} {
		s, err := r.Subscribe(p, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[p] = s
	}

	tests := []struct {
		topic string
		eps   []string
		subs  []string
	}{
		{"orders.eu.created", []string{"all", "eu", "orders"}, []string{"orders.>", "orders.eu.*", "orders.eu.created"}},
		{"orders.us.created", []string{"all", "orders"}, []string{"orders.>"}},
		{"orders.eu", []string{"all", "orders"}, []string{"orders.>"}},
		{"orders", []string{"all"}, nil},
		{"billing.eu.x", []string{"all", "billing", "eu"}, nil},
		{"x.y", []string{"all"}, []string{"x.>"}},
		{"z", []string{"all"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			for _, ep := range eps {
				ep.reset()
			}
			m := &message.Message{Kind: abi.KindEvent, Subject: tt.topic, Payload: []byte("e")}
			n, err := r.Publish(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(tt.eps) + len(tt.subs); n != want {
				t.Errorf("Publish = %d receivers, want %d", n, want)
			}
			for owner, ep := range eps {
				_, posts := ep.got()
				want := 0
				for _, o := range tt.eps {
					if o == owner {
						want = 1
					}
				}
				if len(posts) != want || (want == 1 && posts[0] != m) {
					t.Errorf("endpoint %q got %d posts, want %d", owner, len(posts), want)
				}
			}
			for p, s := range subs {
				want := 0
				for _, sp := range tt.subs {
					if sp == p {
						want = 1
					}
				}
				if got := drain(s); len(got) != want || (want == 1 && got[0] != m) {
					t.Errorf("subscription %q got %d events, want %d", p, len(got), want)
				}
			}
		})
	}
}

// drain returns what is buffered in s without waiting.
func drain(s *Subscription) []*message.Message {
	var out []*message.Message
	for {
		select {
		case m, ok := <-s.C():
			if !ok {
				return out
			}
			out = append(out, m)
		default:
			return out
		}
	}
}

func TestPublishErrorsAndEmpty(t *testing.T) {
	r := newRouter(t, Options{})
	tests := []struct {
		topic   string
		status  abi.Status
		errText string
	}{
		{"nobody.listens", abi.StatusOK, ""},
		{"orders.*", abi.StatusInvalid, `subject "orders.*": wildcard "*" at position 1: wildcards are only allowed in topic patterns`},
		{"orders.>", abi.StatusInvalid, `wildcard ">"`},
		{"a..b", abi.StatusInvalid, "empty token"},
	}
	for _, tt := range tests {
		n, err := r.Publish(context.Background(), &message.Message{Subject: tt.topic})
		if n != 0 {
			t.Errorf("Publish(%q) = %d", tt.topic, n)
		}
		if tt.status == abi.StatusOK {
			if err != nil {
				t.Errorf("Publish(%q): %v", tt.topic, err)
			}
			continue
		}
		wantStatus(t, err, tt.status, tt.errText)
	}
	if st := r.Stats(); st.Published != 1 || st.Delivered != 0 || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want only the valid publish counted", st)
	}
}

func TestPublishBusyEndpointIsDrop(t *testing.T) {
	r := newRouter(t, Options{})
	busy, ok := &stubEndpoint{name: "busy"}, &stubEndpoint{name: "ok"}
	busy.busy.Store(true)
	mustSetRoutes(t, r, "busy", busy, nil, []string{"t.>"})
	mustSetRoutes(t, r, "ok", ok, nil, []string{"t.*"})

	for i := 0; i < 3; i++ {
		n, err := r.Publish(context.Background(), &message.Message{Subject: "t.x"})
		if err != nil || n != 1 {
			t.Fatalf("Publish = %d, %v; want 1, nil: a busy receiver is a drop, not an error", n, err)
		}
	}
	want := Stats{Published: 3, Delivered: 3, Dropped: 3}
	if st := r.Stats(); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if _, posts := ok.got(); len(posts) != 3 {
		t.Errorf("healthy endpoint got %d events, want 3", len(posts))
	}
}

// TestSlowSubscriptionDrops fills a subscription nobody reads: the publisher
// must keep going, the first events stay buffered and the newest are dropped.
func TestSlowSubscriptionDrops(t *testing.T) {
	r := newRouter(t, Options{})
	s, err := r.Subscribe("t.>", 2)
	if err != nil {
		t.Fatal(err)
	}
	other, err := r.Subscribe("t.*", 100)
	if err != nil {
		t.Fatal(err)
	}

	const total = 10
	done := make(chan []int)
	go func() {
		var ns []int
		for i := 0; i < total; i++ {
			n, err := r.Publish(context.Background(), &message.Message{Subject: "t.x", Payload: []byte{byte(i)}})
			if err != nil {
				t.Error(err)
			}
			ns = append(ns, n)
		}
		done <- ns
	}()
	var ns []int
	select {
	case ns = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Publish blocked on a full subscription")
	}
	if want := []int{2, 2, 1, 1, 1, 1, 1, 1, 1, 1}; !reflect.DeepEqual(ns, want) {
		t.Errorf("receivers per Publish = %v, want %v", ns, want)
	}
	if got := s.Dropped(); got != total-2 {
		t.Errorf("Dropped() = %d, want %d", got, total-2)
	}
	if got := other.Dropped(); got != 0 {
		t.Errorf("the other subscription dropped %d", got)
	}
	got := drain(s)
	if len(got) != 2 || got[0].Payload[0] != 0 || got[1].Payload[0] != 1 {
		t.Errorf("buffered events %v, want the first two (the newest are dropped)", got)
	}
	want := Stats{Published: total, Delivered: total + 2, Dropped: total - 2}
	if st := r.Stats(); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

// TestSubscriptionAccountingConcurrent has several publishers race a slow
// reader: every event offered is either delivered or counted as dropped.
func TestSubscriptionAccountingConcurrent(t *testing.T) {
	r := newRouter(t, Options{})
	s, err := r.Subscribe("load.*", 8)
	if err != nil {
		t.Fatal(err)
	}
	const publishers, each = 4, 2000
	var received atomic.Int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for range s.C() {
			received.Add(1)
		}
	}()
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &message.Message{Kind: abi.KindEvent, Subject: "load.x"}
			for i := 0; i < each; i++ {
				n, err := r.Publish(context.Background(), m)
				if err != nil {
					t.Error(err)
					return
				}
				accepted.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	s.Close()
	<-readerDone

	st := r.Stats()
	if got := uint64(accepted.Load()) + s.Dropped(); got != publishers*each {
		t.Errorf("accepted %d + dropped %d = %d, want %d", accepted.Load(), s.Dropped(), got, publishers*each)
	}
	if received.Load() != accepted.Load() || st.Delivered != uint64(accepted.Load()) || st.Dropped != s.Dropped() {
		t.Errorf("received %d, accepted %d, stats %+v, sub dropped %d: counts disagree",
			received.Load(), accepted.Load(), st, s.Dropped())
	}
}

func TestSubscriptionClose(t *testing.T) {
	r := newRouter(t, Options{})
	s, err := r.Subscribe("c.>", 4)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := r.Subscribe("c.>", 4)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Publish(context.Background(), &message.Message{Subject: "c.1"}); n != 2 {
		t.Fatalf("Publish = %d, want 2", n)
	}

	// Close races publishers and itself.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if _, err := r.Publish(context.Background(), &message.Message{Subject: "c.2"}); err != nil {
					t.Error(err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			s.Close()
		}()
	}
	wg.Wait()
	s.Close()

	// The events buffered before Close are still readable, then C is closed.
	n := 0
	for range s.C() {
		n++
	}
	if n < 1 || n > 4 {
		t.Errorf("read %d buffered events after Close, want 1..4", n)
	}
	drain(keep)
	if got, _ := r.Publish(context.Background(), &message.Message{Subject: "c.3"}); got != 1 {
		t.Errorf("Publish after Close reached %d receivers, want only the open subscription", got)
	}
	keep.Close()
	if got, _ := r.Publish(context.Background(), &message.Message{Subject: "c.4"}); got != 0 {
		t.Errorf("Publish with every subscription closed reached %d", got)
	}
	// drain returns at the close; one buffered event (c.3) comes first.
	if got := drain(keep); len(got) != 1 || got[0].Subject != "c.3" {
		t.Errorf("after Close, C held %v, want only c.3", got)
	}
	select {
	case _, ok := <-keep.C():
		if ok {
			t.Error("C delivered after Close")
		}
	default:
		t.Error("C not closed after Close")
	}
}

func TestSubscribeErrors(t *testing.T) {
	r := newRouter(t, Options{})
	tests := []struct {
		pattern string
		buffer  int
		errText string
	}{
		{"a.>.b", 1, `subscribe: pattern "a.>.b": wildcard ">" at position 1 must be the last token`},
		{"", 1, `subscribe: pattern "": must not be empty`},
		{"a b", 1, `subscribe: pattern "a b": space at offset 1`},
		{"a.>", 0, `subscribe "a.>": buffer must be at least 1, got 0`},
		{"a.>", -3, `subscribe "a.>": buffer must be at least 1, got -3`},
	}
	for _, tt := range tests {
		s, err := r.Subscribe(tt.pattern, tt.buffer)
		if s != nil {
			t.Errorf("Subscribe(%q, %d) returned a subscription", tt.pattern, tt.buffer)
		}
		wantStatus(t, err, abi.StatusInvalid, tt.errText)
	}
}

func TestStats(t *testing.T) {
	r := newRouter(t, Options{})
	mustSetRoutes(t, r, "a", &stubEndpoint{name: "a"}, []string{"svc"}, []string{"svc.>"})
	ctx := context.Background()
	r.Call(ctx, &message.Message{Subject: "svc.m"})
	r.Call(ctx, &message.Message{Subject: "svc.m"})
	r.Call(ctx, &message.Message{Subject: "none.m"})
	r.Send(ctx, &message.Message{Subject: "svc.m"})
	r.Send(ctx, &message.Message{Subject: "none.m"})
	r.Call(ctx, &message.Message{Subject: "bad..subject"})
	r.Publish(ctx, &message.Message{Subject: "svc.event"})
	want := Stats{Calls: 2, Sends: 1, Published: 1, Delivered: 1, NoHandler: 2}
	if got := r.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

// TestRoutingDoesNotAllocate pins the hot path's promise: the router adds no
// allocation to a call, a send or a publish.
func TestRoutingDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	r := newRouter(t, Options{})
	for i := 0; i < 50; i++ {
		mustSetRoutes(t, r, fmt.Sprintf("o%d", i), nopEndpoint{}, []string{fmt.Sprintf("svc%d", i), fmt.Sprintf("svc%d.v2", i)},
			[]string{fmt.Sprintf("ev%d.>", i), fmt.Sprintf("ev.*.%d", i)})
	}
	s, err := r.Subscribe("ev.>", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	req := &message.Message{Kind: abi.KindRequest, Subject: "svc25.v2.method", Deadline: time.Now().Add(time.Hour)}
	ev := &message.Message{Kind: abi.KindEvent, Subject: "ev.x.25"}
	tests := []struct {
		name string
		fn   func()
	}{
		{"Call", func() { r.Call(ctx, req) }},
		{"Send", func() { r.Send(ctx, req) }},
		{"Publish", func() { r.Publish(ctx, ev) }}, // the subscription is full after the first: drops must not allocate either
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(200, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
}

// nopEndpoint is the cheapest possible endpoint: it echoes the payload.
type nopEndpoint struct{}

func (nopEndpoint) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	return m.Payload, nil
}

func (nopEndpoint) Post(m *message.Message) error { return nil }

// tryStub is a stubEndpoint that can also try a request: it takes it only
// while free is set.
type tryStub struct {
	stubEndpoint
	free atomic.Bool
}

func (e *tryStub) TryRequest(ctx context.Context, m *message.Message) ([]byte, bool, error) {
	if !e.free.Load() {
		return nil, false, nil
	}
	out, err := e.Request(ctx, m)
	return out, true, err
}

// remoteStub answers every call, to tell a remote route from a local one.
type remoteStub struct{}

func (remoteStub) Call(context.Context, *message.Message) ([]byte, error) {
	return []byte("remote"), nil
}
func (remoteStub) Send(context.Context, *message.Message) error { return nil }
func (remoteStub) Publish(*message.Message) int                 { return 0 }

// TestTryCall: a request is handled at once by a local owner that can take
// it now; otherwise TryCall does nothing and says so (a busy owner, one
// that cannot try, a remote route), and a routing error is an answer.
func TestTryCall(t *testing.T) {
	r := newRouter(t, Options{})
	r.SetRemote(remoteStub{})
	try := &tryStub{stubEndpoint: stubEndpoint{name: "try"}}
	plain := &stubEndpoint{name: "plain"}
	mustSetRoutes(t, r, "try", try, []string{"try"}, nil)
	mustSetRoutes(t, r, "plain", plain, []string{"plain"}, nil)
	msg := func(subj, from string) *message.Message {
		return &message.Message{Kind: abi.KindRequest, Subject: subj, FromNode: from, Deadline: time.Now().Add(time.Second)}
	}
	ctx := context.Background()

	try.free.Store(true)
	if out, ok, err := r.TryCall(ctx, msg("try.x", "peer")); !ok || err != nil || string(out) != "try" {
		t.Fatalf("free owner: %q ok=%v err=%v", out, ok, err)
	}
	try.free.Store(false)
	if _, ok, err := r.TryCall(ctx, msg("try.x", "peer")); ok || err != nil {
		t.Fatalf("busy owner: ok=%v err=%v, want ok false", ok, err)
	}
	if reqs, _ := try.got(); len(reqs) != 1 {
		t.Fatalf("the owner got %d requests, want 1", len(reqs))
	}
	if _, ok, err := r.TryCall(ctx, msg("plain.x", "peer")); ok || err != nil {
		t.Fatalf("owner that cannot try: ok=%v err=%v, want ok false", ok, err)
	}
	if reqs, _ := plain.got(); len(reqs) != 0 {
		t.Fatalf("an owner that cannot try got %d requests", len(reqs))
	}
	if _, ok, err := r.TryCall(ctx, msg("elsewhere.x", "")); ok || err != nil {
		t.Fatalf("remote route: ok=%v err=%v, want ok false", ok, err)
	}
	_, ok, err := r.TryCall(ctx, msg("nobody.x", "peer"))
	if !ok {
		t.Fatal("no handler: ok false, want the routing error as the answer")
	}
	wantStatus(t, err, abi.StatusNoHandler, "no handler")
}
