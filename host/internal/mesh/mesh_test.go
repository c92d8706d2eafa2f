package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// host is one in-process pycomms host for tests: a real router, a real
// mesh listening on loopback, and Go endpoints standing in for plugins
// (the node tests run real Wasm plugins across hosts).
type host struct {
	t      testing.TB
	name   string
	router *router.Router
	mesh   *Mesh
	id     *identity.Identity
	logs   *hosttest.SyncBuffer // the mesh's log, when the test is not verbose
}

type hostOpt func(*Options)

func withPeers(peers ...Peer) hostOpt { return func(o *Options) { o.Peers = peers } }
func withPolicy(p *identity.Policy) hostOpt {
	return func(o *Options) { o.Policy = p }
}

func newHost(t *testing.T, name string, opts ...hostOpt) *host {
	t.Helper()
	return newHostTB(t, name, opts...)
}

func newHostTB(t testing.TB, name string, opts ...hostOpt) *host {
	t.Helper()
	dir := t.TempDir()
	id, err := identity.LoadOrCreate(filepath.Join(dir, "node.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	logs := &hosttest.SyncBuffer{}
	logger := logs.Logger()
	if _, bench := t.(*testing.B); bench {
		logger = slog.New(slog.DiscardHandler)
	} else if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", name)
	}
	h := &host{t: t, name: name, id: id, logs: logs}
	var m *Mesh
	h.router = router.New(router.Options{Logger: logger, OnChange: func() {
		if m != nil {
			m.LocalChanged()
		}
	}})
	o := Options{Identity: id, Name: name, Local: h.router, Logger: logger,
		ListenTCP: "127.0.0.1:0", ListenQUIC: "127.0.0.1:0",
		PingInterval: 200 * time.Millisecond, DeadAfter: 2 * time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	m, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.mesh = m
	h.router.SetRemote(m)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	return h
}

// peer returns a Peer that dials h over transport.
func (h *host) peer(transport string) Peer {
	tcpAddr, quicAddr := h.mesh.ListenAddrs()
	addr := tcpAddr
	if transport == QUIC {
		addr = quicAddr
	}
	return Peer{Transport: transport, Addr: addr.String()}
}

// TestListenAddrs: ListenAddrs gives the IP and port of each listener,
// the same ones Addrs formats as URLs, and the zero value for a transport
// that is off.
func TestListenAddrs(t *testing.T) {
	h := newHost(t, "a")
	tcpURL, quicURL := h.mesh.Addrs()
	tcpAddr, quicAddr := h.mesh.ListenAddrs()
	if !tcpAddr.Addr().Is4() || tcpAddr.Port() == 0 || "tcp://"+tcpAddr.String() != tcpURL {
		t.Errorf("tcp: ListenAddrs %v, Addrs %q", tcpAddr, tcpURL)
	}
	if !quicAddr.Addr().Is4() || quicAddr.Port() == 0 || "quic://"+quicAddr.String() != quicURL {
		t.Errorf("quic: ListenAddrs %v, Addrs %q", quicAddr, quicURL)
	}
	tcpOnly := newHost(t, "b", func(o *Options) { o.ListenQUIC = "" })
	if tcpAddr, quicAddr := tcpOnly.mesh.ListenAddrs(); !tcpAddr.IsValid() || quicAddr.IsValid() {
		t.Errorf("QUIC off: ListenAddrs %v, %v; want a TCP address and none for QUIC", tcpAddr, quicAddr)
	}
}

// serve registers a Go endpoint for services and topics under owner.
func (h *host) serve(owner string, ep router.Endpoint, services, topics []string) {
	h.t.Helper()
	if err := h.router.SetRoutes(owner, ep, services, topics); err != nil {
		h.t.Fatal(err)
	}
}

// echoEP replies "<prefix><payload>" and records events.
type echoEP struct {
	prefix string
	mu     sync.Mutex
	events []string
	sends  atomic.Int64
	delay  time.Duration
	calls  atomic.Int64
}

func (e *echoEP) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	e.calls.Add(1)
	if e.delay > 0 {
		t := time.NewTimer(e.delay)
		defer t.Stop()
		var dl <-chan time.Time
		if !m.Deadline.IsZero() {
			d := time.NewTimer(time.Until(m.Deadline))
			defer d.Stop()
			dl = d.C
		}
		select {
		case <-t.C:
		case <-dl:
			return nil, message.Errorf(abi.StatusTimeout, "echo: deadline")
		case <-ctx.Done():
			return nil, message.Errorf(abi.StatusTimeout, "echo: %v", ctx.Err())
		}
	}
	if string(m.Payload) == "fail" {
		return nil, message.Errorf(abi.StatusHandlerError, "echo refuses %q", m.Payload)
	}
	return append([]byte(e.prefix), m.Payload...), nil
}

func (e *echoEP) Post(m *message.Message) error {
	if m.Kind == abi.KindSend {
		e.sends.Add(1)
		return nil
	}
	e.mu.Lock()
	e.events = append(e.events, string(m.Payload))
	e.mu.Unlock()
	return nil
}

func (e *echoEP) got() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

func call(h *host, subj, payload string, timeout time.Duration) (string, error) {
	ctx := context.Background()
	out, err := h.router.Call(ctx, &message.Message{Kind: abi.KindRequest, Subject: subj, Payload: []byte(payload),
		Deadline: time.Now().Add(timeout), From: "test"})
	return string(out), err
}

// waitRoute waits until h can route subj to some host.
func waitRoute(t *testing.T, h *host, subj string) {
	t.Helper()
	hosttest.CheckFor(t, 5*time.Second, func() error { return routeErr(h, subj, 0) })
}

var transports = []string{TCP, QUIC}

func TestRequestReplyBothTransports(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a")
			b := newHost(t, "b", withPeers(a.peer(tr)))
			b.serve("echo", &echoEP{prefix: "b:"}, []string{"echo"}, nil)
			waitRoute(t, a, "echo.x")
			got, err := call(a, "echo.upper", "hi", 5*time.Second)
			if err != nil || got != "b:hi" {
				t.Fatalf("call = %q, %v; want b:hi", got, err)
			}
			// A handler error crosses with its status and text, named by
			// the node that answered.
			_, err = call(a, "echo.upper", "fail", 5*time.Second)
			if message.StatusOf(err) != abi.StatusHandlerError || err.Error() != `node b: echo refuses "fail"` {
				t.Fatalf("failing call: %v (status %v), want `node b: echo refuses \"fail\"`", err, message.StatusOf(err))
			}
			// Big payloads (own QUIC stream) and many concurrent callers.
			big := strings.Repeat("x", 200<<10)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := fmt.Sprint(i)
					if i%8 == 0 {
						p = big + p
					}
					got, err := call(a, "echo.x", p, 10*time.Second)
					if err == nil && got != "b:"+p {
						err = fmt.Errorf("call %d: wrong reply of %d bytes", i, len(got))
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			var info PeerInfo
			for _, p := range a.mesh.Peers() {
				if p.Name == "b" {
					info = p
				}
			}
			if info.Transport != tr || info.State != "up" || info.MsgsIn < 66 || info.MsgsOut < 66 || info.Silent > 2*time.Second {
				t.Errorf("a's view of b: %+v", info)
			}
		})
	}
}

