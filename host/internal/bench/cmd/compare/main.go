// Command compare reruns pycomms-host's side-by-side comparison (two hosts
// on loopback against embedded NATS and raw TLS/QUIC echoes; the in-process
// plugin call against waPC and bare wazero) and prints it as a markdown
// table with the machine's load average before and after. Run it from the
// benchmark module:
//
//	cd host/internal/bench && go run ./cmd/compare
//
// Every figure is the median of per-round ratios over interleaved rounds in
// this one process; the range shows how much the rounds disagreed. See
// package compare for what each contender is.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/bench/compare"
)

func main() {
	rounds := flag.Int("rounds", 3, "interleaved rounds (at least 3 for figures to quote)")
	dur := flag.Duration("d", time.Second, "time per contender and round")
	quick := flag.Bool("quick", false, "64 B figures only, 1 round of 200ms: checks that everything runs")
	flag.Parse()

	wd, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	root, err := compare.FindRepoRoot(wd)
	if err != nil {
		fail(err)
	}
	cfg := compare.DefaultConfig(root)
	cfg.Rounds, cfg.Duration, cfg.Progress = *rounds, *dur, os.Stderr
	if *quick {
		cfg.Rounds, cfg.Duration, cfg.Sizes, cfg.PluginSizes = 1, 200*time.Millisecond, []int{64}, []int{64}
	}
	before := compare.LoadAvg()
	start := time.Now()
	rows, err := compare.Run(cfg)
	if err != nil {
		fail(err)
	}
	fmt.Printf("pycomms-host comparison: %d rounds × %v per contender, %d callers; %s, GOMAXPROCS %d, %s\n",
		cfg.Rounds, cfg.Duration, cfg.Callers, runtime.Version(), runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("load average before: %s, after: %s (took %v)\n\n", before, compare.LoadAvg(), time.Since(start).Round(time.Second))
	if err := compare.WriteTable(os.Stdout, rows); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}
