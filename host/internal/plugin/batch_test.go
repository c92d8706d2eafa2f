package plugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/plugins"
)

// gate is a plain-Go service whose requests wait until the test opens it,
// so that a plugin calling it holds its instance while messages queue.
type gate struct {
	entered chan struct{}
	open    chan struct{}
}

func (g gate) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	g.entered <- struct{}{}
	select {
	case <-g.open:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (gate) Post(*message.Message) error { return nil }

func event(payload []byte, headers map[string]string) *message.Message {
	return &message.Message{Kind: abi.KindEvent, Subject: "b.x", Payload: payload, Headers: headers}
}

// TestBatchDelivery holds batch.wat's one instance in a call while 600
// events, two of them failing and one too large for any batch, queue
// behind it; then lets it go. Every event arrives once, in order, the
// queue drains in batches no larger than the limit (the first full ones
// are exactly abi.BatchMaxCount), the large one arrives through
// pycomms_handle, and the failures are counted and logged with the
// plugin's error text.
func TestBatchDelivery(t *testing.T) {
	logs := &hosttest.SyncBuffer{}
	e, err := NewEngine(EngineOptions{WatchdogTick: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	r := router.New(router.Options{Logger: slog.New(slog.DiscardHandler)})
	g := gate{entered: make(chan struct{}, 1), open: make(chan struct{})}
	if err := r.SetRoutes("gate", g, []string{"gate"}, nil); err != nil {
		t.Fatal(err)
	}
	seen, err := r.Subscribe("seen", 4096)
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := r.Subscribe("batches", 4096)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Load(context.Background(), Spec{Name: "batch", Wasm: fixture(t, "batch.wasm"), Instances: 1, Queue: 4096,
		Memory: 4 << 20, Grants: []abi.Capability{abi.CapPublish, abi.CapCall}}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)

	if err := v.Post(event([]byte("wait"), nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin did not call gate.wait within 10s")
	}
	var want [][]byte
	big := bytes.Repeat([]byte("B"), abi.BatchMaxBytes)
	for i := range 600 {
		var p []byte
		var h map[string]string
		switch i {
		case 100, 400:
			p = fmt.Appendf(nil, "fail %d", i)
		case 300:
			p = big
		default:
			p = fmt.Appendf(nil, "e%04d", i)
			if i%50 == 0 {
				h = map[string]string{"k": strings.Repeat("v", i)}
			}
		}
		if err := v.Post(event(p, h)); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if i != 100 && i != 400 {
			want = append(want, p)
		}
	}
	close(g.open)

	for i, w := range want {
		select {
		case m := <-seen.C():
			if !bytes.Equal(m.Payload, w) {
				t.Fatalf("event %d on seen: %.20q (%d bytes), want %.20q (%d bytes)", i, m.Payload, len(m.Payload), w, len(w))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events arrived on seen within 10s", i, len(want))
		}
	}
	// Every record but the large one came in a batch: the "wait" alone
	// (nothing was queued yet), then 599 records in batches of at most
	// BatchMaxCount, the first one full.
	var counts []int
	total := 0
	for total < 600 {
		select {
		case m := <-sizes.C():
			n := int(binary.LittleEndian.Uint32(m.Payload))
			counts = append(counts, n)
			total += n
		case <-time.After(10 * time.Second):
			t.Fatalf("batch sizes %v add up to %d of 600 records", counts, total)
		}
	}
	if total != 600 || counts[0] != 1 || counts[1] != abi.BatchMaxCount {
		t.Fatalf("batch sizes %v: want 1 (the wait), then %d, adding up to 600 (599 queued, the large one apart)", counts, abi.BatchMaxCount)
	}
	for _, n := range counts {
		if n > abi.BatchMaxCount {
			t.Fatalf("a batch of %d records: the limit is %d", n, abi.BatchMaxCount)
		}
	}
	hosttest.CheckFor(t, 10*time.Second, func() error {
		if c := v.counts(); c.calls != 601 || c.errors != 2 {
			return fmt.Errorf("calls %d, errors %d; want 601 and 2", c.calls, c.errors)
		}
		return nil
	})
	if !strings.Contains(logs.String(), "a record asked to fail") {
		t.Fatalf("log does not carry the plugin's error text:\n%s", logs)
	}
	if v.Restarts() != 0 {
		t.Fatalf("%d restarts, want 0", v.Restarts())
	}
}

// TestBatchBadCount: a plugin whose pycomms_handle_batch returns more
// failures than records broke the ABI: the batch counts as failed, the
// log says why, the instance is replaced, and later messages are served.
func TestBatchBadCount(t *testing.T) {
	logs := &hosttest.SyncBuffer{}
	e, err := NewEngine(EngineOptions{WatchdogTick: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	v, err := e.Load(context.Background(), Spec{Name: "badbatch", Wasm: fixture(t, "badbatch.wasm"), Instances: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if err := v.Post(event([]byte("x"), nil)); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, 10*time.Second, func() error {
		if c := v.counts(); c.calls != 1 || c.errors != 1 || c.restarts != 1 {
			return fmt.Errorf("calls %d, errors %d, restarts %d; want 1 each", c.calls, c.errors, c.restarts)
		}
		return nil
	})
	if want := "ABI violation: pycomms_handle_batch returned 2 for a batch of 1 messages"; !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs)
	}
	if _, err := request(v, "badbatch.x", "still serving", 5*time.Second); err != nil {
		t.Fatalf("request after the replaced instance: %v", err)
	}
}

// TestBatchExportSignature: a wrong signature of the optional export is
// refused at load, naming it.
func TestBatchExportSignature(t *testing.T) {
	e := newEngine(t)
	_, err := e.Load(context.Background(), Spec{Name: "sig", Wasm: fixture(t, "badbatchsig.wasm"), Instances: 1}, nil)
	want := `optional export "pycomms_handle_batch" has signature (i32,i32)->(i32), want (i32,i32,i32)->(i32)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("load error %v, want it to contain %q", err, want)
	}
}

// sdkBatch holds the only instance of v out of the pool while it posts
// events for topic "greetings.N" (N = 0..count-1, payload "gN", a header on
// every tenth), so that all but the first queue behind it, then gives the
// instance back: the SDK's pycomms_handle_batch must take them in order.
// It returns how many batches v delivered.
func sdkBatch(t *testing.T, v *Version, count int) uint64 {
	t.Helper()
	w := v.take(nanotime() + int64(time.Minute))
	if w == nil {
		t.Fatal("no idle instance to hold")
	}
	for i := range count {
		var h map[string]string
		if i%10 == 0 {
			h = map[string]string{"n": fmt.Sprint(i)}
		}
		m := &message.Message{Kind: abi.KindEvent, Subject: fmt.Sprintf("greetings.%d", i), Payload: fmt.Appendf(nil, "g%d", i), Headers: h}
		if err := v.Post(m); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	v.put(w)
	hosttest.CheckFor(t, 20*time.Second, func() error {
		if c := v.counts(); c.calls != uint64(count) {
			return fmt.Errorf("%d of %d events handled", c.calls, count)
		}
		return nil
	})
	if c := v.counts(); c.errors != 0 || c.restarts != 0 {
		t.Fatalf("errors %d, restarts %d; want none", c.errors, c.restarts)
	}
	return v.batches.Load()
}

// TestGoSDKBatch: the Go SDK's batch export hands every queued event to
// the plugin's subscriber in order (the bundled echo republishes each
// greeting, upper-cased, on echo.events).
func TestGoSDKBatch(t *testing.T) {
	wasm, ok := plugins.Builtin("echo")
	if !ok {
		t.Fatal("no builtin Go echo")
	}
	r := router.New(router.Options{Logger: slog.New(slog.DiscardHandler)})
	out, err := r.Subscribe("echo.events", 1024)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t)
	v, err := e.Load(context.Background(), Spec{Name: "echo", Wasm: wasm, Instances: 1, Queue: 1024, Timeout: time.Minute,
		Grants: []abi.Capability{abi.CapPublish, abi.CapLog}}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	const count = 500
	if b := sdkBatch(t, v, count); b < 2 || b > count/2 {
		t.Fatalf("%d batches for %d events held back: want them to come in a few", b, count)
	}
	for i := range count {
		select {
		case m := <-out.C():
			if want := fmt.Sprintf("G%d", i); string(m.Payload) != want {
				t.Fatalf("event %d on echo.events: %q, want %q", i, m.Payload, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events republished", i, count)
		}
	}
}

// TestCSDKBatch: the C SDK's batch export gives each queued event to the
// plugin's subscriber in order, NUL-terminated as from pycomms_handle
// (hello-c logs each greeting with %s on its subject).
func TestCSDKBatch(t *testing.T) {
	wasm, err := os.ReadFile(filepath.Join("..", "..", "..", "plugins", "hello-c", "hello.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &hosttest.SyncBuffer{}
	e, err := NewEngine(EngineOptions{WatchdogTick: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	v, err := e.Load(context.Background(), Spec{Name: "hello", Wasm: wasm, Instances: 1, Queue: 1024, Timeout: time.Minute,
		Grants: []abi.Capability{abi.CapLog}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	const count = 300
	if b := sdkBatch(t, v, count); b < 2 || b > count/2 {
		t.Fatalf("%d batches for %d events held back: want them to come in a few", b, count)
	}
	// Calls are counted as a batch starts: its last greeting is logged
	// once the batch has run.
	last := fmt.Sprintf("msg=\"greeting on greetings.%d: g%d\"", count-1, count-1)
	hosttest.CheckFor(t, 20*time.Second, func() error {
		if !strings.Contains(logs.String(), last) {
			return fmt.Errorf("the log lacks %s", last)
		}
		return nil
	})
	text := logs.String()
	at := 0
	for i := range count {
		want := fmt.Sprintf("msg=\"greeting on greetings.%d: g%d\"", i, i)
		j := strings.Index(text[at:], want)
		if j < 0 {
			t.Fatalf("log lacks %q after event %d:\n%s", want, i-1, text)
		}
		at += j + len(want)
	}
}