func TestChainRelayAndPublish(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := newHost(t, "c")
			b := newHost(t, "b", withPeers(c.peer(tr)))
			a := newHost(t, "a", withPeers(b.peer(tr)))
			cEcho := &echoEP{prefix: "c:"}
			c.serve("echo", cEcho, []string{"echo"}, []string{"news.>"})
			bSub := &echoEP{}
			b.serve("sub", bSub, nil, []string{"news.*"})
			waitRoute(t, a, "echo.upper")
			got, err := call(a, "echo.upper", "hi", 5*time.Second)
			if err != nil || got != "c:hi" {
				t.Fatalf("a -> c through b = %q, %v", got, err)
			}
			// An error through the relay names the node that answered, not
			// the relay.
			if _, err := call(a, "echo.upper", "fail", 5*time.Second); err == nil || err.Error() != `node c: echo refuses "fail"` {
				t.Fatalf("failing call a -> c through b: %v, want `node c: echo refuses \"fail\"`", err)
			}
			hosttest.CheckFor(t, 5*time.Second, func() error { return listenersErr(a, 2) })
			// The call asked for a direct link to c: publish once the path
			// to c has settled, since events on the relayed path and the
			// new direct one could overtake each other at the switch.
			hosttest.CheckFor(t, 10*time.Second, func() error {
				n := a.mesh.routes.load().nodes[c.id.ID]
				return holds(n != nil && n.direct != nil && n.direct == a.mesh.links.get(c.id.ID), "a routes to c over a direct link", a)
			})
			for i := range 50 {
				if _, err := a.router.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "news.today", Payload: []byte(fmt.Sprint(i))}); err != nil {
					t.Fatal(err)
				}
			}
			want := make([]string, 50)
			for i := range want {
				want[i] = fmt.Sprint(i)
			}
			for _, ep := range []*echoEP{cEcho, bSub} {
				hosttest.CheckFor(t, 5*time.Second, func() error {
					if n := len(ep.got()); n != 50 {
						return fmt.Errorf("a subscriber got %d of 50 events; %s", n, describeHost(a))
					}
					return nil
				})
				if g := ep.got(); strings.Join(g, ",") != strings.Join(want, ",") {
					t.Errorf("events out of order: %v", g)
				}
			}
			// a and c, which know each other through b, link directly with
			// the addresses b reported (whichever dials, the other sees an
			// inbound link).
			hosttest.CheckFor(t, 10*time.Second, func() error {
				var seen []string
				for _, p := range a.mesh.Peers() {
					if p.Name == "c" && p.State == "up" && (p.Found == FoundGossip || p.Found == FoundInbound) {
						return nil
					}
					seen = append(seen, fmt.Sprintf("%s %s found %q", p.Name, p.State, p.Found))
				}
				return fmt.Errorf("a does not show c up, found by gossip or inbound; its peers: %v", seen)
			})
			// Send to a named node through the relay.
			if err := a.mesh.SendTo(context.Background(), "c", &message.Message{Kind: abi.KindSend, Subject: "echo.note", Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			hosttest.CheckFor(t, 5*time.Second, func() error {
				return holds(cEcho.sends.Load() == 1, fmt.Sprintf("c got %d sends, want 1", cEcho.sends.Load()), a, c)
			})
		})
	}
}

