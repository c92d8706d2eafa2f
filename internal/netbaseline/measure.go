package netbaseline

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Throughput runs b.N calls of call spread over callers goroutines and
// reports "calls/s" via b.ReportMetric, returning calls per second.
//
// The timer is reset when the calls start and stopped when the last one
// returns, so setup before Throughput is not measured. The first error from
// call stops all callers and fails the benchmark.
func Throughput(b *testing.B, callers int, call func() error) float64 {
	b.Helper()
	b.ResetTimer()
	rate, err := runCalls(b.N, callers, call)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate, "calls/s")
	return rate
}

// runCalls makes n calls of call from callers goroutines (at least one) and
// returns calls per second of wall time, or the first error.
func runCalls(n, callers int, call func() error) (float64, error) {
	callers = max(1, min(callers, n))
	var (
		next     atomic.Int64
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for !stop.Load() && next.Add(1) <= int64(n) {
				if err := call(); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(n) / elapsed.Seconds(), nil
}

// Latency runs b.N sequential calls, records each duration, and returns p50
// and p99 (also reports "p50-µs" and "p99-µs").
//
// Percentiles are nearest-rank over all b.N samples. The first error from call
// fails the benchmark.
func Latency(b *testing.B, call func() error) (p50, p99 time.Duration) {
	b.Helper()
	samples := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range samples {
		t0 := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		samples[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(samples)
	p50, p99 = percentile(samples, 50), percentile(samples, 99)
	b.ReportMetric(float64(p50)/float64(time.Microsecond), "p50-µs")
	b.ReportMetric(float64(p99)/float64(time.Microsecond), "p99-µs")
	return p50, p99
}

// percentile returns the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 · n)
	return sorted[max(rank, 1)-1]
}
