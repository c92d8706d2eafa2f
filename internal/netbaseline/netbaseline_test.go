package netbaseline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

var echoTransports = []struct {
	name string
	open func() (*Echo, error)
}{
	{"tcp", NewTCPEcho},
	{"tls", NewTLSEcho},
	{"quic", NewQUICEcho},
}

// checkGoroutines fails t unless the goroutine count comes back down to
// before within a few seconds.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	err := hosttest.Poll(5*time.Second, 10*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("goroutines: %d before, %d after Close", before, n)
		}
		return nil
	})
	if err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("%v\n%s", err, buf[:runtime.Stack(buf, true)])
	}
}

// within runs f and fails t if it does not return within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		t.Fatalf("%s did not finish within %v\n%s", what, d, buf[:runtime.Stack(buf, true)])
	}
}

// testPayload is distinct for every (caller, call) and of varying length,
// including empty and 64 KiB.
func testPayload(g, i int) []byte {
	var n int
	switch i % 10 {
	case 0:
		n = 0
	case 9:
		n = 64 << 10
	default:
		n = (g*131 + i*17) % 3000
	}
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(g*7 + i*13 + j)
	}
	if n >= 16 {
		binary.BigEndian.PutUint64(p, uint64(g))
		binary.BigEndian.PutUint64(p[8:], uint64(i))
	}
	return p
}

func TestEchoConcurrentCallers(t *testing.T) {
	const goroutines, calls = 100, 100
	for _, tr := range echoTransports {
		t.Run(tr.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			e, err := tr.open()
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, goroutines)
			within(t, 60*time.Second, "100 goroutines × 100 calls", func() {
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						for i := range calls {
							want := testPayload(g, i)
							got, err := e.Call(want)
							if err != nil {
								errs <- fmt.Errorf("caller %d call %d: %w", g, i, err)
								return
							}
							if !bytes.Equal(got, want) {
								errs <- fmt.Errorf("caller %d call %d: got %d bytes, want %d (or different content)", g, i, len(got), len(want))
								return
							}
						}
					})
				}
				wg.Wait()
			})
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := e.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if _, err := e.Call([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Call after Close: %v, want ErrClosed", err)
			}
			if err := e.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			checkGoroutines(t, before)
		})
	}
}

// TestEchoCloseUnblocksStalledCalls runs callers against a peer that never
// reads or answers, so calls wait for replies and the client writer blocks on
// a full socket; Close must release all of them.
func TestEchoCloseUnblocksStalledCalls(t *testing.T) {
	before := runtime.NumGoroutine()
	p, err := newTCPPair(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEcho(p.client, p.closers()) // no server: nobody reads p.server

	const callers = 50
	payload := make([]byte, 256<<10) // 50 × 256 KiB overflows the socket buffers
	results := make(chan error, callers)
	for range callers {
		go func() {
			_, err := e.Call(payload)
			results <- err
		}()
	}
	// Let the calls register and the writer block.
	hosttest.Poll(2*time.Second, 5*time.Millisecond, func() error {
		e.pendMu.Lock()
		defer e.pendMu.Unlock()
		if len(e.pending) != callers {
			return errors.New("not all calls registered")
		}
		return nil
	})
	select {
	case err := <-results:
		t.Fatalf("a call returned before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	within(t, 10*time.Second, "Close", func() { e.Close() })
	within(t, 10*time.Second, "stalled calls", func() {
		for range callers {
			if err := <-results; !errors.Is(err, ErrClosed) {
				t.Errorf("stalled call returned %v, want ErrClosed", err)
			}
		}
	})
	checkGoroutines(t, before)
}

// TestEchoCloseDuringTraffic closes every transport while callers are busy.
func TestEchoCloseDuringTraffic(t *testing.T) {
	for _, tr := range echoTransports {
		t.Run(tr.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			e, err := tr.open()
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Go(func() {
					for i := 0; ; i++ {
						want := testPayload(g, i)
						got, err := e.Call(want)
						if err != nil {
							if !errors.Is(err, ErrClosed) {
								t.Errorf("call during Close: %v, want ErrClosed", err)
							}
							return
						}
						if !bytes.Equal(got, want) {
							t.Errorf("caller %d call %d: wrong reply", g, i)
							return
						}
					}
				})
			}
			time.Sleep(50 * time.Millisecond)
			within(t, 10*time.Second, "Close and callers", func() {
				e.Close()
				wg.Wait()
			})
			checkGoroutines(t, before)
		})
	}
}

func TestStreamCounts(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := NewTLSStream()
	if err != nil {
		t.Fatal(err)
	}
	const senders, frames = 8, 2000
	within(t, 30*time.Second, "sending", func() {
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				for i := range frames {
					if err := s.Send(testPayload(g, i)); err != nil {
						t.Errorf("Send: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
	const want = senders * frames
	hosttest.CheckForEvery(t, 30*time.Second, time.Millisecond, func() error {
		if got := s.Received(); got < want {
			return fmt.Errorf("Received() = %d, want %d", got, want)
		}
		return nil
	})
	time.Sleep(10 * time.Millisecond)
	if got := s.Received(); got != want {
		t.Fatalf("Received() = %d, want %d", got, want)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	checkGoroutines(t, before)
}

// TestStreamBoundedAndCloseUnblocks stalls the receiver: Send must block
// once 4 MiB are queued, and Close must release it.
func TestStreamBoundedAndCloseUnblocks(t *testing.T) {
	before := runtime.NumGoroutine()
	p, err := newTCPPair(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The receiving end reads nothing: counting goes to a pipe nobody writes.
	blocked := &stalledReader{stop: make(chan struct{})}
	s := newStream(p.client, blocked, append(p.closers(), blocked.Close))

	payload := make([]byte, 64<<10)
	sent := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		n := 0
		for {
			if err := s.Send(payload); err != nil {
				sent <- n
				errc <- err
				return
			}
			n++
		}
	}()
	// Wait until the batch is full and Send has stopped making progress.
	var last int
	hosttest.Poll(5*time.Second, 20*time.Millisecond, func() error {
		s.mu.Lock()
		n := len(s.batch)
		s.mu.Unlock()
		stable := n == last && n > maxQueued-len(payload)-streamHeaderLen
		last = n
		if !stable {
			return errors.New("batch still changing")
		}
		return nil
	})
	s.mu.Lock()
	queued := len(s.batch)
	s.mu.Unlock()
	if queued > maxQueued {
		t.Errorf("%d bytes queued, limit %d", queued, maxQueued)
	}
	select {
	case err := <-errc:
		t.Fatalf("Send returned before Close: %v", err)
	default:
	}
	within(t, 10*time.Second, "Close", func() { s.Close() })
	within(t, 10*time.Second, "blocked Send", func() {
		n := <-sent
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Send returned %v after %d frames, want ErrClosed", err, n)
		}
	})
	checkGoroutines(t, before)
}

// stalledReader blocks in Read until closed.
type stalledReader struct {
	once sync.Once
	stop chan struct{}
}

func (r *stalledReader) Read([]byte) (int, error) {
	<-r.stop
	return 0, ErrClosed
}

func (r *stalledReader) Close() error {
	r.once.Do(func() { close(r.stop) })
	return nil
}

func TestPercentile(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	if got := percentile(s, 50); got != 50 {
		t.Errorf("p50 of 1..100 = %d, want 50", got)
	}
	if got := percentile(s, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %d, want 99", got)
	}
	if got := percentile(s[:1], 99); got != 1 {
		t.Errorf("p99 of one sample = %d, want 1", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %d, want 0", got)
	}
}
