package compare

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Config says what Run measures and how long.
type Config struct {
	Root     string        // repository root (FindRepoRoot)
	Rounds   int           // interleaved rounds, at least 3 for a figure to quote
	Duration time.Duration // per contender and round, for every figure
	Callers  int           // concurrent callers of the request/reply figures
	Sizes    []int         // payload sizes of request/reply and latency
	// PubSubSize and PluginSizes are the sizes of the pub/sub and the
	// in-process plugin-call figures.
	PubSubSize  int
	PluginSizes []int
	// Progress, when set, receives one line per figure as it starts.
	Progress io.Writer
}

// DefaultConfig is the full comparison: the parameters, 3 rounds
// of 1 s per contender.
func DefaultConfig(root string) Config {
	return Config{
		Root: root, Rounds: 3, Duration: time.Second, Callers: 64,
		Sizes: []int{64, 1 << 10, 64 << 10}, PubSubSize: 64, PluginSizes: []int{64, 64 << 10},
	}
}

// Run starts every contender, measures every figure and returns the rows
// in table order.
func Run(cfg Config) ([]Row, error) {
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", args...)
		}
	}
	env, err := StartEnv(cfg.Root)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	var rows []Row
	for _, size := range cfg.Sizes {
		progress("request/reply, %s ...", SizeName(size))
		r, err := env.Throughput(size, cfg.Callers, cfg.Rounds, cfg.Duration)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	for _, size := range cfg.Sizes {
		progress("sequential latency, %s ...", SizeName(size))
		r, err := env.Latency(size, cfg.Rounds, cfg.Duration)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	progress("pub/sub, %s ...", SizeName(cfg.PubSubSize))
	r, err := env.PubSub(cfg.PubSubSize, cfg.Rounds, cfg.Duration)
	if err != nil {
		return nil, err
	}
	rows = append(rows, r...)

	pc, err := StartPluginCalls(cfg.Root)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	for _, size := range cfg.PluginSizes {
		progress("in-process plugin call, %s ...", SizeName(size))
		r, err := pc.Measure(size, cfg.Rounds, cfg.Duration)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// LoadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg
// as written there ("" fields when it cannot be read).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// WriteTable writes rows as a markdown table: figure, ours, baseline, the
// median of the per-round ratios and their range.
func WriteTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| figure | ours | baseline | ours / baseline (median) | rounds min–max | better |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		better := "higher"
		if !r.Higher {
			better = "lower"
		}
		ratio := fmt.Sprintf("%.2f×", r.Ratio.Median)
		rng := fmt.Sprintf("%.2f–%.2f (%d)", r.Ratio.Min, r.Ratio.Max, r.Ratio.N)
		if r.Fraction {
			ratio, rng, better = fmt.Sprintf("%.3f%%", 100*r.Ratio.Median), "all rounds", "0 wanted"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Figure, r.Ours, r.Base, ratio, rng, better)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
