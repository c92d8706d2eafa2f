package node_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// frameRelay stands in for a broker: every frame of transport_frames.wat
// (three little-endian u32 lengths, then subject, payload, headers) that a
// client writes is written whole to every connected client, the sender
// included, as a broker delivers to every subscriber.
type frameRelay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startFrameRelay(t *testing.T) *frameRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &frameRelay{ln: ln, conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns[c] = true
			r.mu.Unlock()
			r.wg.Add(1)
			go r.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *frameRelay) serve(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.Close()
	}()
	var head [12]byte
	for {
		if _, err := io.ReadFull(c, head[:]); err != nil {
			return
		}
		n := 0
		for i := range 3 {
			n += int(binary.LittleEndian.Uint32(head[4*i:]))
		}
		if n > 1<<20 {
			return
		}
		frame := make([]byte, 12+n)
		copy(frame, head[:])
		if _, err := io.ReadFull(c, frame[12:]); err != nil {
			return
		}
		r.mu.Lock()
		for o := range r.conns {
			o.SetWriteDeadline(time.Now().Add(10 * time.Second))
			o.Write(frame)
		}
		r.mu.Unlock()
	}
}

func (r *frameRelay) addr() string { return r.ln.Addr().String() }

// relayTransport is a plugins: item for a transport_frames plugin named
// wire that dials the relay and carries the topics t.>.
func relayTransport(r *frameRelay) string {
	return fmt.Sprintf("  - {name: wire, path: %q, kind: transport, grants: [publish], topics: [t.>], dial: [\"tcp://%s\"], watch: false}\n",
		cluster.TestdataPath("wat", "transport_frames.wasm"), r.addr())
}

// wire returns the transport's entry in n's /v1/plugins.
func wire(n *node.Node) *control.TransportInfo {
	for _, p := range n.Plugins() {
		if p.Name == "wire" && p.Transport != nil {
			return p.Transport
		}
	}
	return nil
}

// framesIn counts the frames n's transport delivered: published, dropped
// as its own or dropped as a duplicate.
func framesIn(ti *control.TransportInfo) uint64 {
	return ti.MessagesIn + ti.OwnDropped + ti.Duplicates
}

func waitConnected(t *testing.T, nodes ...*node.Node) {
	t.Helper()
	hosttest.CheckFor(t, 30*time.Second, func() error {
		for _, n := range nodes {
			if ti := wire(n); ti == nil || len(ti.Conns) != 1 {
				return fmt.Errorf("%s: transport not connected to the relay: %+v", n.ID()[:8], ti)
			}
		}
		return nil
	})
}

// waitFrames waits until each node's transport delivered want frames (all
// the relay sends it) and returns their counters.
func waitFrames(t *testing.T, want uint64, nodes ...*node.Node) {
	t.Helper()
	hosttest.CheckFor(t, 30*time.Second, func() error {
		for _, n := range nodes {
			ti := wire(n)
			if ti == nil || framesIn(ti) < want {
				return fmt.Errorf("%s: transport delivered %+v, want %d frames in all", n.ID()[:8], ti, want)
			}
		}
		return nil
	})
}

// waitResent waits until b, meshed with the publisher and on the relay,
// has taken in each of count events by its first path, and every node's
// transport has delivered all the relay sends it: the publisher's count
// frames and b's re-sends. b re-sends an event to the relay only when the
// mesh copy comes first (a relay copy that comes first is already on the
// relay, and the mesh copy after it is a duplicate), so how many it
// re-sends depends on which path wins each race; it returns that number.
func waitResent(t *testing.T, count uint64, b *node.Node, nodes ...*node.Node) uint64 {
	t.Helper()
	var resent uint64
	hosttest.CheckFor(t, 30*time.Second, func() error {
		tb := wire(b)
		if tb == nil {
			return fmt.Errorf("%s has no transport", b.ID()[:8])
		}
		// Relay first: delivered (MessagesIn); mesh first: re-sent.
		if resent = tb.MessagesOut; tb.MessagesIn+resent != count {
			return fmt.Errorf("%s took in %d events first from the relay and re-sent %d it got first by the mesh, want %d in all: %+v",
				b.ID()[:8], tb.MessagesIn, resent, count, tb)
		}
		for _, n := range nodes {
			if ti := wire(n); ti == nil || framesIn(ti) != count+resent {
				return fmt.Errorf("%s: transport delivered %+v, want %d frames in all (%d published, %d re-sent by %s)",
					n.ID()[:8], ti, count+resent, count, resent, b.ID()[:8])
			}
		}
		return nil
	})
	return resent
}

// received drains what sub has now and counts each payload.
func received(sub control.Subscription) map[string]int {
	got := map[string]int{}
	for {
		select {
		case m := <-sub.C():
			got[string(m.Payload)]++
		default:
			return got
		}
	}
}

func subscribe(t *testing.T, n *node.Node) control.Subscription {
	t.Helper()
	sub, err := n.Subscribe("t.>", 1024)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, unconfirmed := n.ConfirmInterest(ctx); unconfirmed != 0 {
		t.Fatalf("%s: %d mesh peers did not confirm the subscription", n.ID()[:8], unconfirmed)
	}
	return sub
}

func publishN(t *testing.T, n *node.Node, count int) {
	t.Helper()
	for i := range count {
		if _, err := n.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "t.x",
			Payload: fmt.Appendf(nil, "e%d", i), From: "test"}); err != nil {
			t.Fatal(err)
		}
	}
}