func TestSecretTrust(t *testing.T) {
	secret := &identity.Policy{Secret: []byte("correct horse battery staple")}
	wrong := &identity.Policy{Secret: []byte("not the right secret at all")}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a", withPolicy(secret))
			a.serve("echo", &echoEP{prefix: "a:"}, []string{"secret"}, []string{"t.>"})
			good := newHost(t, "good", withPolicy(secret), withPeers(a.peer(tr)))
			waitRoute(t, good, "secret.x")
			for _, tc := range []struct {
				name   string
				policy *identity.Policy
			}{{"wrong-secret", wrong}, {"no-secret", &identity.Policy{}}} {
				before := a.mesh.RefusedCount()
				bad := newHost(t, tc.name, withPolicy(tc.policy), withPeers(a.peer(tr)))
				hosttest.CheckFor(t, 5*time.Second, func() error {
					return holds(a.mesh.RefusedCount() > before, "a refuses "+tc.name+": refused count still "+fmt.Sprint(before), a)
				})
				time.Sleep(100 * time.Millisecond)
				if n := len(bad.mesh.routes.load().nodes); n != 0 {
					t.Errorf("%s learned %d nodes", tc.name, n)
				}
				if _, err := call(bad, "secret.x", "hi", time.Second); message.StatusOf(err) != abi.StatusNoHandler {
					t.Errorf("%s calling a's service: %v", tc.name, err)
				}
				for _, p := range bad.mesh.Peers() {
					if p.State == "up" || len(p.Services) > 0 {
						t.Errorf("%s sees %+v", tc.name, p)
					}
				}
			}
		})
	}
}

