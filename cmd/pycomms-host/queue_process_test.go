//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestProcessQueueSurvivesSIGKILL: producers enqueue through the control
// API while the node's process is SIGKILLed. Every enqueue that was
// answered with an id was on disk: after a restart on the same data_dir
// each of those messages is delivered (queue_worker.wat fails "poison"
// every time, so each ends as a dead letter after max_attempts, where the
// test finds it by id with its payload).
func TestProcessQueueSurvivesSIGKILL(t *testing.T) {
	worker := fmt.Sprintf("  - {name: worker, path: %q, queues: [orders], grants: [publish], instances: 1, watch: false}\n",
		cluster.TestdataPath("wat", "queue_worker.wasm"))
	c := procCluster(t, cluster.Options{Names: []string{"q"}, Topology: cluster.None,
		Plugins: map[string]string{"q": worker},
		// A failed delivery waits an hour: until the kill, messages stay.
		Extra: map[string]string{"q": "queues: {max_attempts: 2, backoff: 1h, max_backoff: 1h}\n"}})
	h := c.Host("q")
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}

	const producers = 4
	var (
		mu    sync.Mutex
		acked = map[uint64]string{} // id -> payload, for every enqueue answered
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	cl := control.NewClient(h.ControlAddr())
	defer cl.CloseIdleConnections()
	for p := range producers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 100_000; i++ {
				payload := fmt.Sprintf("poison-%d-%d", p, i)
				reply, err := cl.Call(ctx, "$queue.orders.new", []byte(payload), nil, 10*time.Second)
				if err != nil {
					return // the kill, or the test's end
				}
				id, err := strconv.ParseUint(string(reply), 10, 64)
				if err != nil {
					t.Errorf("enqueue answered %q, not an id", reply)
					return
				}
				mu.Lock()
				acked[id] = payload
				mu.Unlock()
			}
		})
	}
	procEventually(t, 30*time.Second, "200 enqueues answered", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 200 {
			return fmt.Errorf("%d answered", len(acked))
		}
		return nil
	})
	h.Kill() // SIGKILL, with enqueues in flight
	stop()
	wg.Wait()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	t.Logf("%d enqueues answered before the SIGKILL", want)

	h.SetExtra("queues: {max_attempts: 2, backoff: 10ms, max_backoff: 10ms}\n")
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	procEventually(t, 60*time.Second, "every stored message delivered and dead-lettered", func() error {
		r := hostCLI(t, h, "queues", "--json")
		var qs []control.QueueInfo
		if err := json.Unmarshal([]byte(r.stdout), &qs); r.code != 0 || err != nil {
			return fmt.Errorf("queues --json: %v %+v", err, r)
		}
		if len(qs) != 1 || qs[0].Depth != 0 || qs[0].Dead < want {
			return fmt.Errorf("queues: %+v, want depth 0 and at least %d dead", qs, want)
		}
		return nil
	})
	r := hostCLI(t, h, "queues", "dead", "orders", "--json", "--limit", "10000")
	var dead []control.DeadLetter
	if err := json.Unmarshal([]byte(r.stdout), &dead); r.code != 0 || err != nil {
		t.Fatalf("queues dead --json: %v %+v", err, r)
	}
	got := map[uint64]string{}
	for _, d := range dead {
		got[d.ID] = string(d.Payload)
		if d.Attempts != 2 || d.Subject != "$queue.orders.new" {
			t.Errorf("dead letter %d: %+v", d.ID, d)
		}
	}
	for id, payload := range acked {
		if got[id] != payload {
			t.Errorf("message %d (%q), acknowledged before the kill, came back as %q", id, payload, got[id])
		}
	}
	// The table prints too; then the dead letters are purged.
	if r := hostCLI(t, h, "queues"); r.code != 0 {
		t.Fatalf("queues: %+v", r)
	}
	if r := hostCLI(t, h, "queues", "purge", "orders"); r.code != 0 || r.stdout != fmt.Sprintf("%d dead letters of orders deleted\n", len(dead)) {
		t.Fatalf("queues purge: %+v", r)
	}
	if r := hostCLI(t, h, "queues", "dead", "orders", "--json"); r.code != 0 || r.stdout != "[]\n" {
		t.Fatalf("dead letters after the purge: %+v", r)
	}
}

// TestCLIEnqueue: enqueue prints the id, refuses a name without a method,
// and exits 2 for a queue no node consumes.
func TestCLIEnqueue(t *testing.T) {
	worker := fmt.Sprintf("  - {name: worker, path: %q, queues: [orders], grants: [publish], instances: 1, watch: false}\n",
		cluster.TestdataPath("wat", "queue_worker.wasm"))
	c := startProcCluster(t, cluster.Options{Names: []string{"q"}, Topology: cluster.None, Plugins: map[string]string{"q": worker}})
	h := c.Host("q")
	if r := hostCLI(t, h, "enqueue", "orders.created", "job-1"); r.code != 0 || r.stdout != "1\n" {
		t.Fatalf("enqueue: %+v", r)
	}
	if r := hostCLI(t, h, "enqueue", "orders", "x"); r.code != exitUsage {
		t.Fatalf("enqueue without a method: %+v", r)
	}
	if r := hostCLI(t, h, "enqueue", "nobody.x", "x"); r.code != exitNoHandler {
		t.Fatalf("enqueue to an unconsumed queue: %+v", r)
	}
	if r := hostCLI(t, h, "queues", "dead", "nobody"); r.code != exitNoHandler {
		t.Fatalf("dead letters of an unknown queue: %+v", r)
	}
	if r := hostCLI(t, h, "queues", "redrive", "orders"); r.code != 0 || r.stdout != "0 dead letters of orders moved back into the queue\n" {
		t.Fatalf("queues redrive: %+v", r)
	}
}
