package compare

import (
	"fmt"
	"time"
)

// contender is one system measured in a round.
type contender struct {
	name    string
	measure func() (Sample, error)
}

// interleave measures every contender once per round, rounds times, and
// returns the samples by name in round order. The order within a round
// rotates, so that no contender always runs first (on a warm cache) or
// right after the heaviest one.
func interleave(rounds int, cs []contender) (map[string][]Sample, error) {
	out := make(map[string][]Sample, len(cs))
	for r := range max(rounds, 1) {
		for i := range cs {
			c := cs[(i+r)%len(cs)]
			s, err := c.measure()
			if err != nil {
				return nil, fmt.Errorf("compare: %s, round %d: %w", c.name, r+1, err)
			}
			out[c.name] = append(out[c.name], s)
		}
	}
	return out, nil
}

// Row is one line of the comparison table: our figure next to one
// baseline's, and the ratio ours/baseline per round (its median and range).
type Row struct {
	// Key names the ratio for b.ReportMetric, e.g. "x_nats".
	Key    string
	Figure string
	Ours   string
	Base   string
	Ratio  Stat
	// Higher says whether a higher ratio is better for us (throughput)
	// or a lower one (latency, time per call).
	Higher bool
	// Ratio is shown as a fraction ("0.1%") instead of a multiple.
	Fraction bool
	// OursValue is our median figure; Unit, when set, names it for
	// b.ReportMetric (rows that repeat a figure leave it empty).
	OursValue float64
	Unit      string
}

// metric picks the figure a row compares from a sample.
type metric struct {
	value  func(Sample) float64
	format func(float64) string
	higher bool
}

var (
	callsPerSec = metric{Sample.Rate, func(v float64) string { return si(v) + " calls/s" }, true}
	callsPerCPU = metric{Sample.CPURate, func(v float64) string { return si(v) + " calls/CPU-s" }, true}
	eventsPerS  = metric{Sample.Rate, func(v float64) string { return si(v) + " events/s" }, true}
	p50         = metric{func(s Sample) float64 { return float64(s.P50) }, micros, false}
	p99         = metric{func(s Sample) float64 { return float64(s.P99) }, micros, false}
	nsPerCall   = metric{Sample.NsPerCall, nanos, false}
)

// row compares ours with base over the rounds of samples.
func row(key, figure string, samples map[string][]Sample, ours, base, baseLabel string, m metric) Row {
	o, b := samples[ours], samples[base]
	n := min(len(o), len(b))
	ratios := make([]float64, 0, n)
	ov, bv := make([]float64, 0, n), make([]float64, 0, n)
	for i := range n {
		x, y := m.value(o[i]), m.value(b[i])
		ov, bv = append(ov, x), append(bv, y)
		if y > 0 {
			ratios = append(ratios, x/y)
		}
	}
	om, bm := stat(ov).Median, stat(bv).Median
	return Row{
		Key: key, Figure: figure,
		Ours: m.format(om), Base: baseLabel + " " + m.format(bm),
		Ratio: stat(ratios), Higher: m.higher, OursValue: om,
	}
}

// withUnit sets the unit under which r's own figure is reported.
func withUnit(r Row, unit string) Row {
	r.Unit = unit
	return r
}

// si formats v with a k or M suffix and three significant digits.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// nanos formats a time per call: ns below 10 µs, µs above.
func nanos(ns float64) string {
	if ns < 10e3 {
		return fmt.Sprintf("%.0f ns", ns)
	}
	return micros(ns)
}

func micros(ns float64) string {
	return fmt.Sprintf("%.1f µs", ns/float64(time.Microsecond))
}

// SizeName is how a payload size appears in figures and benchmark names.
func SizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
