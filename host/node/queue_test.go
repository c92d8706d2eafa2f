package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// queueConfig runs queue_worker.wat as the consumer of queue "orders",
// one instance (its flaky counter is per instance), with quick retries.
const queueConfig = `
queues: {max_attempts: 3, backoff: %s, max_backoff: %s}
plugins:
  - name: worker
    path: %s
    queues: [orders]
    grants: [publish]
    instances: 1
    watch: false
`

// Collected is what SubscribeCollect received.
type Collected struct {
	mu  sync.Mutex
	got []string
}

// List is the payloads received so far, in order.
func (w *Collected) List() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// subscribeCollect subscribes to topic on c until the test ends, once the
// subscription is live (a probe published on topic came back).
func subscribeCollect(t *testing.T, c *control.Client, topic string) *Collected {
	t.Helper()
	w := &Collected{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Subscribe(ctx, topic, func(m *message.Message) error {
			w.mu.Lock()
			w.got = append(w.got, string(m.Payload))
			w.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("subscription live", func() error {
		if _, err := c.Publish(ctx, topic, []byte("probe"), nil); err != nil {
			return err
		}
		if !slices.Contains(w.List(), "probe") {
			return fmt.Errorf("no probe yet")
		}
		return nil
	}))
	return w
}

// watchWorked collects what queue_worker.wat publishes on "worked", one
// payload per acknowledged delivery.
func watchWorked(t *testing.T, c *control.Client) *Collected {
	t.Helper()
	return subscribeCollect(t, c, "worked")
}

func enqueueOn(t *testing.T, c *control.Client, queueName, payload string) string {
	t.Helper()
	reply, err := c.Call(context.Background(), abi.QueueSubjectPrefix+queueName+".new", []byte(payload), nil, 10*time.Second)
	if err != nil {
		t.Fatalf("enqueue %q on %s: %v", payload, queueName, err)
	}
	return string(reply)
}

func queueStats(n *Node, name string) control.QueueInfo {
	for _, st := range n.Queues() {
		if st.Name == name {
			return st
		}
	}
	return control.QueueInfo{}
}

// TestQueueDeliversRetriesAndDeadLetters: messages enqueued through the
// control API reach a WAT consumer; a failing one is delivered again
// after its back-off until the handler returns ok, and one that always
// fails is dead-lettered after queues.max_attempts, kept with its error.
func TestQueueDeliversRetriesAndDeadLetters(t *testing.T) {
	dir := t.TempDir()
	n, c, _ := startNode(t, dir, fmt.Sprintf(queueConfig, "20ms", "50ms", abs(t, "queue_worker.wasm")))
	w := watchWorked(t, c)
	if id := enqueueOn(t, c, "orders", "job-1"); id != "1" {
		t.Fatalf("first enqueue answered %q, want the id 1", id)
	}
	enqueueOn(t, c, "orders", "flaky")
	enqueueOn(t, c, "orders", "poison")
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("job-1 and flaky acknowledged, poison dead", func() error {
		st := queueStats(n, "orders")
		if st.Acked != 2 || st.Dead != 1 || st.Depth != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	}))
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("both events", func() error {
		if got := w.List(); !slices.Contains(got, "job-1") || !slices.Contains(got, "flaky") {
			return fmt.Errorf("worked: %v", got)
		}
		return nil
	}))
	if got := w.List(); slices.Contains(got, "poison") {
		t.Fatalf("poison was acknowledged: %v", got)
	}
	if st := queueStats(n, "orders"); st.Delivered != 1+2+3 || st.Retried != 1+2 || st.Consumer != "worker" {
		t.Fatalf("stats %+v: want 6 deliveries (1 + flaky 2 + poison 3), 3 retries", st)
	}
	dead, err := c.DeadLetters(context.Background(), "orders", 10)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := c.Queues(context.Background()); err != nil || len(list) != 1 || list[0].Dead != 1 || list[0].Acked != 2 {
		t.Fatalf("GET /v1/queues: %+v, %v", list, err)
	}
	if _, err := c.DeadLetters(context.Background(), "nope", 0); err == nil {
		t.Fatal("dead letters of an unknown queue: no error")
	}
	if len(dead) != 1 || string(dead[0].Payload) != "poison" || dead[0].Attempts != 3 || dead[0].LastError == "" ||
		dead[0].Subject != "$queue.orders.new" {
		t.Fatalf("dead letters: %+v", dead)
	}
	// The same figures in /metrics (a loopback node needs no token).
	fams := scrape(t, n.ControlAddr(), "")
	for name, want := range map[string]float64{"pycomms_queue_enqueued_total": 3, "pycomms_queue_acked_total": 2,
		"pycomms_queue_deliveries_total": 6, "pycomms_queue_retries_total": 3, "pycomms_queue_dead_lettered_total": 1,
		"pycomms_queue_dead_letters": 1, "pycomms_queue_messages": 0} {
		if v, ok := sample(fams, name, map[string]string{"queue": "orders"}); !ok || v != want {
			t.Errorf("%s{queue=orders} = %v (present %v), want %v", name, v, ok, want)
		}
	}
	// Redriven, poison is delivered max_attempts more times and dies again.
	if moved, err := c.Redrive(context.Background(), "orders"); err != nil || moved != 1 {
		t.Fatalf("redrive: %d, %v", moved, err)
	}
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("poison dead again", func() error {
		if st := queueStats(n, "orders"); st.Delivered != 6+3 || st.Dead != 1 || st.Depth != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	}))
	if deleted, err := c.PurgeDead(context.Background(), "orders"); err != nil || deleted != 1 {
		t.Fatalf("purge: %d, %v", deleted, err)
	}
	if dead, err := c.DeadLetters(context.Background(), "orders", 0); err != nil || len(dead) != 0 {
		t.Fatalf("dead letters after the purge: %+v, %v", dead, err)
	}
	// An unknown queue is no_handler, with its name.
	if _, err := c.Call(context.Background(), "$queue.other.new", []byte("x"), nil, 5*time.Second); err == nil {
		t.Fatal("an enqueue to a queue nobody consumes succeeded")
	}
}

