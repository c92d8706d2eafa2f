package node_test

// Tests that run hosts through the fault-test kit's cluster (package
// internal/hosttest/cluster), which works through this package's public
// API and so cannot be imported by its in-package tests.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

type eventSource interface {
	C() <-chan *message.Message
}

// TestThreeHostChain is the acceptance scenario: A lists only B, B
// lists only C; a call on A is served by a Wasm plugin only C has, a
// publish on A reaches subscribers on B and C, and a send to node c by name
// arrives, over TCP and over QUIC.
func TestThreeHostChain(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			// The cluster's chain: b dials c, a dials b.
			cl := cluster.Start(t, cluster.Options{Names: []string{"c", "b", "a"}, Transport: tr,
				Plugins: map[string]string{"c": fmt.Sprintf("  - {name: upper, path: %q, services: [echo], topics: [news.>], instances: 1}\n",
					cluster.TestdataPath("wat", "echo.wasm"))}})
			a, b, c := cl.Host("a").Node(), cl.Host("b").Node(), cl.Host("c").Node()

			hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("a calls echo.upper served by c", func() error {
				out, err := a.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "echo.upper",
					Payload: []byte("hi"), Deadline: time.Now().Add(2 * time.Second), From: "test"})
				if err != nil {
					return err
				}
				if string(out) != "HI" {
					return fmt.Errorf("reply %q", out)
				}
				return nil
			}))

			subB, err := b.Subscribe("news.>", 16)
			if err != nil {
				t.Fatal(err)
			}
			defer subB.Close()
			subC, err := c.Subscribe("news.*", 16)
			if err != nil {
				t.Fatal(err)
			}
			defer subC.Close()
			hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("a learns the subscriptions of b and c", func() error {
				for _, p := range a.Peers() {
					if p.Name == "c" && len(p.Topics) < 1 || p.Name == "b" && len(p.Topics) < 1 {
						return fmt.Errorf("peer %s topics %v", p.Name, p.Topics)
					}
				}
				return nil
			}))
			// Subscriptions are advertised asynchronously; wait until a
			// publish reaches both before checking order.
			hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("publish on a reaches b and c", func() error {
				n, err := a.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "news.probe"})
				if err != nil {
					return err
				}
				if n < 2 {
					return fmt.Errorf("delivered to %d hosts", n)
				}
				return nil
			}))
			drain := func(s eventSource) {
				for {
					select {
					case <-s.C():
					case <-time.After(300 * time.Millisecond):
						return
					}
				}
			}
			drain(subB)
			drain(subC)
			for i := range 10 {
				a.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "news.today", Payload: []byte(fmt.Sprint(i))})
			}
			for name, s := range map[string]eventSource{"b": subB, "c": subC} {
				for i := range 10 {
					select {
					case m := <-s.C():
						if string(m.Payload) != fmt.Sprint(i) {
							t.Fatalf("%s: event %d is %q (out of order)", name, i, m.Payload)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("%s: event %d never arrived", name, i)
					}
				}
			}

			// send --node c through b.
			before := c.Plugins()[0].Calls
			if err := a.SendNode(context.Background(), "c", &message.Message{Kind: abi.KindSend, Subject: "echo.note", Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("c's plugin handles the send", func() error {
				if got := c.Plugins()[0].Calls; got <= before {
					return fmt.Errorf("calls %d", got)
				}
				return nil
			}))
			for _, p := range a.Peers() {
				if p.Name == "b" && (p.Transport != tr || p.State != "up") {
					t.Errorf("a's link to b: %+v", p)
				}
				// c is relayed via b until a and c, which learnt of each
				// other through b, link directly.
				if p.Name == "c" && (p.State != "relayed" || p.Via != "b") && (p.State != "up" || p.Found != "gossip" && p.Found != "inbound") {
					t.Errorf("a's view of c: %+v", p)
				}
			}
		})
	}
}

// TestCallNodeSelfStaysLocal: a call or send addressed to this node by name
// is served here or not at all. a serves nothing and b serves echo; a plain
// call on a reaches b, but the same call or send with --node a fails with
// no_handler and b's plugin never runs.
func TestCallNodeSelfStaysLocal(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Plugins: map[string]string{"b": cluster.WatEcho("upper", "echo")}})
	a, b := cl.Host("a").Node(), cl.Host("b").Node()
	ctx := context.Background()
	req := func() *message.Message {
		return &message.Message{Kind: abi.KindRequest, Subject: "echo.x", Payload: []byte("hi"), Deadline: time.Now().Add(5 * time.Second)}
	}
	hosttest.CheckFor(t, 15*time.Second, func() error { return cl.Host("a").HasRoute("echo") })
	if out, err := a.Call(ctx, req()); err != nil || string(out) != "HI" {
		t.Fatalf("plain call on a: %q, %v; want b's HI", out, err)
	}
	before := b.Plugins()[0].Calls
	if out, err := a.CallNode(ctx, "a", req()); message.StatusOf(err) != abi.StatusNoHandler {
		t.Errorf("call --node a: %q, %v; want no_handler", out, err)
	}
	send := &message.Message{Kind: abi.KindSend, Subject: "echo.x", Payload: []byte("hi")}
	if err := a.SendNode(ctx, "a", send); message.StatusOf(err) != abi.StatusNoHandler {
		t.Errorf("send --node a: %v; want no_handler", err)
	}
	if got := b.Plugins()[0].Calls; got != before {
		t.Errorf("a message for node a reached b's plugin: calls %d -> %d", before, got)
	}
}

// TestRemoteDeadline: a call with a 200ms budget to a plugin on another
// host that never returns is abandoned there at the deadline, not at the
// plugin's own 30s limit: the budget crossed the wire.
func TestRemoteDeadline(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			// a dials b, which runs a plugin that never returns.
			cl := cluster.Start(t, cluster.Options{Names: []string{"b", "a"}, Transport: tr,
				Plugins: map[string]string{"b": fmt.Sprintf("  - {name: spin, path: %q, services: [spin], instances: 1, limits: {timeout: 30s}}\n",
					cluster.TestdataPath("wat", "loop.wasm"))}})
			a, b := cl.Host("a").Node(), cl.Host("b").Node()
			hosttest.CheckFor(t, 15*time.Second, func() error { return cl.Host("a").HasRoute("spin") })
			start := time.Now()
			_, err := a.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "spin.x",
				Deadline: time.Now().Add(200 * time.Millisecond)})
			if message.StatusOf(err) != abi.StatusTimeout {
				t.Fatalf("want a timeout, got %v", err)
			}
			// The remote instance was stopped at the budget: b's plugin
			// reports the timeout long before its own 30s limit.
			hosttest.CheckFor(t, 15*time.Second, func() error {
				if st := b.Plugins()[0]; st.Errors == 0 {
					return fmt.Errorf("b's plugin has recorded no error yet: %+v", st)
				}
				return nil
			})
			if el := time.Since(start); el > 10*time.Second {
				t.Fatalf("remote call stopped after %v", el)
			}
			t.Logf("caller got %v; remote stopped within %v", err, time.Since(start).Round(time.Millisecond))
		})
	}
}
