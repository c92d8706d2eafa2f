package router

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestDedupDropsReplayedIdentity: with the duplicate filter on, an event
// from another host whose identity (origin, sequence number) was published
// already is dropped with ErrDuplicate and counted; a new number of the
// same origin, the same number of another origin, and an event without
// identity (an older host: sequence 0) are delivered, the last however
// often it comes. Local events are numbered here and never filtered.
func TestDedupDropsReplayedIdentity(t *testing.T) {
	r := New(Options{})
	r.EnableDedup()
	sub, err := r.Subscribe("t.>", 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	publish := func(from string, seq uint64) error {
		_, err := r.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "t.x",
			Payload: fmt.Appendf(nil, "%s/%d", from, seq), FromNode: from, Seq: seq})
		return err
	}
	steps := []struct {
		from string
		seq  uint64
		dup  bool
	}{
		{"n1", 5, false},
		{"n1", 5, true}, // the same event by a second path
		{"n1", 6, false},
		{"n1", 4, false}, // late, not seen: delivered
		{"n1", 4, true},
		{"n2", 5, false}, // another origin's 5
		{"n1", 0, false}, // no identity: never dropped
		{"n1", 0, false},
		{"n2", 5, true},
	}
	delivered := 0
	for i, s := range steps {
		err := publish(s.from, s.seq)
		if s.dup != errors.Is(err, ErrDuplicate) || (!s.dup && err != nil) {
			t.Fatalf("step %d (%s, %d): %v; want duplicate %v", i, s.from, s.seq, err, s.dup)
		}
		if !s.dup {
			delivered++
		}
	}
	if n := len(sub.C()); n != delivered {
		t.Errorf("subscriber has %d events, want %d", n, delivered)
	}
	if st := r.Stats(); st.Duplicates != 3 {
		t.Errorf("stats %+v: want 3 duplicates", st)
	}

	// Two local events: each gets its own number, neither is filtered.
	for range 2 {
		m := &message.Message{Kind: abi.KindEvent, Subject: "t.local"}
		if _, err := r.Publish(context.Background(), m); err != nil || m.Seq == 0 {
			t.Fatalf("local event: %v, seq %d", err, m.Seq)
		}
	}
	if n := len(sub.C()); n != delivered+2 {
		t.Errorf("subscriber has %d events, want %d", n, delivered+2)
	}
}

// TestDedupOffByDefault: without EnableDedup (a host with no transport,
// where every event has one path) nothing is filtered.
func TestDedupOffByDefault(t *testing.T) {
	r := New(Options{})
	for range 2 {
		if _, err := r.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "t.x", FromNode: "n1", Seq: 7}); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Duplicates != 0 || st.Published != 2 {
		t.Errorf("stats %+v: want 2 published, no duplicates", st)
	}
}

// TestDedupWindow: the window remembers DedupWindow numbers below an
// origin's highest across word boundaries; a number below that is
// delivered (too old to tell), one far below means the origin restarted
// and starts the window over; past DedupOrigins origins the least recently
// seen is forgotten.
func TestDedupWindow(t *testing.T) {
	d := NewDedup()
	const base = 1 << 40
	accept := func(seq uint64, want bool) {
		t.Helper()
		if got := d.Accept("o", seq); got != want {
			t.Fatalf("Accept(o, base%+d) = %v, want %v", int64(seq-base), got, want)
		}
	}
	for _, k := range []uint64{0, 1, 63, 64, 65, 130, 1000} {
		accept(base+k, true)
	}
	for _, k := range []uint64{0, 1, 63, 64, 65, 130, 1000} {
		accept(base+k, false)
	}
	accept(base+2, true)
	accept(base+DedupWindow, true)      // top moves; base+1 is the oldest inside
	accept(base+1, false)               // remembered at the window's edge
	accept(base+1000, false)            // remembered after the shift
	accept(base+DedupWindow+1, true)    // base+1 falls out of the window
	accept(base+1, true)                // too old to tell: delivered
	accept(base+1, true)                // and not remembered
	accept(base+3*DedupWindow+5, true)  // a jump beyond the window clears it
	accept(base+DedupWindow+1, true)    // out of the window now
	accept(base+3*DedupWindow+5, false) // the top itself is remembered
	accept(100, true)                   // a restart from a new random start
	accept(100, false)
	accept(base+3*DedupWindow+4, true) // the old run, far above: the window moves there

	for i := range DedupOrigins {
		d.Accept(fmt.Sprint("origin-", i), 1)
	}
	if n := d.Origins(); n != DedupOrigins {
		t.Fatalf("%d origins, want the bound %d", n, DedupOrigins)
	}
	// "o" was the least recently seen: forgotten, its events new again.
	if !d.Accept("o", 100) {
		t.Error("the least recently seen origin was not forgotten")
	}
	if d.Accept(fmt.Sprint("origin-", DedupOrigins-1), 1) {
		t.Error("a recently seen origin was forgotten")
	}
}

// BenchmarkDedupAccept is the filter's cost per event received from
// another host, on a host with a transport: 16 origins, in-order numbers.
func BenchmarkDedupAccept(b *testing.B) {
	d := NewDedup()
	origins := make([]string, 16)
	for i := range origins {
		origins[i] = fmt.Sprint("origin-", i)
	}
	b.ReportAllocs()
	seq := uint64(1)
	for b.Loop() {
		d.Accept(origins[seq%16], seq)
		seq++
	}
}
