package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/node"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestQueueAcrossHosts: an enqueue on a host with no consumer is routed
// to the host that consumes the queue, stored there and delivered.
func TestQueueAcrossHosts(t *testing.T) {
	item := fmt.Sprintf("  - {name: worker, path: %q, queues: [orders], grants: [publish], instances: 1, watch: false}\n",
		cluster.TestdataPath("wat", "queue_worker.wasm"))
	cl := cluster.Start(t, cluster.Options{Plugins: map[string]string{"b": item}})
	hosttest.CheckFor(t, 15*time.Second, func() error { return cl.Host("a").HasRoute("$queue.orders") })
	b := control.NewClient(cl.Host("b").ControlAddr())
	w := node.SubscribeCollect(t, b, "worked")
	a := control.NewClient(cl.Host("a").ControlAddr())
	for i := range 10 {
		if _, err := a.Call(context.Background(), "$queue.orders.new", []byte(fmt.Sprintf("job-%d", i)), nil, 10*time.Second); err != nil {
			t.Fatalf("enqueue on a: %v", err)
		}
	}
	hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("every job worked on b", func() error {
		got := w.List()
		for i := range 10 {
			if !slices.Contains(got, fmt.Sprintf("job-%d", i)) {
				return fmt.Errorf("worked: %v", got)
			}
		}
		return nil
	}))
	if st := cl.Host("b").Node().Queues(); len(st) != 1 || st[0].Enqueued != 10 || st[0].Acked != 10 {
		t.Fatalf("b's queues: %+v", st)
	}
	if len(cl.Host("a").Node().Queues()) != 0 {
		t.Fatalf("a keeps queues: %+v", cl.Host("a").Node().Queues())
	}
}
