package control_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Slow clients, some stuck in their headers and some in their body, are cut
// once their time to send the request has passed, and a normal call works
// while they hang on.
func TestSlowClientsAreCut(t *testing.T) {
	const (
		headerTimeout = 500 * time.Millisecond
		readTimeout   = time.Second
		slow          = 300
	)
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b, control.WithTimeouts(headerTimeout, readTimeout, 0))

	conns := make([]net.Conn, slow)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
		// Even clients stop inside their headers, odd ones after 10 of the
		// 1000 body bytes they announce.
		req := "POST /v1/publish/a.b HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		if i%2 == 1 {
			req += "Content-Length: 1000\r\n\r\n0123456789"
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
	}
	started := time.Now()

	if _, err := control.NewClient(addr).Call(context.Background(), "a.b", []byte("ping"), nil, 0); err != nil {
		t.Errorf("a call while %d slow clients hang on: %v", slow, err)
	}

	// Each slow client must see its connection end (EOF) well within 3x its
	// limit; one still open when its read deadline passes was not cut.
	limit := started.Add(3*readTimeout + time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, slow)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(limit)
			got, err := io.ReadAll(c)
			if err != nil {
				errs <- fmt.Errorf("slow client %d still open after %v: %v (read %q)", i, time.Since(started), err, got)
				return
			}
			// A client stuck in its body is told why; one stuck in its
			// headers is simply cut, as net/http does.
			if i%2 == 1 && (!bytes.HasPrefix(got, []byte("HTTP/1.1 408 ")) || !bytes.Contains(got, []byte(`"status":"timeout"`))) {
				errs <- fmt.Errorf("slow body client %d got %q, want 408 timeout", i, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("... and %d more slow clients", n-5)
	}
}

// The connection cap answers connections beyond it with 503 busy at once,
// and a call works again as soon as a slot frees.
func TestConnectionCap(t *testing.T) {
	const maxConns = 20
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b, control.WithMaxConns(maxConns))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Subscription streams are the long-lived connections a real client
	// holds; fill every slot with them.
	subs := make([]context.CancelFunc, maxConns)
	for i := range subs {
		sctx, scancel := context.WithCancel(ctx)
		subs[i] = scancel
		subscribe(t, sctx, b, control.NewClient(addr), fmt.Sprintf("s.%d", i), 0)
	}

	c := control.NewClient(addr)
	start := time.Now()
	_, err := c.Call(ctx, "a.b", []byte("ping"), nil, 0)
	wantStatus(t, err, abi.StatusBusy)
	if !strings.Contains(err.Error(), fmt.Sprint(maxConns)) {
		t.Errorf("busy answer %q does not name the limit", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("refusal took %v: the client should learn at once", d)
	}
	// The raw answer has the documented shape.
	r := rawDo(t, "GET", "http://"+addr+"/v1/health", nil, nil)
	if e := errorBody(t, r); r.code != 503 || e.Status != "busy" || e.Code != int(abi.StatusBusy) || r.header.Get("Retry-After") != "1" {
		t.Errorf("over the cap: %d %+v Retry-After %q", r.code, e, r.header.Get("Retry-After"))
	}

	subs[0]()
	if p := <-b.Unsubscribed(); p != "s.0" {
		t.Errorf("unsubscribed %q", p)
	}
	hosttest.CheckForEvery(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, err := c.Call(ctx, "a.b", []byte("ping"), nil, 0)
		return err
	})
	// The streams that stayed still deliver.
	if _, err := c.Publish(ctx, "s.1", []byte("x"), nil); err != nil {
		t.Errorf("publish to a stream that kept its slot: %v", err)
	}
}

// heapObjects is the bytes of heap objects, live or not yet swept.
func heapObjects() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// vmRSS is the process's resident set in bytes, from /proc (0 elsewhere).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// pattern is an endless reader of non-zero bytes, so that large request
// bodies cost the test's client no memory.
type pattern struct{}

var patternBlock = bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), 4096)

func (pattern) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], patternBlock)
	}
	return n, nil
}

// Eight parallel 60 MiB bodies against the default budget: the node holds
// at most the budget in bodies and answers the rest 503 busy, and a small
// call works while the large ones are held. The heap grows by less than
// three budgets: the bodies held are within the budget (the documented
// bound), and the garbage collector lets the heap grow to about twice what
// is live (the smaller buffers a body of unknown length outgrew, the bodies
// already answered); the third budget is margin. Without the budget, all
// eight bodies (480 MiB) are held at once.
func TestBodyBudget(t *testing.T) {
	for _, sized := range []bool{true, false} {
		name := map[bool]string{true: "content-length", false: "chunked"}[sized]
		t.Run(name, func(t *testing.T) { testBodyBudget(t, sized) })
	}
}