// exactlyOnce checks that got holds each of the count events once.
func exactlyOnce(who string, got map[string]int, count int) error {
	var errs []error
	for i := range count {
		if k := got[fmt.Sprintf("e%d", i)]; k != 1 {
			errs = append(errs, fmt.Errorf("%s got e%d %d times", who, i, k))
		}
	}
	if len(got) != count {
		errs = append(errs, fmt.Errorf("%s got %d distinct events, want %d", who, len(got), count))
	}
	return errors.Join(errs...)
}

// TestEventOnceOverMeshAndBroker is issue 15 item 4's first case: hosts a
// and b linked by the mesh and both on one broker (the relay) have two
// paths between them. An event published on a reaches b's subscriber
// once: the copy that comes second (by the mesh or by the relay, and b's
// own re-send of a's event through the relay, stamped with a's identity)
// is dropped as a duplicate (SPEC 13.5). Before events had an identity, b
// got every event twice.
func TestEventOnceOverMeshAndBroker(t *testing.T) {
	relay := startFrameRelay(t)
	cl := cluster.Start(t, cluster.Options{Names: []string{"a", "b"},
		Plugins: map[string]string{"a": relayTransport(relay), "b": relayTransport(relay)}})
	a, b := cl.Host("a").Node(), cl.Host("b").Node()
	waitConnected(t, a, b)
	subB := subscribe(t, b)
	const count = 50
	publishN(t, a, count)
	// Every event leaves a for the relay (a's transport) and for b (the
	// mesh), and b sends what it gets first by the mesh on to the relay
	// too. Once b's transport has delivered all that, the mesh copies that
	// made b's frames were handled too.
	waitResent(t, count, b, a, b)
	if err := exactlyOnce("b", received(subB), count); err != nil {
		t.Errorf("%v\nb's transport: %+v", err, wire(b))
	}
	if ti := wire(b); ti.Duplicates == 0 {
		t.Errorf("b's transport dropped no duplicates: %+v", ti)
	}
}

// TestEventOnceThroughGatewayHost is the second case: a and b meshed, c
// on the relay only, all three on the relay. An event published on a
// reaches c once (a's frame and b's re-send carry the same identity), b
// once, and a's own subscriber once: b's re-send comes back to a stamped
// with a's origin, so a drops it as its own, and b does not hand an event
// it got from the relay to the mesh (a would get its own event back).
func TestEventOnceThroughGatewayHost(t *testing.T) {
	relay := startFrameRelay(t)
	cl := cluster.Start(t, cluster.Options{Names: []string{"a", "b"},
		Plugins: map[string]string{"a": relayTransport(relay), "b": relayTransport(relay)}})
	alone := cluster.Start(t, cluster.Options{Names: []string{"c"}, Plugins: map[string]string{"c": relayTransport(relay)}})
	a, b, c := cl.Host("a").Node(), cl.Host("b").Node(), alone.Host("c").Node()
	waitConnected(t, a, b, c)
	subA, subB, subC := subscribe(t, a), subscribe(t, b), subscribe(t, c)
	const count = 50
	publishN(t, a, count)
	resent := waitResent(t, count, b, a, b, c)
	for _, v := range []struct {
		who string
		sub control.Subscription
		n   *node.Node
	}{{"a", subA, a}, {"b", subB, b}, {"c", subC, c}} {
		if err := exactlyOnce(v.who, received(v.sub), count); err != nil {
			t.Errorf("%v\n%s's transport: %+v", err, v.who, wire(v.n))
		}
	}
	if ti := wire(a); ti.OwnDropped != count+resent || ti.MessagesIn != 0 {
		t.Errorf("a's transport: %+v; want its %d own events back (its frames) and the %d b re-sent, none published", ti, count, resent)
	}
}

// TestReplayedIdentityDropped is the third case, on one host: frames that
// another host's events would make on a broker, written by the test. The
// same identity (origin, seq) twice reaches the subscriber once; a new
// number of that origin is delivered; a frame with an origin but no
// number (an older host) is never dropped, however often it comes.
func TestReplayedIdentityDropped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			server <- c
		}
	}()
	medium := &frameRelay{ln: ln}
	cl := cluster.Start(t, cluster.Options{Names: []string{"a"}, Plugins: map[string]string{"a": relayTransport(medium)}})
	a := cl.Host("a").Node()
	var peer net.Conn
	select {
	case peer = <-server:
		defer peer.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("the transport did not dial")
	}
	waitConnected(t, a)
	sub := subscribe(t, a)
	frame := func(payload string, h abi.Headers) []byte {
		hdr, err := cbor.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		f := binary.LittleEndian.AppendUint32(nil, 3)
		f = binary.LittleEndian.AppendUint32(f, uint32(len(payload)))
		f = binary.LittleEndian.AppendUint32(f, uint32(len(hdr)))
		return append(append(append(f, "t.x"...), payload...), hdr...)
	}
	other := func(seq string) abi.Headers {
		h := abi.Headers{abi.HeaderOrigin: "node-b"}
		if seq != "" {
			h[abi.HeaderSeq] = seq
		}
		return h
	}
	var stream []byte
	for _, f := range []struct{ payload, seq string }{
		{"e0", "7"}, {"e0", "7"}, {"e1", "8"}, {"e2", ""}, {"e2", ""},
	} {
		stream = append(stream, frame(f.payload, other(f.seq))...)
	}
	peer.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := peer.Write(stream); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, 5, a)
	got := received(sub)
	if got["e0"] != 1 || got["e1"] != 1 || got["e2"] != 2 || len(got) != 3 {
		t.Errorf("subscriber got %v; want e0 and e1 once, e2 (no identity) twice\ntransport: %+v", got, wire(a))
	}
	if ti := wire(a); ti.Duplicates != 1 {
		t.Errorf("transport: %+v; want 1 duplicate", ti)
	}
}
