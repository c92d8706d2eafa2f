package hosttest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatal records the message instead of
// ending the test, so that CheckFor's failure can be checked.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
}

func TestCheckForPassesOnceTrue(t *testing.T) {
	n := 0
	CheckForEvery(t, 5*time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return fmt.Errorf("try %d", n)
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("f called %d times, want 3", n)
	}
}

// The failure names f's last error (which host held what), and the loop is
// bounded: f runs about d/interval times, not more.
func TestCheckForReportsLastError(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	n := 0
	start := time.Now()
	CheckForEvery(rec, 200*time.Millisecond, 10*time.Millisecond, func() error {
		n++
		return fmt.Errorf(`host "b": no route to service "echo" (try %d)`, n)
	})
	el := time.Since(start)
	if !strings.Contains(rec.msg, fmt.Sprintf(`host "b": no route to service "echo" (try %d)`, n)) || !strings.Contains(rec.msg, "still failing after") {
		t.Fatalf("failure message %q does not end with the last error (try %d)", rec.msg, n)
	}
	if n < 2 || n > 200/10+2 {
		t.Fatalf("f called %d times in 200ms at 10ms intervals", n)
	}
	if el < 200*time.Millisecond {
		t.Fatalf("gave up after %v, before the 200ms it was given", el)
	}
}

func TestPollWraps(t *testing.T) {
	sentinel := errors.New("not yet")
	err := Poll(30*time.Millisecond, 5*time.Millisecond, func() error { return sentinel })
	if !errors.Is(err, sentinel) {
		t.Fatalf("Poll = %v, want it to wrap the last error", err)
	}
	if err := Poll(0, time.Millisecond, func() error { return nil }); err != nil {
		t.Fatalf("Poll of a true condition with no time = %v", err)
	}
	if err := Poll(time.Second, 0, func() error { return nil }); err == nil {
		t.Fatal("Poll with no interval did not refuse")
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	log := b.Logger()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				log.Info("line", "writer", i, "n", j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "msg=line"); got != 800 {
		t.Fatalf("%d lines, want 800", got)
	}
	if !b.Contains("writer=7 n=99") {
		t.Fatal("the last line of writer 7 is missing")
	}
	b.Reset()
	if b.String() != "" {
		t.Fatalf("after Reset: %q", b.String())
	}
	log.Info("after")
	if !b.Contains("msg=after") || b.Contains("msg=line") {
		t.Fatalf("after Reset and one line: %q", b.String())
	}
}
