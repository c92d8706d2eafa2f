package plugin

import (
	"fmt"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/message"
)

// TestPostQueue: messages come out in the order they went in, across the
// ring's wrap, at most limit per take; a full queue refuses; a deliverer
// waiting in take is woken by a put and by close; after close the rest is
// still taken, then take reports the end.
func TestPostQueue(t *testing.T) {
	q := newPostQueue(4)
	msg := func(i int) *message.Message { return &message.Message{Subject: fmt.Sprint(i)} }
	next := 0
	expect := func(got []*message.Message) {
		t.Helper()
		for _, m := range got {
			if m.Subject != fmt.Sprint(next) {
				t.Fatalf("took %s, want %d", m.Subject, next)
			}
			next++
		}
	}
	in := 0
	for round := range 5 {
		for range 3 {
			if !q.put(msg(in)) {
				t.Fatalf("round %d: put %d refused", round, in)
			}
			in++
		}
		got, ok := q.take(nil, 2)
		if !ok || len(got) != 2 {
			t.Fatalf("round %d: took %d (ok %v), want 2", round, len(got), ok)
		}
		expect(got)
		got, _ = q.take(nil, 10)
		if len(got) != 1 {
			t.Fatalf("round %d: took %d, want the 1 left", round, len(got))
		}
		expect(got)
	}
	for range 4 {
		q.put(msg(in))
		in++
	}
	if q.put(msg(in)) {
		t.Fatal("a full queue took a fifth message")
	}
	got, _ := q.take(nil, 10)
	expect(got)

	woken := make(chan []*message.Message)
	go func() { got, _ := q.take(nil, 10); woken <- got }()
	time.Sleep(10 * time.Millisecond) // let it wait; the put below wakes it either way
	q.put(msg(in))
	in++
	select {
	case got := <-woken:
		expect(got)
	case <-time.After(10 * time.Second):
		t.Fatal("a put did not wake a waiting take")
	}

	done := make(chan bool)
	go func() { _, ok := q.take(nil, 10); done <- ok }()
	q.put(msg(in))
	q.close()
	if q.put(msg(in + 1)) {
		t.Fatal("a closed queue took a message")
	}
	for range 2 {
		select {
		case ok := <-done:
			if ok {
				// It took the last message before the close.
				go func() { _, ok := q.take(nil, 10); done <- ok }()
				continue
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("close did not wake a waiting take")
		}
	}
	t.Fatal("take never reported the end after close")
}