func TestPeerDiesMidRequest(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a")
			b := newHost(t, "b", withPeers(a.peer(tr)))
			b.serve("slow", &echoEP{delay: 10 * time.Second}, []string{"slow"}, nil)
			waitRoute(t, a, "slow.x")
			errc := make(chan error, 1)
			start := time.Now()
			go func() { _, err := call(a, "slow.x", "hi", 8*time.Second); errc <- err }()
			time.Sleep(200 * time.Millisecond)
			// Kill b's links without a goodbye: as if the process died.
			for _, l := range b.mesh.links.all() {
				l.c.close("killed")
			}
			b.mesh.ln.tcp.Close()
			b.mesh.ln.quicL.Close()
			select {
			case err := <-errc:
				if s := message.StatusOf(err); s != abi.StatusUnreachable && s != abi.StatusTimeout {
					t.Fatalf("status %v: %v", s, err)
				}
				t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(20 * time.Second):
				t.Fatal("call hangs after its peer died")
			}
		})
	}
}

func TestDeadlineCrossesAsBudget(t *testing.T) {
	a := newHost(t, "a")
	b := newHost(t, "b", withPeers(a.peer(TCP)))
	slow := &echoEP{delay: 5 * time.Second}
	b.serve("slow", slow, []string{"slow"}, nil)
	waitRoute(t, a, "slow.x")
	start := time.Now()
	_, err := call(a, "slow.x", "hi", 200*time.Millisecond)
	if message.StatusOf(err) != abi.StatusTimeout {
		t.Fatalf("want timeout, got %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("timeout after %v", el)
	}
	// The remote handler was abandoned at the deadline too: its slot is free
	// again long before the 5s handler delay.
	hosttest.CheckFor(t, 2*time.Second, func() error {
		for _, l := range b.mesh.links.all() {
			if n := l.inflight.Load(); n != 0 {
				return fmt.Errorf("b's in-flight request did not end at the deadline: b's link to %s has %d in flight", l.name, n)
			}
		}
		return nil
	})
}

func TestMaxFrameRefusedNotTruncated(t *testing.T) {
	a := newHost(t, "a", func(o *Options) { o.MaxFrame = 4096 })
	b := newHost(t, "b", withPeers(a.peer(TCP)))
	b.serve("echo", &echoEP{}, []string{"echo"}, nil)
	waitRoute(t, a, "echo.x")
	_, err := call(a, "echo.x", strings.Repeat("x", 5000), 2*time.Second)
	if message.StatusOf(err) != abi.StatusTooLarge || !strings.Contains(err.Error(), "max_frame") {
		t.Fatalf("oversized payload: %v", err)
	}
	if got, err := call(a, "echo.x", "ok", 2*time.Second); err != nil || got != "ok" {
		t.Fatalf("after refusal: %q %v", got, err)
	}
}

func TestReconnectRestoresRoutes(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a")
			b := newHost(t, "b", withPeers(a.peer(tr)))
			b.serve("echo", &echoEP{prefix: "b:"}, []string{"echo"}, nil)
			sub, err := b.router.Subscribe("alerts.>", 64)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			waitRoute(t, a, "echo.x")
			for i := range 3 {
				for _, l := range a.mesh.links.all() {
					l.c.close("cut")
				}
				hosttest.CheckFor(t, 5*time.Second, func() error {
					got, err := call(a, "echo.x", "hi", time.Second)
					if err != nil || got != "b:hi" {
						return fmt.Errorf("a's call to b after the reconnect: %q, %v; %s", got, err, describeHost(a))
					}
					return nil
				})
				// The subscription is restored too.
				hosttest.CheckFor(t, 5*time.Second, func() error {
					n, err := a.router.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "alerts.x", Payload: []byte(fmt.Sprint(i))})
					if n != 1 {
						return fmt.Errorf("a's publish after the reconnect reached %d subscribers (%v), want 1; %s", n, err, describeHost(a))
					}
					return nil
				})
				select {
				case <-sub.C():
				case <-time.After(5 * time.Second):
					t.Fatal("event after reconnect never arrived")
				}
			}
		})
	}
}

