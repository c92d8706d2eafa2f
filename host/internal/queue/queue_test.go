package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// liveness bounds every wait: generous for a loaded 2-core machine.
const liveness = 20 * time.Second

// consumerFunc is a Consumer in a function, standing in for a handler
// plugin (the node tests deliver to real plugins).
type consumerFunc func(m *message.Message) error

func (f consumerFunc) Deliver(_ context.Context, m *message.Message) error { return f(m) }

// recorder takes every delivery and answers with what answer says.
type recorder struct {
	mu     sync.Mutex
	got    []*message.Message
	answer func(m *message.Message) error
}

func (r *recorder) Deliver(_ context.Context, m *message.Message) error {
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
	if r.answer == nil {
		return nil
	}
	return r.answer(m)
}

func (r *recorder) deliveries() []*message.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func queueOf(t *testing.T, s *Store, name string) *Queue {
	t.Helper()
	q, err := s.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func enqueue(t *testing.T, q *Queue, payload string, headers abi.Headers) uint64 {
	t.Helper()
	id, err := q.Enqueue(&message.Message{Subject: q.subj, Payload: []byte(payload), Headers: headers}, true)
	if err != nil {
		t.Fatalf("enqueue %q: %v", payload, err)
	}
	return id
}

// waitFor polls cond until it holds, failing after liveness.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", liveness, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestDeliveredInOrderAndAcknowledged: messages reach the consumer in
// enqueue order with their headers and ids, and an acknowledged message
// leaves the file.
func TestDeliveredInOrderAndAcknowledged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	s := open(t, path, Options{})
	q := queueOf(t, s, "orders")
	const n = 100
	for i := range n {
		if id := enqueue(t, q, fmt.Sprint(i), abi.Headers{"k": "v"}); id != uint64(i+1) {
			t.Fatalf("message %d got id %d", i, id)
		}
	}
	rec := &recorder{}
	q.SetConsumer(rec, 1)
	waitFor(t, "every message acknowledged", func() bool { return q.Stats().Acked == n })
	for i, m := range rec.deliveries() {
		if string(m.Payload) != fmt.Sprint(i) || m.Subject != "$queue.orders" || m.Kind != abi.KindSend ||
			m.Headers["k"] != "v" || m.Headers[abi.HeaderQueueID] != fmt.Sprint(i+1) || m.Headers[abi.HeaderAttempt] != "1" {
			t.Fatalf("delivery %d: kind %v subject %q payload %q headers %v", i, m.Kind, m.Subject, m.Payload, m.Headers)
		}
	}
	if st := q.Stats(); st.Depth != 0 || st.Enqueued != n || st.Delivered != n || st.Retried != 0 {
		t.Fatalf("stats after the run: %+v", st)
	}
	s.Close()
	s2 := open(t, path, Options{})
	if st := queueOf(t, s2, "orders").Stats(); st.Depth != 0 {
		t.Fatalf("after reopening, %d acknowledged messages are back", st.Depth)
	}
}

// TestRetriedThenDeadLettered: a failing delivery is retried after a
// back-off with the attempt counted in a header; one that fails
// MaxAttempts times becomes a dead letter with its last error, and a
// consumer that was never run (busy, gone) costs no attempt.
func TestRetriedThenDeadLettered(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "q.db"), Options{MaxAttempts: 4, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	q := queueOf(t, s, "jobs")
	busyOnce, goneOnce := true, true
	rec := &recorder{answer: func(m *message.Message) error {
		attempt, _ := strconv.Atoi(m.Headers[abi.HeaderAttempt])
		switch string(m.Payload) {
		case "flaky":
			if attempt < 3 {
				return message.Errorf(abi.StatusHandlerError, "not yet (attempt %d)", attempt)
			}
		case "poison":
			return message.Errorf(abi.StatusHandlerError, "cannot take %q", m.Payload)
		case "busy":
			if busyOnce {
				busyOnce = false
				return message.Errorf(abi.StatusBusy, "every instance is busy")
			}
		case "gone":
			if goneOnce {
				goneOnce = false
				return fmt.Errorf("replaced: %w", router.ErrGone)
			}
		}
		return nil
	}}
	q.SetConsumer(rec, 1)
	flaky := enqueue(t, q, "flaky", nil)
	poison := enqueue(t, q, "poison", nil)
	enqueue(t, q, "busy", nil)
	enqueue(t, q, "gone", nil)
	waitFor(t, "flaky, busy and gone acknowledged, poison dead", func() bool {
		st := q.Stats()
		return st.Acked == 3 && st.Dead == 1 && st.Depth == 0
	})
	attempts := map[string][]string{}
	for _, m := range rec.deliveries() {
		attempts[string(m.Payload)] = append(attempts[string(m.Payload)], m.Headers[abi.HeaderAttempt])
	}
	want := map[string][]string{"flaky": {"1", "2", "3"}, "poison": {"1", "2", "3", "4"}, "busy": {"1", "1"}, "gone": {"1", "1"}}
	for p, w := range want {
		if !slices.Equal(attempts[p], w) {
			t.Errorf("%s delivered with attempts %v, want %v", p, attempts[p], w)
		}
	}
	if st := q.Stats(); st.Retried != 2+3 || st.DeadLettered != 1 {
		t.Errorf("stats: %+v", st)
	}
	var dead []DeadLetter
	waitFor(t, "the dead letter written", func() bool {
		var err error
		dead, err = s.DeadLetters("jobs", 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) > 0
	})
	if len(dead) != 1 || dead[0].ID != poison || dead[0].Attempts != 4 || string(dead[0].Payload) != "poison" ||
		dead[0].LastError != `cannot take "poison"` {
		t.Fatalf("dead letters: %+v", dead)
	}
	_ = flaky
}