// TestQueueKeptAcrossRestart: a message that failed once and waits out a
// long back-off is still there when the node starts again on the same
// data_dir, with its attempt counted, and is delivered then.
func TestQueueKeptAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := func(backoff string) string {
		return "data_dir: " + data + "\n" + fmt.Sprintf(queueConfig, backoff, "1h", abs(t, "queue_worker.wasm"))
	}
	for _, d := range []string{"1", "2"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n, c, _ := startNode(t, filepath.Join(dir, "1"), cfg("1h"))
	enqueueOn(t, c, "orders", "flaky-1")
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("the first delivery failed", func() error {
		if st := queueStats(n, "orders"); st.Retried != 1 || st.Delayed != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	}))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n2, c2, _ := startNode(t, filepath.Join(dir, "2"), cfg("10ms"))
	w := watchWorked(t, c2)
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("flaky-1 acknowledged after the restart", func() error {
		if !slices.Contains(w.List(), "flaky-1") {
			return fmt.Errorf("worked: %v, stats %+v", w.List(), queueStats(n2, "orders"))
		}
		return nil
	}))
	// The new instance's counter starts again: its first delivery (the
	// message's second attempt) fails, the next succeeds. Three in all,
	// so max_attempts 3 was not reached on the restarted count.
	if st := queueStats(n2, "orders"); st.Delivered != 2 || st.Dead != 0 {
		t.Fatalf("after the restart: %+v", st)
	}
	if id := enqueueOn(t, c2, "orders", "job-2"); id != "2" {
		t.Fatalf("an enqueue after the restart got id %s, want 2", id)
	}
}

// TestQueueOptionsAreLive: a reload that lowers queues.max_attempts
// applies to the next failure (poison dies after one delivery), and one
// that lowers queues.max_depth to the next enqueue.
func TestQueueOptionsAreLive(t *testing.T) {
	dir := t.TempDir()
	n, c, _ := startNode(t, dir, fmt.Sprintf(queueConfig, "1h", "1h", abs(t, "queue_worker.wasm")))
	path := filepath.Join(dir, "pycomms.yaml")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(queues string) {
		t.Helper()
		cfg := strings.Replace(string(orig), "queues: {max_attempts: 3, backoff: 1h, max_backoff: 1h}", "queues: "+queues, 1)
		if cfg == string(orig) {
			t.Fatal("the test's config edit did not apply")
		}
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := n.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	reload("{max_attempts: 1, backoff: 1h}")
	enqueueOn(t, c, "orders", "poison")
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("poison dead after one delivery", func() error {
		if st := queueStats(n, "orders"); st.Dead != 1 || st.Delivered != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	}))
	reload("{max_attempts: 3, backoff: 1h, max_depth: 1}")
	// flaky fails its first delivery and waits an hour: the queue is full.
	enqueueOn(t, c, "orders", "flaky")
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("flaky failed once", func() error {
		if st := queueStats(n, "orders"); st.Delayed != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	}))
	_, err = c.Call(context.Background(), "$queue.orders.new", []byte("job"), nil, 5*time.Second)
	if message.StatusOf(err) != abi.StatusBusy {
		t.Fatalf("an enqueue beyond max_depth: %v, want busy", err)
	}
}

// TestQueueConvertsForAccepts: a consumer that declares accepts gets a
// queued message converted as a send would be: JSON enqueued, CBOR
// delivered (queue_worker.wat publishes what it got). A message no codec
// converts fails its deliveries and ends a dead letter naming the type.
func TestQueueConvertsForAccepts(t *testing.T) {
	dir := t.TempDir()
	n, c, _ := startNode(t, dir, fmt.Sprintf(`
queues: {max_attempts: 2, backoff: 10ms}
plugins:
  - {name: json-cbor, path: builtin:json-cbor, kind: codec}
  - name: worker
    path: %s
    queues: [orders]
    accepts: [application/cbor]
    grants: [publish]
    instances: 1
    watch: false
`, abs(t, "queue_worker.wasm")))
	w := watchWorked(t, c)
	if _, err := c.Call(context.Background(), "$queue.orders.new", []byte("[1,2]"), map[string]string{"content-type": "application/json"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(context.Background(), "$queue.orders.new", []byte("x"), map[string]string{"content-type": "text/x-nothing"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("the CBOR delivered", func() error {
		if !slices.Contains(w.List(), "\x82\x01\x02") {
			return fmt.Errorf("worked: %q", w.List())
		}
		return nil
	}))
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("the unconvertible one dead", func() error {
		if st := queueStats(n, "orders"); st.Dead != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	}))
	dead, err := c.DeadLetters(context.Background(), "orders", 0)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].LastError, "text/x-nothing") {
		t.Fatalf("dead letters: %+v, %v", dead, err)
	}
}
