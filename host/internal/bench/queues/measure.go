package queues

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

// Sample is one round of one contender: msgs messages enqueued and
// consumed, in wall time Wall, using CPU (user+sys of the whole process:
// producers, store and consumer all live in it).
type Sample struct {
	Msgs int
	Wall time.Duration
	CPU  time.Duration
}

// Rate is messages per second of wall time.
func (s Sample) Rate() float64 { return perSecond(s.Msgs, s.Wall) }

// CPURate is messages per CPU-second of the whole process.
func (s Sample) CPURate() float64 { return perSecond(s.Msgs, s.CPU) }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// cpuTime is the user+sys CPU time of this process (RUSAGE_SELF: every
// thread).
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("queues: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// around runs f between two readings of the clock and of the process CPU
// time, after a GC so that one contender's garbage is not collected on
// the next one's time.
func around(msgs int, f func() error) (Sample, error) {
	runtime.GC()
	c0, err := cpuTime()
	if err != nil {
		return Sample{}, err
	}
	t0 := time.Now()
	err = f()
	wall := time.Since(t0)
	c1, cerr := cpuTime()
	if err = errors.Join(err, cerr); err != nil {
		return Sample{}, err
	}
	return Sample{Msgs: msgs, Wall: wall, CPU: c1 - c0}, nil
}

// produce runs enqueue msgs times in all from producers goroutines, each
// taking the next index until msgs are taken. The first error stops every
// producer and is returned.
func produce(msgs, producers int, enqueue func(i int) error) error {
	var (
		next     atomic.Int64
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for range max(producers, 1) {
		wg.Go(func() {
			for !stop.Load() {
				i := int(next.Add(1)) - 1
				if i >= msgs {
					return
				}
				if err := enqueue(i); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// pollEvery is how often waitFor looks at a consumer's count: short next
// to a round (hundreds of milliseconds), and the same for every contender.
const pollEvery = time.Millisecond

// waitFor polls count until it reaches target, for at most timeout.
func waitFor(what string, timeout time.Duration, target uint64, count func() uint64) error {
	deadline := time.Now().Add(timeout)
	for {
		got := count()
		if got >= target {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queues: %s: %d of %d messages acknowledged after %v", what, got, target, timeout)
		}
		time.Sleep(pollEvery)
	}
}

// contender is one system measured in a round.
type contender struct {
	name string
	run  func(msgs, producers int) (Sample, error)
}

// interleave runs every contender once per round, rounds times, and
// returns the samples by name in round order. The order within a round
// rotates, so that no contender always runs first or right after the
// heaviest one.
func interleave(rounds, msgs, producers int, cs []contender) (map[string][]Sample, error) {
	out := make(map[string][]Sample, len(cs))
	for r := range max(rounds, 1) {
		for i := range cs {
			c := cs[(i+r)%len(cs)]
			s, err := c.run(msgs, producers)
			if err != nil {
				return nil, fmt.Errorf("queues: %s, round %d: %w", c.name, r+1, err)
			}
			out[c.name] = append(out[c.name], s)
		}
	}
	return out, nil
}

// median of vals (which it sorts); 0 when there are none.
func median(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	slices.Sort(vals)
	n := len(vals)
	if n%2 == 0 {
		return (vals[n/2-1] + vals[n/2]) / 2
	}
	return vals[n/2]
}

// medianOf is the median over samples of value.
func medianOf(samples []Sample, value func(Sample) float64) float64 {
	vals := make([]float64, 0, len(samples))
	for _, s := range samples {
		vals = append(vals, value(s))
	}
	return median(vals)
}

// ratio is the median of the per-round ratios ours/base of value.
func ratio(ours, base []Sample, value func(Sample) float64) float64 {
	n := min(len(ours), len(base))
	vals := make([]float64, 0, n)
	for i := range n {
		if b := value(base[i]); b > 0 {
			vals = append(vals, value(ours[i])/b)
		}
	}
	return median(vals)
}