// TestKeptAcrossRestart: what is not acknowledged when the store closes
// (never delivered, or failed once) is delivered after it opens again,
// in order and with its attempts remembered.
func TestKeptAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	opts := Options{Backoff: time.Hour} // a failed message waits out the restart
	s := open(t, path, opts)
	q := queueOf(t, s, "orders")
	failed := make(chan struct{})
	q.SetConsumer(consumerFunc(func(m *message.Message) error {
		close(failed)
		return errors.New("down")
	}), 1)
	enqueue(t, q, "first", nil)
	<-failed
	q.SetConsumer(nil, 0)
	for i := range 20 {
		enqueue(t, q, fmt.Sprint(i), nil)
	}
	waitFor(t, "the failure recorded", func() bool { return q.Stats().Retried == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, path, Options{})
	q2 := queueOf(t, s2, "orders")
	if st := q2.Stats(); st.Depth != 21 || st.Ready != 21 {
		t.Fatalf("after reopening: %+v, want 21 messages ready", st)
	}
	rec := &recorder{}
	q2.SetConsumer(rec, 1)
	waitFor(t, "every message delivered", func() bool { return q2.Stats().Acked == 21 })
	got := rec.deliveries()
	if string(got[0].Payload) != "first" || got[0].Headers[abi.HeaderAttempt] != "2" {
		t.Fatalf("first delivery after the restart: %q attempt %s", got[0].Payload, got[0].Headers[abi.HeaderAttempt])
	}
	for i, m := range got[1:] {
		if string(m.Payload) != fmt.Sprint(i) || m.Headers[abi.HeaderAttempt] != "1" {
			t.Fatalf("delivery %d: %q attempt %s", i+1, m.Payload, m.Headers[abi.HeaderAttempt])
		}
	}
	if id := enqueue(t, q2, "after", nil); id != 22 {
		t.Fatalf("ids went back after the restart: %d", id)
	}
}

// TestFullQueueIsBusy: an enqueue beyond max_depth fails with busy and
// stores nothing.
func TestFullQueueIsBusy(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "q.db"), Options{MaxDepth: 3})
	q := queueOf(t, s, "orders")
	for i := range 3 {
		enqueue(t, q, fmt.Sprint(i), nil)
	}
	_, err := q.Enqueue(&message.Message{Payload: []byte("x")}, true)
	var me *message.Error
	if !errors.As(err, &me) || me.Status != abi.StatusBusy {
		t.Fatalf("4th enqueue: %v, want busy", err)
	}
	if st := q.Stats(); st.Depth != 3 {
		t.Fatalf("depth %d after a refused enqueue", st.Depth)
	}
}

// TestConcurrentEnqueues: enqueues from many goroutines all land, with
// distinct ids, and sends (no wait) land as well.
func TestConcurrentEnqueues(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	q := queueOf(t, s, "orders")
	const workers, each = 8, 100
	ids := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id, err := q.Enqueue(&message.Message{Payload: []byte(fmt.Sprint(w, i))}, w%2 == 0)
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %d given twice", id)
		}
		seen[id] = true
	}
	waitFor(t, "every enqueue committed", func() bool { return q.Stats().Depth == workers*each })
}

