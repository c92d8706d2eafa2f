package mesh

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/netbaseline"
)

// Benchmarks of host-to-host messaging: two hosts in this process on
// loopback, the hand-written WAT echo plugin (real wazero, real plugin
// runtime) on the far host, next to raw echoes over the same loopback
// measured in the same run. Each reports "x-raw": ours divided by the raw
// figure (throughput: higher is better; latency: lower is better).
//
//	go test ./host/internal/mesh -run XXX -bench . -benchtime 20000x

var benchSizes = []int{64, 1 << 10, 64 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// benchPair starts host a and host b (which serves echo with the WAT echo
// plugin, or subscribes with subscribers plugin copies) linked over tr.
func benchPair(b *testing.B, tr string, subscribers int) (a, far *host, subs []*plugin.Plugin) {
	b.Helper()
	a = newBenchHost(b, "a", nil)
	far = newBenchHost(b, "b", []Peer{a.peer(tr)})
	wasm, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "wat", "echo.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := plugin.NewEngine(plugin.EngineOptions{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	load := func(name string, services, topics []string) *plugin.Plugin {
		v, err := eng.Load(context.Background(), plugin.Spec{Name: name, Wasm: wasm, Instances: 8, Queue: 1 << 16, Timeout: time.Minute, MaxReply: 1 << 20}, far.router)
		if err != nil {
			b.Fatal(err)
		}
		p := plugin.New(name, v)
		b.Cleanup(p.Close)
		if err := far.router.SetRoutes(name, p, services, topics); err != nil {
			b.Fatal(err)
		}
		return p
	}
	if subscribers == 0 {
		load("echo", []string{"echo"}, nil)
		if err := hosttest.Poll(5*time.Second, 5*time.Millisecond, func() error { return routeErr(a, "echo.x", 0) }); err != nil {
			b.Fatal(err)
		}
		return a, far, nil
	}
	for i := range subscribers {
		subs = append(subs, load(fmt.Sprintf("sub%d", i), nil, []string{"bench.>"}))
	}
	if err := hosttest.Poll(5*time.Second, 5*time.Millisecond, func() error { return listenersErr(a, 1) }); err != nil {
		b.Fatal(err)
	}
	return a, far, subs
}

// newBenchHost is newHost for benchmarks: quiet logs.
func newBenchHost(b *testing.B, name string, peers []Peer) *host {
	return newHostTB(b, name, func(o *Options) { o.Peers = peers })
}

func benchCall(a *host, payload []byte) func() error {
	want := bytes.ToUpper(payload)
	return func() error {
		out, err := a.router.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "echo.upper",
			Payload: payload, Deadline: time.Now().Add(10 * time.Second), From: "bench"})
		if err != nil {
			return err
		}
		if len(out) != len(want) {
			return fmt.Errorf("reply of %d bytes, want %d", len(out), len(want))
		}
		return nil
	}
}

func rawCall(e *netbaseline.Echo, payload []byte) func() error {
	return func() error {
		out, err := e.Call(payload)
		if err == nil && len(out) != len(payload) {
			err = fmt.Errorf("raw echo: %d bytes, want %d", len(out), len(payload))
		}
		return err
	}
}

func newRaw(b *testing.B, tr string) *netbaseline.Echo {
	var e *netbaseline.Echo
	var err error
	if tr == TCP {
		e, err = netbaseline.NewTLSEcho()
	} else {
		e, err = netbaseline.NewQUICEcho()
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// callPair starts the echo pair and the raw baseline for transport tr,
// warms both paths (instances, buffers, flow-control windows) with
// payload, and resets the timer.
func callPair(b *testing.B, tr string, payload []byte) (*host, *netbaseline.Echo) {
	a, _, _ := benchPair(b, tr, 0)
	raw := newRaw(b, tr)
	for range 200 {
		if err := benchCall(a, payload)(); err != nil {
			b.Fatal(err)
		}
		rawCall(raw, payload)()
	}
	b.ResetTimer()
	return a, raw
}

// BenchmarkRequestReply: 64 concurrent callers on host a, echo on host b.
// The baseline is the raw pipelined echo over one connection: TLS for the
// TCP transport, one long-lived quic-go stream for QUIC.
func BenchmarkRequestReply(b *testing.B) {
	for _, tr := range transports {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%s", tr, sizeName(size)), func(b *testing.B) {
				payload := bytes.Repeat([]byte("a"), size)
				a, raw := callPair(b, tr, payload)
				n := b.N
				rawRate := throughput(n, 64, rawCall(raw, payload))
				ours := throughput(n, 64, benchCall(a, payload))
				b.ReportMetric(ours, "calls/s")
				b.ReportMetric(rawRate, "raw-calls/s")
				b.ReportMetric(ours/rawRate, "x-raw")
			})
		}
	}
}