func testBodyBudget(t *testing.T, sized bool) {
	const (
		parallel = 8
		size     = 60 << 20
		bound    = 3 * control.DefaultBodyBudget
	)
	b := controltest.NewBackend()
	hold := make(chan struct{})
	var entered, heldBytes, maxHeld atomic.Int64
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		if len(m.Payload) < size {
			return m.Payload, nil
		}
		entered.Add(1)
		h := heldBytes.Add(int64(len(m.Payload)))
		for {
			old := maxHeld.Load()
			if h <= old || maxHeld.CompareAndSwap(old, h) {
				break
			}
		}
		defer heldBytes.Add(-int64(len(m.Payload)))
		select {
		case <-hold:
			return []byte("ok"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	_, addr := controltest.Start(t, b)

	runtime.GC()
	base, baseRSS := heapObjects(), vmRSS()
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapObjects(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	var busy, ok atomic.Int64
	results := make(chan error, parallel)
	for i := range parallel {
		go func() {
			var body io.Reader = io.LimitReader(pattern{}, size)
			if !sized {
				body = struct{ io.Reader }{body} // hides the length: chunked
			}
			req, err := http.NewRequest("POST", "http://"+addr+"/v1/call/big.put?timeout=2m", body)
			if err != nil {
				results <- err
				return
			}
			if sized {
				req.ContentLength = size
			}
			resp, err := hc.Do(req)
			if err != nil {
				results <- fmt.Errorf("large body %d: %w", i, err)
				return
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			switch {
			case resp.StatusCode == 503 && bytes.Contains(got, []byte(`"status":"busy"`)):
				busy.Add(1)
			case resp.StatusCode == 200:
				ok.Add(1)
			default:
				results <- fmt.Errorf("large body %d: %d %q", i, resp.StatusCode, got)
				return
			}
			results <- nil
		}()
	}

	// Wait until every body was either taken (and is held by the backend)
	// or refused.
	hosttest.CheckForEvery(t, 2*time.Minute, 10*time.Millisecond, func() error {
		if n := entered.Load() + busy.Load(); n < parallel {
			return fmt.Errorf("%d of %d large bodies taken (%d) or refused (%d)", n, parallel, entered.Load(), busy.Load())
		}
		return nil
	})
	heldHeap, heldRSS := heapObjects(), vmRSS()
	if _, err := control.NewClient(addr).Call(context.Background(), "small.call", []byte("ping"), nil, 0); err != nil {
		t.Errorf("a small call while large bodies are held: %v", err)
	}
	close(hold)
	for range parallel {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	close(stopSampling)
	<-sampled
	growth := max(peak.Load(), heldHeap) - base
	t.Logf("%d x %d MiB bodies: %d taken, %d busy; most held at once %d MiB; heap +%d MiB (peak), RSS %d -> %d MiB while held",
		parallel, size>>20, ok.Load(), busy.Load(), maxHeld.Load()>>20, growth>>20, baseRSS>>20, heldRSS>>20)
	if busy.Load() == 0 {
		t.Errorf("no large body was refused busy")
	}
	if ok.Load() == 0 {
		t.Errorf("no large body was taken")
	}
	if maxHeld.Load() > control.DefaultBodyBudget {
		t.Errorf("bodies held at once: %d bytes, over the budget of %d", maxHeld.Load(), control.DefaultBodyBudget)
	}
	if growth > bound {
		t.Errorf("heap grew by %d MiB, over the bound of %d MiB", growth>>20, bound>>20)
	}
}

// A subscription stream outlives the time a client has to send its request,
// and so does a call waiting for a slow reply.
func TestStreamsAndCallsOutliveReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	b := controltest.NewBackend()
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		select {
		case <-time.After(3 * readTimeout):
			return m.Payload, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	_, addr := controltest.Start(t, b, control.WithTimeouts(readTimeout/2, readTimeout, readTimeout))
	c := control.NewClient(addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, _, done := subscribe(t, ctx, b, c, "news", 0)

	// The call takes three read timeouts, so the stream has outlived its
	// own read timeout by the time it returns.
	if got, err := c.Call(ctx, "slow.call", []byte("late"), nil, 10*time.Second); err != nil || string(got) != "late" {
		t.Fatalf("a call slower than the read timeout: %q, %v", got, err)
	}
	if _, err := c.Publish(ctx, "news", []byte("still here"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if string(m.Payload) != "still here" {
			t.Errorf("stream delivered %q", m.Payload)
		}
	case err := <-done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("stream delivered nothing in 10s")
	}
}

// A client that does not read a large reply is cut after the write timeout
// instead of pinning the handler, its reply and its connection.
func TestUnreadReplyIsCut(t *testing.T) {
	const (
		writeTimeout = 300 * time.Millisecond
		replySize    = 32 << 20 // far more than loopback socket buffers hold
	)
	b := controltest.NewBackend()
	reply := bytes.Repeat([]byte("r"), replySize)
	b.CallFunc = func(context.Context, *message.Message) ([]byte, error) { return reply, nil }
	_, addr := controltest.Start(t, b, control.WithTimeouts(0, 0, writeTimeout))

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /v1/call/a.b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Not reading is the point: let the write timeout pass three times.
	time.Sleep(3 * writeTimeout)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.Copy(io.Discard, c)
	if got >= replySize {
		t.Errorf("read %d bytes: the server kept writing to a client that did not read", got)
	}
}
