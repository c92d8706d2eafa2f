package queues

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Benchmark shape: the contenders start once; each run of the benchmark
// measures them in interleaved rounds of msgs messages from producers
// concurrent producers and reports the median per contender and the
// median of the per-round ratios ours/theirs.
//
//	go test ./queues -run '^$' -bench DurableQueue
//
// With -short: one round of 200 messages, which only checks that
// everything runs.

// producers enqueue at once on each side: enough for our store's group
// commit (and JetStream's own batching) to have writes to share an fsync.
const producers = 16

// benchParams are the rounds and the messages per contender and round.
func benchParams() (rounds, msgs int) {
	if testing.Short() {
		return 1, 200
	}
	return 5, 5000
}

// The contenders' names, which prefix the reported units.
const (
	ours       = "pycomms"
	jsDefault  = "jetstream"
	jsSyncAll  = "jetstream_sync"
	warmupMsgs = 100
)

// sides starts the three contenders in temporary directories of tb.
func sides(tb testing.TB) (*Pycomms, *JetStream, *JetStream) {
	tb.Helper()
	root, err := FindRepoRoot(".")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := StartPycomms(tb.TempDir(), filepath.Join(root, WorkerWasm))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	j, err := StartJetStream(tb.TempDir(), false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(j.Close)
	js, err := StartJetStream(tb.TempDir(), true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(js.Close)
	return p, j, js
}

// BenchmarkDurableQueue: one durable enqueue, acknowledged once stored,
// then consumed and acknowledged, from 16 producers; our queue next to a
// JetStream work-queue stream with the server's default sync policy and
// with SyncAlways. Reports msgs/s and msgs per CPU-second of each, and
// the ratios ours/theirs (x_jetstream, x_jetstream_sync, and _cpu).
func BenchmarkDurableQueue(b *testing.B) {
	p, j, js := sides(b)
	cs := []contender{{ours, p.Run}, {jsDefault, j.Run}, {jsSyncAll, js.Run}}
	// Warm up: the worker's instances, the stream's first block, the
	// connections.
	if _, err := interleave(1, warmupMsgs, producers, cs); err != nil {
		b.Fatal(err)
	}
	rounds, msgs := benchParams()
	var samples map[string][]Sample
	b.ResetTimer()
	for range b.N {
		var err error
		if samples, err = interleave(rounds, msgs, producers, cs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, name := range []string{ours, jsDefault, jsSyncAll} {
		b.Logf("%s: msgs/s per round %s", name, rates(samples[name]))
		b.ReportMetric(medianOf(samples[name], Sample.Rate), name+"_msgs/s")
		b.ReportMetric(medianOf(samples[name], Sample.CPURate), name+"_msgs/cpu-s")
	}
	for _, base := range []string{jsDefault, jsSyncAll} {
		b.ReportMetric(ratio(samples[ours], samples[base], Sample.Rate), "x_"+base)
		b.ReportMetric(ratio(samples[ours], samples[base], Sample.CPURate), "x_"+base+"_cpu")
	}
}

// TestDurableQueueSides: each side, run once with a few messages, has
// every message it produced consumed and acknowledged exactly once, and
// its store is empty afterwards: the benchmark does not measure nothing.
func TestDurableQueueSides(t *testing.T) {
	p, j, js := sides(t)
	const msgs = 50
	for _, c := range []contender{{ours, p.Run}, {jsDefault, j.Run}, {jsSyncAll, js.Run}} {
		s, err := c.run(msgs, 4)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if s.Msgs != msgs || s.Wall <= 0 || s.Rate() <= 0 {
			t.Fatalf("%s: sample %+v", c.name, s)
		}
	}
	// One at start, then the round's.
	if enq, acked := p.Enqueued(), p.Acked(); enq != 1+msgs || acked != 1+msgs {
		t.Fatalf("pycomms: %d committed, %d acknowledged, want %d each", enq, acked, 1+msgs)
	}
	for _, x := range []*JetStream{j, js} {
		if acked := x.Acked(); acked != 1+msgs {
			t.Fatalf("jetstream (sync always %v): %d acknowledged, want %d", x.SyncAlways, acked, 1+msgs)
		}
		if n, err := x.Msgs(); err != nil || n != 0 {
			t.Fatalf("jetstream (sync always %v): %d messages left in the stream (%v)", x.SyncAlways, n, err)
		}
	}
}

// rates lists the msgs/s of each sample, for the log: the spread of the
// rounds, which on a shared disk is wide for the contenders that fsync.
func rates(samples []Sample) string {
	out := make([]string, len(samples))
	for i, s := range samples {
		out[i] = fmt.Sprintf("%.0f", s.Rate())
	}
	return strings.Join(out, " ")
}
