package footprint

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/pycomms/pycomms-host/host/internal/bench/compare"
)

// report reports a per-unit figure under unit names that say what the
// unit is (link or instance).
func report(b *testing.B, p PerUnit, unit string) {
	b.ReportMetric(p.Heap, "heap-B/"+unit)
	b.ReportMetric(p.Stack, "stack-B/"+unit)
	b.ReportMetric(p.RSS, "rss-B/"+unit)
	b.ReportMetric(p.Goroutines, "goroutines/"+unit)
}

// BenchmarkLinks: the memory of one established mesh link (both ends, and
// membership), over TLS and QUIC, for a hub linked to 1 and to 16 spokes
// (the 16-spoke figure is the one to quote: the 1-spoke one carries a
// single link's noise undivided). Each run of b.N is one hub and its
// spokes; the median over runs is reported.
func BenchmarkLinks(b *testing.B) {
	for _, transport := range []string{"tcp", "quic"} {
		for _, n := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/N=%d", transport, n), func(b *testing.B) {
				var per []PerUnit
				for range b.N {
					p, err := Links(transport, n)
					if err != nil {
						b.Fatal(err)
					}
					per = append(per, p)
				}
				report(b, Median(per), "link")
			})
		}
	}
}

// BenchmarkInstances: the memory of one plugin instance, for the WAT echo
// and the Go-built builtin echo, as the median of 3 rounds (1 with
// -short) of a host with 1 and with 33 instances.
func BenchmarkInstances(b *testing.B) {
	root, err := compare.FindRepoRoot(".")
	if err != nil {
		b.Fatal(err)
	}
	cache := b.TempDir()
	for _, c := range []struct {
		name string
		p    Plugin
	}{
		{"wat", Plugin{Path: filepath.Join(root, compare.EchoWATPath), Service: "echo"}},
		{"go", Plugin{Path: "builtin:echo", Service: "echo"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			rounds := 3
			if testing.Short() { // the suite's check that it runs
				rounds = 1
			}
			var p PerUnit
			for range b.N {
				if p, err = Instances(c.p, cache, rounds); err != nil {
					b.Fatal(err)
				}
			}
			report(b, p, "instance")
		})
	}
}

// TestLinksGrowMemory: linking a hub to 4 spokes over TLS and QUIC brings
// every link up and costs memory and goroutines (a measurement that read
// nothing, or read before the links came up, would show no growth).
func TestLinksGrowMemory(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		p, err := Links(transport, 4)
		if err != nil {
			t.Fatal(err)
		}
		if p.Heap <= 0 || p.Goroutines <= 0 {
			t.Fatalf("%s: 4 links grew the heap by %.0f B and the goroutines by %.2f per link; want both > 0", transport, p.Heap, p.Goroutines)
		}
		t.Logf("%s: per link %.0f B heap, %.0f B stack, %.0f B RSS, %.2f goroutines", transport, p.Heap, p.Stack, p.RSS, p.Goroutines)
	}
}

// TestInstancesGrowMemory: 33 instances of the WAT echo hold more heap
// than 1 by at least its 64 KiB linear memory page per extra instance.
func TestInstancesGrowMemory(t *testing.T) {
	root, err := compare.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Instances(Plugin{Path: filepath.Join(root, compare.EchoWATPath), Service: "echo"}, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Heap < 64<<10 {
		t.Fatalf("per WAT echo instance the heap grew by %.0f B; want at least its one 64 KiB page of linear memory", p.Heap)
	}
	t.Logf("per WAT echo instance %.0f B heap, %.0f B RSS", p.Heap, p.RSS)
}