func TestCleanLeaveDropsRoutesAtOnce(t *testing.T) {
	a := newHost(t, "a")
	b := newHost(t, "b", withPeers(a.peer(QUIC)))
	b.serve("echo", &echoEP{}, []string{"echo"}, nil)
	waitRoute(t, a, "echo.x")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.mesh.Close(ctx)
	hosttest.CheckFor(t, time.Second, func() error { return noRouteErr(a, "echo.x") })
	_, err := call(a, "echo.x", "hi", time.Second)
	if message.StatusOf(err) != abi.StatusNoHandler {
		t.Fatalf("after leave: %v", err)
	}
}

func TestRoutesFollowLocalChanges(t *testing.T) {
	a := newHost(t, "a")
	b := newHost(t, "b", withPeers(a.peer(TCP)))
	b.serve("one", &echoEP{prefix: "1:"}, []string{"one"}, nil)
	waitRoute(t, a, "one.x")
	b.router.Remove("one")
	hosttest.CheckFor(t, 5*time.Second, func() error { return noRouteErr(a, "one.x") })
	b.serve("two", &echoEP{prefix: "2:"}, []string{"two"}, nil)
	waitRoute(t, a, "two.x")
	// Local handler preferred over a remote one.
	a.serve("two", &echoEP{prefix: "local:"}, []string{"two"}, nil)
	if got, err := call(a, "two.x", "hi", time.Second); err != nil || got != "local:hi" {
		t.Fatalf("local preferred: %q %v", got, err)
	}
	// A remote subscription made with router.Subscribe is advertised too.
	s, err := b.router.Subscribe("alerts.>", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hosttest.CheckFor(t, 5*time.Second, func() error { return listenersErr(a, 1) })
	a.router.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "alerts.fire", Payload: []byte("!")})
	select {
	case m := <-s.C():
		if string(m.Payload) != "!" || m.FromNode != string(a.mesh.ID()) {
			t.Fatalf("event %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription got nothing")
	}
}

