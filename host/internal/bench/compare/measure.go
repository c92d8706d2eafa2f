package compare

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sample is one measurement of one contender.
type Sample struct {
	Calls int           // calls (or events) completed
	Wall  time.Duration // wall time they took
	CPU   time.Duration // user+sys CPU time of the whole process meanwhile
	// P50 and P99 are set by sequential measurements only.
	P50, P99 time.Duration
}

// Rate is calls per second of wall time.
func (s Sample) Rate() float64 { return perSecond(s.Calls, s.Wall) }

// CPURate is calls per CPU-second of the whole process (both ends of every
// connection live in it, so this is the cost of a call end to end).
func (s Sample) CPURate() float64 { return perSecond(s.Calls, s.CPU) }

// NsPerCall is wall nanoseconds per call.
func (s Sample) NsPerCall() float64 {
	if s.Calls == 0 {
		return 0
	}
	return float64(s.Wall.Nanoseconds()) / float64(s.Calls)
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// cpuTime is the user+sys CPU time this process has used (RUSAGE_SELF:
// every thread).
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("compare: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// around runs f between two readings of the clock and of the process CPU
// time, after a GC so that one contender's garbage is not collected on the
// next one's time.
func around(f func() (int, error)) (Sample, error) {
	runtime.GC()
	c0, err := cpuTime()
	if err != nil {
		return Sample{}, err
	}
	t0 := time.Now()
	n, err := f()
	wall := time.Since(t0)
	c1, cerr := cpuTime()
	if err = errors.Join(err, cerr); err != nil {
		return Sample{}, err
	}
	return Sample{Calls: n, Wall: wall, CPU: c1 - c0}, nil
}

// Concurrent runs call from callers goroutines until d has passed and
// returns how many calls completed, the wall time until the last caller
// returned and the CPU time used. The first error stops every caller and
// is returned.
func Concurrent(d time.Duration, callers int, call func() error) (Sample, error) {
	return around(func() (int, error) {
		var (
			stop     atomic.Bool
			done     atomic.Int64
			errOnce  sync.Once
			firstErr error
			wg       sync.WaitGroup
		)
		timer := time.AfterFunc(d, func() { stop.Store(true) })
		defer timer.Stop()
		for range max(callers, 1) {
			wg.Go(func() {
				for !stop.Load() {
					if err := call(); err != nil {
						errOnce.Do(func() { firstErr = err })
						stop.Store(true)
						return
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		return int(done.Load()), firstErr
	})
}

// Sequential makes one call at a time until d has passed (and at least
// minCalls calls) and returns the sample with the nearest-rank p50 and p99
// of the calls' durations.
func Sequential(d time.Duration, minCalls int, call func() error) (Sample, error) {
	var durs []time.Duration
	s, err := around(func() (int, error) {
		end := time.Now().Add(d)
		for {
			t0 := time.Now()
			if err := call(); err != nil {
				return len(durs), err
			}
			t1 := time.Now()
			durs = append(durs, t1.Sub(t0))
			if len(durs) >= minCalls && t1.After(end) {
				return len(durs), nil
			}
		}
	})
	if err != nil {
		return s, err
	}
	slices.Sort(durs)
	s.P50, s.P99 = percentile(durs, 50), percentile(durs, 99)
	return s, nil
}

// percentile returns the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 · n)
	return sorted[max(rank, 1)-1]
}

// Stat is the median of per-round values and their range.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// stat summarises vals (which it sorts).
func stat(vals []float64) Stat {
	if len(vals) == 0 {
		return Stat{}
	}
	slices.Sort(vals)
	n := len(vals)
	med := vals[n/2]
	if n%2 == 0 {
		med = (vals[n/2-1] + vals[n/2]) / 2
	}
	return Stat{Median: med, Min: vals[0], Max: vals[n-1], N: n}
}