// TestEndpoint: the router endpoint takes enqueues for served queues only,
// answering a request with the id.
func TestEndpoint(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	q := queueOf(t, s, "orders")
	e := NewEndpoint(s)
	e.SetServed([]*Queue{q})
	if got := e.Subjects(); !slices.Equal(got, []string{"$queue.orders"}) {
		t.Fatalf("subjects %v", got)
	}
	reply, err := e.Request(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "$queue.orders.new", Payload: []byte("a")})
	if err != nil || string(reply) != "1" {
		t.Fatalf("request: %q, %v", reply, err)
	}
	if err := e.Post(&message.Message{Kind: abi.KindSend, Subject: "$queue.orders.new", Payload: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	_, err = e.Request(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "$queue.other.new"})
	var me *message.Error
	if !errors.As(err, &me) || me.Status != abi.StatusNoHandler {
		t.Fatalf("unserved queue: %v, want no_handler", err)
	}
	waitFor(t, "both stored", func() bool { return q.Stats().Depth == 2 })
	rec := &recorder{}
	q.SetConsumer(rec, 1)
	waitFor(t, "both delivered", func() bool { return q.Stats().Acked == 2 })
	if got := rec.deliveries(); got[0].Subject != "$queue.orders.new" || string(got[1].Payload) != "b" {
		t.Fatalf("delivered %q %q, %q %q", got[0].Subject, got[0].Payload, got[1].Subject, got[1].Payload)
	}
}

// TestLockedFile: a second store on the same file is refused with a
// message naming the cause, not left waiting.
func TestLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	open(t, path, Options{})
	_, err := Open(path, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open: %v", err)
	}
}

// TestRedriveAndPurge: dead letters go back into the queue with their
// attempts reset (and are delivered, now that the consumer takes them),
// or are deleted; the counts follow, and both survive a reopen.
func TestRedriveAndPurge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	s := open(t, path, Options{MaxAttempts: 2, Backoff: time.Millisecond})
	q := queueOf(t, s, "jobs")
	var refuse sync.Mutex // held: every delivery fails
	refuse.Lock()
	rec := &recorder{answer: func(m *message.Message) error {
		if refuse.TryLock() {
			refuse.Unlock()
			return nil
		}
		return errors.New("not today")
	}}
	q.SetConsumer(rec, 1)
	for i := range 3 {
		enqueue(t, q, fmt.Sprint(i), nil)
	}
	waitFor(t, "three dead letters", func() bool { return q.Stats().Dead == 3 })
	if n, err := s.Redrive("nope"); n != 0 || err == nil {
		t.Fatalf("redrive of an unknown queue: %d, %v", n, err)
	}
	refuse.Unlock()
	n, err := s.Redrive("jobs")
	if err != nil || n != 3 {
		t.Fatalf("redrive: %d, %v", n, err)
	}
	waitFor(t, "the redriven messages acknowledged", func() bool { return q.Stats().Acked == 3 })
	for _, m := range rec.deliveries()[6:] {
		if m.Headers[abi.HeaderAttempt] != "1" {
			t.Fatalf("a redriven message was delivered as attempt %s, want 1", m.Headers[abi.HeaderAttempt])
		}
	}
	if st := q.Stats(); st.Dead != 0 || st.Depth != 0 {
		t.Fatalf("after the redrive: %+v", st)
	}
	if dead, _ := s.DeadLetters("jobs", 10); len(dead) != 0 {
		t.Fatalf("dead letters left: %+v", dead)
	}

	refuse.Lock()
	enqueue(t, q, "again", nil)
	waitFor(t, "one more dead letter", func() bool { return q.Stats().Dead == 1 })
	if n, err := s.PurgeDead("jobs"); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if st := q.Stats(); st.Dead != 0 {
		t.Fatalf("after the purge: %+v", st)
	}
	s.Close()
	s2 := open(t, path, Options{})
	if st := queueOf(t, s2, "jobs").Stats(); st.Dead != 0 || st.Depth != 0 {
		t.Fatalf("after reopening: %+v", st)
	}
}

// TestConsumerDownPausesTheQueue: while the consumer does not run
// deliveries (a plugin that failed to load answers busy), the queue tries
// one at a time per pause instead of every waiting message, and counts no
// attempt; once it serves again, everything is delivered.
func TestConsumerDownPausesTheQueue(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "q.db"), Options{})
	q := queueOf(t, s, "jobs")
	for i := range 50 {
		enqueue(t, q, fmt.Sprint(i), nil)
	}
	var mu sync.Mutex
	down, refused := true, 0
	start := time.Now()
	q.SetConsumer(consumerFunc(func(m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			refused++
			return message.Errorf(abi.StatusBusy, "plugin is not serving")
		}
		return nil
	}), 4)
	time.Sleep(350 * time.Millisecond) // about three pauses
	mu.Lock()
	n := refused
	down = false
	elapsed := time.Since(start)
	mu.Unlock()
	// Each pause lets through at most the consumer's limit (4), however
	// long the machine made the sleep; without pauses every one of the 50
	// messages would be tried each time.
	if allowed := 4 * (int(elapsed/notRunPause) + 2); n > allowed {
		t.Fatalf("%d deliveries tried against a consumer that was down for %v: at most %d expected", n, elapsed, allowed)
	}
	waitFor(t, "every message delivered once the consumer serves", func() bool { return q.Stats().Acked == 50 })
	if st := q.Stats(); st.Retried != 0 || st.Dead != 0 {
		t.Fatalf("attempts were counted against the messages: %+v", st)
	}
}
