package netbaseline

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Benchmark shape: BenchmarkEcho/<transport>/<size>/<callers>callers reports
// calls/s; BenchmarkEchoLatency/<transport>/<size> reports p50-µs and p99-µs.
// For tls and quic the ratio to raw TCP measured in this same process is
// reported too ("tls/tcp", "quic/tcp", and "p50-tls/tcp" ...): a ratio below
// 1 means fewer calls/s than TCP, a latency ratio above 1 means slower.

var benchSizes = []struct {
	name string
	n    int
}{
	{"64B", 64},
	{"1KiB", 1 << 10},
	{"64KiB", 64 << 10},
}

// benchCallers are the pipelining depths of the throughput benchmarks.
var benchCallers = []int{64}

// TCP figures of this process, keyed by the sub-benchmark path below the
// transport. Sub-benchmarks run in order, so tcp fills them before tls and
// quic read them; if tcp was filtered out, the baseline is measured on the
// spot (outside the timer).
var (
	tcpRate = map[string]float64{}
	tcpP50  = map[string]time.Duration{}
	tcpP99  = map[string]time.Duration{}
)

func openEcho(b *testing.B, open func() (*Echo, error)) *Echo {
	b.Helper()
	e, err := open()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := e.Close(); err != nil {
			b.Error(err)
		}
	})
	return e
}

func BenchmarkEcho(b *testing.B) {
	for _, tr := range echoTransports {
		b.Run(tr.name, func(b *testing.B) {
			for _, sz := range benchSizes {
				b.Run(sz.name, func(b *testing.B) {
					for _, callers := range benchCallers {
						b.Run(fmt.Sprintf("%dcallers", callers), func(b *testing.B) {
							key := fmt.Sprintf("%s/%d", sz.name, callers)
							payload := make([]byte, sz.n)
							e := openEcho(b, tr.open)
							b.SetBytes(int64(sz.n))
							rate := Throughput(b, callers, func() error {
								_, err := e.Call(payload)
								return err
							})
							if tr.name == "tcp" {
								tcpRate[key] = rate
								return
							}
							base, ok := tcpRate[key]
							if !ok {
								base = measureTCPRate(b, payload, callers)
							}
							b.ReportMetric(rate/base, tr.name+"/tcp")
						})
					}
				})
			}
		})
	}
}

// measureTCPRate measures the TCP echo baseline with b.N calls, outside the
// benchmark timer.
func measureTCPRate(b *testing.B, payload []byte, callers int) float64 {
	b.Helper()
	e, err := NewTCPEcho()
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	rate, err := runCalls(b.N, callers, func() error {
		_, err := e.Call(payload)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return rate
}

func BenchmarkEchoLatency(b *testing.B) {
	for _, tr := range echoTransports {
		b.Run(tr.name, func(b *testing.B) {
			for _, sz := range benchSizes {
				b.Run(sz.name, func(b *testing.B) {
					payload := make([]byte, sz.n)
					e := openEcho(b, tr.open)
					p50, p99 := Latency(b, func() error {
						_, err := e.Call(payload)
						return err
					})
					if tr.name == "tcp" {
						tcpP50[sz.name], tcpP99[sz.name] = p50, p99
						return
					}
					base50, ok := tcpP50[sz.name]
					base99 := tcpP99[sz.name]
					if !ok {
						base50, base99 = measureTCPLatency(b, payload)
					}
					b.ReportMetric(float64(p50)/float64(base50), "p50-"+tr.name+"/tcp")
					b.ReportMetric(float64(p99)/float64(base99), "p99-"+tr.name+"/tcp")
				})
			}
		})
	}
}

// measureTCPLatency measures the TCP echo's p50 and p99 over b.N sequential
// calls, outside the benchmark timer.
func measureTCPLatency(b *testing.B, payload []byte) (p50, p99 time.Duration) {
	b.Helper()
	e, err := NewTCPEcho()
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	samples := make([]time.Duration, b.N)
	for i := range samples {
		t0 := time.Now()
		if _, err := e.Call(payload); err != nil {
			b.Fatal(err)
		}
		samples[i] = time.Since(t0)
	}
	slices.Sort(samples)
	return percentile(samples, 50), percentile(samples, 99)
}

// BenchmarkStream sends b.N frames from one goroutine and stops the clock
// when the receiver has counted them all; reports msgs/s (and MB/s of
// payload).
func BenchmarkStream(b *testing.B) {
	b.Run("tls", func(b *testing.B) {
		for _, sz := range benchSizes {
			b.Run(sz.name, func(b *testing.B) {
				s, err := NewTLSStream()
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				payload := make([]byte, sz.n)
				b.SetBytes(int64(sz.n))
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					if err := s.Send(payload); err != nil {
						b.Fatal(err)
					}
				}
				hosttest.CheckForEvery(b, time.Minute, 20*time.Microsecond, func() error {
					if got := s.Received(); got < uint64(b.N) {
						return fmt.Errorf("received %d of %d frames", got, b.N)
					}
					return nil
				})
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			})
		}
	})
}