// BenchmarkLatency: sequential calls, p50 and p99, next to the raw echo.
func BenchmarkLatency(b *testing.B) {
	for _, tr := range transports {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%s", tr, sizeName(size)), func(b *testing.B) {
				payload := bytes.Repeat([]byte("a"), size)
				a, raw := callPair(b, tr, payload)
				rp50, rp99 := latency(b.N, rawCall(raw, payload))
				p50, p99 := latency(b.N, benchCall(a, payload))
				b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
				b.ReportMetric(float64(rp50.Microseconds()), "raw-p50-µs")
				b.ReportMetric(float64(p50)/float64(rp50), "p50-x-raw")
				b.ReportMetric(float64(p99)/float64(rp99), "p99-x-raw")
			})
		}
	}
}

// BenchmarkPubSub: one publisher on host a, 1 or 4 subscriber plugins on
// host b; delivered events per second next to a raw one-way TLS stream.
func BenchmarkPubSub(b *testing.B) {
	for _, tr := range transports {
		for _, subs := range []int{1, 4} {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("%s/%dsubs/%s", tr, subs, sizeName(size)), func(b *testing.B) {
					payload := bytes.Repeat([]byte("a"), size)
					a, _, plugins := benchPair(b, tr, subs)
					stream, err := netbaseline.NewTLSStream()
					if err != nil {
						b.Fatal(err)
					}
					defer stream.Close()
					b.ResetTimer()
					n := b.N
					// The raw stream is so fast that a short run measures only
					// its start; give it at least 100k messages.
					rawN := max(n, 100000)
					start := time.Now()
					for range rawN {
						if err := stream.Send(payload); err != nil {
							b.Fatal(err)
						}
					}
					if err := hosttest.Poll(30*time.Second, 200*time.Microsecond, func() error {
						if got := stream.Received(); got < uint64(rawN) {
							return fmt.Errorf("the raw stream received %d of %d messages", got, rawN)
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
					rawRate := float64(rawN) / time.Since(start).Seconds()

					handled := func() uint64 {
						var t uint64
						for _, p := range plugins {
							t += p.Stats().Calls
						}
						return t
					}
					base := handled()
					start = time.Now()
					var refused int
					for range n {
						m := &message.Message{Kind: abi.KindEvent, Subject: "bench.tick", Payload: payload, From: "bench"}
						if k, _ := a.router.Publish(context.Background(), m); k == 0 {
							refused++
							// At-most-once: a full link drops; let it drain.
							time.Sleep(50 * time.Microsecond)
						}
					}
					want := uint64(n-refused) * uint64(subs)
					// Events are at-most-once: a busy subscriber drops some, so
					// what arrived within the wait is what is measured.
					if err := hosttest.Poll(30*time.Second, 200*time.Microsecond, func() error {
						if got := handled() - base; got < want {
							return fmt.Errorf("subscribers handled %d of %d events", got, want)
						}
						return nil
					}); err != nil {
						b.Logf("measuring what arrived: %v", err)
					}
					got := handled() - base
					rate := float64(got) / time.Since(start).Seconds() / float64(subs)
					b.ReportMetric(rate, "events/s")
					b.ReportMetric(rawRate, "raw-msgs/s")
					b.ReportMetric(rate/rawRate, "x-raw")
					b.ReportMetric(float64(refused)/float64(n), "dropped-frac")
				})
			}
		}
	}
}

// throughput runs n calls over callers goroutines and returns calls/s.
func throughput(n, callers int, call func() error) float64 {
	var next atomic.Int64
	var failed atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	for range callers {
		go func() {
			defer func() { done <- struct{}{} }()
			for next.Add(1) <= int64(n) {
				if call() != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for range callers {
		<-done
	}
	if f := failed.Load(); f > 0 {
		panic(fmt.Sprintf("%d of %d calls failed", f, n))
	}
	return float64(n) / time.Since(start).Seconds()
}

// latency runs n sequential calls and returns p50 and p99.
func latency(n int, call func() error) (p50, p99 time.Duration) {
	ds := make([]time.Duration, n)
	for i := range n {
		s := time.Now()
		if err := call(); err != nil {
			panic(err)
		}
		ds[i] = time.Since(s)
	}
	slices.Sort(ds)
	return ds[n/2], ds[min(n-1, n*99/100)]
}
