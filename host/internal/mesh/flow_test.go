package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestPublishWithDeadlineWaitsForRoom: a host whose link to the
// subscriber is slow (512 KiB/s) and whose send buffer is small (64 KiB)
// publishes 1,500 events of 1 KiB. With a deadline on each, the publisher
// waits for room: every event goes out and arrives, none is dropped. The
// same flood without a deadline drops events at once (the link really
// was congested).
func TestPublishWithDeadlineWaitsForRoom(t *testing.T) {
	b := newHost(t, "b")
	sub, err := b.router.Subscribe("flow.>", 4096)
	if err != nil {
		t.Fatal(err)
	}
	bPeer, _, _, px := proxyTo(t, TCP, b)
	px.SetRate(hosttest.ToServer, 512<<10)
	a := newHost(t, "a", func(o *Options) { o.SendBuffer = 64 << 10 }, withPeers(bPeer))
	hosttest.CheckFor(t, 10*time.Second, func() error { return listenersErr(a, 1) })
	l := a.mesh.links.get(b.mesh.ID())
	if l == nil {
		t.Fatal("a has no link to b")
	}

	const events = 1500
	payload := make([]byte, 1<<10)
	publish := func(deadline time.Time) int {
		k, err := a.router.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "flow.x", Payload: payload, Deadline: deadline})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for i := range events {
		if k := publish(time.Now().Add(30 * time.Second)); k != 1 {
			t.Fatalf("event %d with a deadline reached %d hosts, want 1 (dropped %d)", i, k, l.dropped.Load())
		}
	}
	for i := range events {
		select {
		case <-sub.C():
		case <-time.After(30 * time.Second):
			t.Fatalf("b received %d of %d events", i, events)
		}
	}
	if n := l.dropped.Load(); n != 0 {
		t.Fatalf("%d events with a deadline dropped", n)
	}

	refused := 0
	for range events {
		if publish(time.Time{}) == 0 {
			refused++
		}
	}
	if refused == 0 || l.dropped.Load() == 0 {
		t.Fatalf("no event without a deadline was dropped (refused %d, dropped %d): the path was not congested, so the first half proves nothing", refused, l.dropped.Load())
	}
	t.Logf("without a deadline %d of %d events were dropped at once", refused, events)
}