func TestSpreadsAcrossProviders(t *testing.T) {
	a := newHost(t, "a")
	var eps []*echoEP
	for _, n := range []string{"b", "c", "d"} {
		h := newHost(t, n, withPeers(a.peer(TCP)))
		ep := &echoEP{prefix: n}
		eps = append(eps, ep)
		h.serve("work", ep, []string{"work"}, nil)
	}
	hosttest.CheckFor(t, 5*time.Second, func() error { return routeErr(a, "work.x", 3) })
	for range 30 {
		if _, err := call(a, "work.x", "", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i, ep := range eps {
		if n := ep.calls.Load(); n != 10 {
			t.Errorf("provider %d got %d of 30 calls", i, n)
		}
	}
}

func TestNoLoops(t *testing.T) {
	// b relays to c only what has not been relayed before; a handcrafted
	// envelope claiming a relay is refused, not forwarded.
	c := newHost(t, "c")
	b := newHost(t, "b", withPeers(c.peer(TCP)))
	a := newHost(t, "a", withPeers(b.peer(TCP)))
	c.serve("echo", &echoEP{}, []string{"echo"}, nil)
	waitRoute(t, a, "echo.x")
	// Through b even if a has linked to c directly meanwhile.
	nd, _, _ := a.mesh.routes.load().resolve("c")
	l := a.mesh.links.get(b.mesh.ID())
	e := new(wire.Envelope)
	l.fill(e, &node{id: nd.id, name: nd.name, via: l}, 1, &message.Message{Subject: "echo.x", Deadline: time.Now().Add(time.Second)})
	e.Relays = 1
	r, err := l.request(context.Background(), e, time.Now().Add(2*time.Second))
	if err != nil || abi.Status(r.Status) != abi.StatusUnreachable || !strings.Contains(r.Error, "relayed at most once") {
		t.Fatalf("re-relay: %+v %v", r, err)
	}
}

func TestUnknownNode(t *testing.T) {
	a := newHost(t, "a")
	err := a.mesh.SendTo(context.Background(), "nope", &message.Message{Subject: "x.y"})
	if !errors.Is(err, err) || message.StatusOf(err) != abi.StatusUnreachable || !strings.Contains(err.Error(), `no node "nope"`) {
		t.Fatalf("%v", err)
	}
	if self, err := a.mesh.Target("a"); !self || err != nil {
		t.Fatalf("Target(self) = %v %v", self, err)
	}
}

// TestSlowAndBigDoNotHoldUpSmall: a slow request and a big payload in
// flight do not hold up a small request behind them on the same link; over
// QUIC the big payload travels on its own stream.
func TestSlowAndBigDoNotHoldUpSmall(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a")
			b := newHost(t, "b", withPeers(a.peer(tr)))
			b.serve("slow", &echoEP{delay: 2 * time.Second}, []string{"slow"}, nil)
			b.serve("fast", &echoEP{prefix: "f:"}, []string{"fast"}, nil)
			waitRoute(t, a, "slow.x")
			waitRoute(t, a, "fast.x")
			slowDone := make(chan struct{})
			go func() { call(a, "slow.x", "", 10*time.Second); close(slowDone) }()
			bigDone := make(chan error, 1)
			go func() {
				_, err := call(a, "fast.big", strings.Repeat("x", 900<<10), 10*time.Second)
				bigDone <- err
			}()
			time.Sleep(50 * time.Millisecond)
			if got, err := call(a, "fast.x", "hi", 5*time.Second); err != nil || got != "f:hi" {
				t.Fatalf("small call: %q %v", got, err)
			}
			select {
			case <-slowDone:
				t.Fatal("the slow call finished before the small one: the test proves nothing")
			default:
			}
			if err := <-bigDone; err != nil {
				t.Fatal(err)
			}
			if tr == QUIC {
				l := a.mesh.links.get(b.mesh.ID())
				if l == nil || l.soloOut.Load() == 0 {
					t.Error("the big payload did not travel on its own QUIC stream")
				}
			}
			<-slowDone
		})
	}
}

// bounceEP answers a request by calling target on its own host, one hop
// deeper, and passes the outcome up unchanged: what a handler plugin that
// calls another service does.
type bounceEP struct {
	r      *router.Router
	target string
}

func (e *bounceEP) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	return e.r.Call(ctx, &message.Message{Kind: abi.KindRequest, Subject: e.target, Payload: m.Payload,
		Deadline: m.Deadline, Hops: m.Hops + 1, From: "bounce"})
}

func (e *bounceEP) Post(*message.Message) error { return nil }

// TestCrossHostLoopEndsAtHopLimit: ping on a calls pong on b, which calls
// ping on a, and so on. The hop count crosses the mesh with each call, so
// the loop ends at the router's limit (16) with invalid long before the
// deadline, and the error names the node where it arose once.
func TestCrossHostLoopEndsAtHopLimit(t *testing.T) {
	a := newHost(t, "a")
	b := newHost(t, "b", withPeers(a.peer(TCP)))
	a.serve("ping", &bounceEP{r: a.router, target: "pong.x"}, []string{"ping"}, nil)
	b.serve("pong", &bounceEP{r: b.router, target: "ping.x"}, []string{"pong"}, nil)
	waitRoute(t, a, "pong.x")
	waitRoute(t, b, "ping.x")
	_, err := call(a, "ping.x", "loop", 30*time.Second)
	want := `node a: call chain too deep (17 hops > 16): "pong.x"`
	if message.StatusOf(err) != abi.StatusInvalid || err == nil || err.Error() != want {
		t.Fatalf("cross-host loop ended with %v (%v), want invalid %q", err, message.StatusOf(err), want)
	}
}
