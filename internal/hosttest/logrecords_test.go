package hosttest

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A JSON log written in pieces, with a non-JSON line among the records:
// records are found by message and time, raw lines by content, and a
// waiter is woken by the next complete line only.
func TestLogRecords(t *testing.T) {
	var l LogRecords
	log := slog.New(slog.NewJSONHandler(&l, nil))
	log.Info("mesh listening", "tcp", "tcp://127.0.0.1:1")
	fmt.Fprint(&l, "panic: not json\n{\"msg\":\"split")
	if _, ok := l.Find("split"); ok {
		t.Fatal("a record was decoded before its line ended")
	}
	changed := l.Changed()
	select {
	case <-changed:
		t.Fatal("Changed closed without a new line")
	default:
	}
	mid := time.Now()
	fmt.Fprint(&l, "\",\"n\":2}\n")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed by a new line")
	}
	r, ok := l.Find("mesh listening")
	if !ok || r.Fields["tcp"] != "tcp://127.0.0.1:1" || r.At.After(mid) {
		t.Fatalf("Find(mesh listening) = %+v, %v", r, ok)
	}
	if r, ok := l.Find("split"); !ok || r.Fields["n"] != 2.0 {
		t.Fatalf("Find(split) = %+v, %v", r, ok)
	}
	if all := l.All(); len(all) != 2 || all[0].Msg() != "mesh listening" || all[1].Msg() != "split" {
		t.Errorf("All() = %+v, want the two JSON records", all)
	}
	if at := l.FirstAt(mid, "mesh listening"); !at.IsZero() {
		t.Errorf("FirstAt found a record written before since: %v", at)
	}
	if at := l.FirstAt(mid, "nothing", "split"); at.Before(mid) {
		t.Errorf("FirstAt(split) = %v, want at or after %v", at, mid)
	}
	if i := l.Index("not json"); i != 1 {
		t.Errorf("Index(not json) = %d, want 1", i)
	}
	if got := l.Lines(1, 5); !strings.HasPrefix(got, "panic: not json\n{\"msg\":\"split\"") {
		t.Errorf("Lines(1, 5) = %q", got)
	}
	if got := l.Tail(1); got != `{"msg":"split","n":2}` {
		t.Errorf("Tail(1) = %q", got)
	}
}
