package compare

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Benchmark shape: each benchmark starts its contenders once, then every
// sub-benchmark (one per payload size) measures them in interleaved rounds
// and reports, for every comparison, the median of the per-round ratios
// ours/baseline under the row's key (x_nats, x_rawtls, x_nats_cpu, ...;
// see the Row keys in env.go, pubsub.go and plugincall.go) and our own
// figure in its unit (calls/s, p50-ns, events/s, ns/call ...).
//
//	go test ./compare -run XXX -bench . -benchtime 1x
//
// runs the full comparison (3 rounds of 1 s per contender and figure);
// with -short, 1 round of 50 ms, which only checks that everything runs.
// go run ./cmd/compare prints the same figures as a table.

var benchSizes = []int{64, 1 << 10, 64 << 10}

// benchParams are the rounds and the time per contender and round.
func benchParams() (int, time.Duration) {
	if testing.Short() {
		return 1, 50 * time.Millisecond
	}
	return 3, time.Second
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := FindRepoRoot(".")
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

func startEnv(b *testing.B) *Env {
	b.Helper()
	env, err := StartEnv(repoRoot(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	return env
}

// report runs measure b.N times (once is the norm: one run is several
// interleaved rounds) and reports the last run's rows.
func report(b *testing.B, measure func() ([]Row, error)) {
	b.Helper()
	var rows []Row
	for range b.N {
		var err error
		if rows, err = measure(); err != nil {
			b.Fatal(err)
		}
	}
	for _, r := range rows {
		b.ReportMetric(r.Ratio.Median, r.Key)
		if r.Unit != "" {
			b.ReportMetric(r.OursValue, r.Unit)
		}
	}
}

// BenchmarkRequestReply: 64 concurrent callers on the near host, the WAT
// echo on the far one, over TLS and QUIC, next to plaintext and TLS NATS
// and the raw TLS and QUIC echoes (calls/s and calls per CPU-second).
func BenchmarkRequestReply(b *testing.B) {
	env := startEnv(b)
	rounds, d := benchParams()
	for _, size := range benchSizes {
		b.Run(strings.ReplaceAll(SizeName(size), " ", ""), func(b *testing.B) {
			report(b, func() ([]Row, error) { return env.Throughput(size, 64, rounds, d) })
		})
	}
}

// BenchmarkLatency: p50 and p99 of sequential calls over TLS, next to NATS
// and the raw TLS echo.
func BenchmarkLatency(b *testing.B) {
	env := startEnv(b)
	rounds, d := benchParams()
	for _, size := range benchSizes {
		b.Run(strings.ReplaceAll(SizeName(size), " ", ""), func(b *testing.B) {
			report(b, func() ([]Row, error) { return env.Latency(size, rounds, d) })
		})
	}
}

// BenchmarkPubSub: events per second into one Wasm subscriber on the far
// host next to NATS 1→1, and the events dropped when the publisher is
// paced at NATS's rate.
func BenchmarkPubSub(b *testing.B) {
	env := startEnv(b)
	rounds, d := benchParams()
	report(b, func() ([]Row, error) { return env.PubSub(64, rounds, d) })
}

// BenchmarkPluginCall: one in-process call of the echo plugin (deadline
// enforced) next to waPC and the bare-wazero floor, same guest loop.
func BenchmarkPluginCall(b *testing.B) {
	pc, err := StartPluginCalls(repoRoot(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pc.Close)
	rounds, d := benchParams()
	for _, size := range []int{64, 64 << 10} {
		b.Run(strings.ReplaceAll(SizeName(size), " ", ""), func(b *testing.B) {
			report(b, func() ([]Row, error) { return pc.Measure(size, rounds, d) })
		})
	}
}

// funcBody returns the function in a WAT source whose text starts with
// header, from its first "(param" on (so without its name or export),
// comments removed and whitespace collapsed; "" when there is none or its
// parentheses do not balance.
func funcBody(src, header string) string {
	src = regexp.MustCompile(`;;[^\n]*`).ReplaceAllString(src, "")
	i := strings.Index(src, header)
	if i < 0 {
		return ""
	}
	depth := 0
	for j := i; j < len(src); j++ {
		switch src[j] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				f := src[i : j+1]
				k := strings.Index(f, "(param")
				if k < 0 {
					return ""
				}
				return strings.Join(strings.Fields(f[k:]), " ")
			}
		}
	}
	return ""
}

// The handler function of each guest: echo.wat's export (which ours and
// the floor run) and its copy in the waPC guest.
const (
	echoHandle = `(func (export "pycomms_handle")`
	wapcHandle = `(func $handle`
)

// TestHandleBodiesIdentical: the function holding the loop that
// upper-cases the payload is the same text in the pycomms-ABI echo and in
// the waPC echo (everything from its parameters on: locals, loop, the
// reply call), so the compiler gives every contender the same guest code
// and no one wins by a faster guest.
func TestHandleBodiesIdentical(t *testing.T) {
	ours, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata", "wat", "echo.wat"))
	if err != nil {
		t.Fatal(err)
	}
	wapc, err := os.ReadFile(filepath.Join("testdata", "wapc_echo.wat"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := funcBody(string(ours), echoHandle), funcBody(string(wapc), wapcHandle)
	if a == "" || !strings.Contains(a, "(loop $next") || !strings.Contains(a, "i32.store8") {
		t.Fatalf("no upper-casing loop found in testdata/wat/echo.wat's pycomms_handle: %q", a)
	}
	if a != b {
		t.Fatalf("the handler bodies differ:\necho.wat pycomms_handle: %s\nwapc_echo.wat $handle:    %s", a, b)
	}
	// The comparison is not blind to a change inside the loop.
	changed := strings.Replace(string(wapc), "(i32.const 32)", "(i32.const 33)", 1)
	if funcBody(changed, wapcHandle) == a {
		t.Fatal("funcBody does not see a changed constant in the loop")
	}
}

// TestWAPCEchoIsFresh: the embedded testdata/wapc_echo.wasm is what
// wat2wasm builds from testdata/wapc_echo.wat today (skipped without
// wat2wasm, except in CI).
func TestWAPCEchoIsFresh(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wat2wasm not found on PATH (required when CI=true): install it with scripts/install-toolchains.sh")
		}
		t.Skip("wat2wasm not found on PATH: install it with scripts/install-toolchains.sh")
	}
	out := filepath.Join(t.TempDir(), "wapc_echo.wasm")
	if b, err := exec.Command("wat2wasm", filepath.Join("testdata", "wapc_echo.wat"), "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, wapcEchoWasm) {
		t.Fatalf("testdata/wapc_echo.wasm is stale (%d bytes, wat2wasm builds %d): run `wat2wasm testdata/wapc_echo.wat -o testdata/wapc_echo.wasm` in %s and commit it",
			len(wapcEchoWasm), len(fresh), "host/internal/bench/compare")
	}
}

// TestPluginCallsEcho: every in-process contender replies with the payload
// upper-cased at both sizes, including after a size change (the floor
// reallocates its buffer then).
func TestPluginCallsEcho(t *testing.T) {
	pc, err := StartPluginCalls(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, size := range []int{64, 64 << 10, 0, 64} {
		pl := []byte(strings.Repeat("aZ-", size/3+1))[:size]
		for name, c := range map[string]Caller{cOurs: pc.Ours, cWAPC: pc.WAPC, cFloor: pc.Floor} {
			if err := checkEcho(name, c.Call, pl); err != nil {
				t.Errorf("%d bytes: %v", size, err)
			}
		}
	}
}

// TestRowRatios: a row's ratio is the median of per-round ratios, not the
// ratio of medians, and the table prints it with the range.
func TestRowRatios(t *testing.T) {
	s := func(calls int) Sample { return Sample{Calls: calls, Wall: time.Second, CPU: time.Second} }
	samples := map[string][]Sample{
		"a": {s(100), s(300), s(200)},
		"b": {s(100), s(100), s(400)},
	}
	r := row("x_b", "fig", samples, "a", "b", "b", callsPerSec)
	// per-round ratios 1, 3, 0.5: median 1 (the ratio of the medians
	// would be 200/100 = 2)
	if r.Ratio.Median != 1 || r.Ratio.Min != 0.5 || r.Ratio.Max != 3 || r.Ratio.N != 3 {
		t.Fatalf("ratio %+v, want median 1, range 0.5–3 over 3 rounds", r.Ratio)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, []Row{r}); err != nil {
		t.Fatal(err)
	}
	if want := "| fig | 200 calls/s | b 100 calls/s | 1.00× | 0.50–3.00 (3) | higher |"; !strings.Contains(buf.String(), want) {
		t.Fatalf("table:\n%s\nwant a line %q", buf.String(), want)
	}
}

// TestEnvContendersAnswer: every networked contender is up after StartEnv;
// our far host and the NATS responders reply with the payload
// upper-cased (the raw echoes return it as is, by design), and an event
// published on our near host reaches the far subscriber plugin.
func TestEnvContendersAnswer(t *testing.T) {
	env, err := StartEnv(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	pl := []byte("hello, World 1")
	want := []byte("HELLO, WORLD 1")
	for name, p := range map[string]*Pair{cOursTLS: env.OursTLS, cOursQUIC: env.OursQUIC} {
		for _, subject := range []string{echoSubject, goSubject} {
			out, err := p.Near.Call(context.Background(), &message.Message{
				Kind: abi.KindRequest, Subject: subject, Payload: pl, Deadline: time.Now().Add(callTimeout),
			})
			if err != nil || !bytes.Equal(out, want) {
				t.Errorf("%s, %s: reply %q, %v; want %q", name, subject, out, err, want)
			}
		}
	}
	for name, n := range map[string]*NATS{cNATS: env.NATS, cNATSTLS: env.NATSTLS} {
		m, err := n.client.Request(natsSubject, pl, callTimeout)
		if err != nil || !bytes.Equal(m.Data, want) {
			t.Errorf("%s: reply %v, %v; want %q", name, m, err, want)
		}
	}
	for name, call := range env.calls(pl) {
		if err := call(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	before := env.OursTLS.Received()
	if ok, err := env.OursTLS.Publish(pl, time.Now().Add(5*time.Second)); !ok || err != nil {
		t.Fatalf("publish: reached a subscriber %v, %v", ok, err)
	}
	hosttest.CheckForEvery(t, 10*time.Second, 5*time.Millisecond, func() error {
		if env.OursTLS.Received() == before {
			return errors.New("the far subscriber plugin handled no event")
		}
		return nil
	})
}

// BenchmarkLinejson: calls through the linejson gateway (a Go client, one
// JSON line per call) next to calls through the control API on the same
// host in the same rounds, and the gateway plugin's share of each call.
func BenchmarkLinejson(b *testing.B) {
	l, err := StartLinejson(filepath.Join(repoRoot(b), "testdata", "wat", "echo.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(l.Close)
	rounds, d := benchParams()
	for _, size := range []int{64, 1 << 10} {
		b.Run(strings.ReplaceAll(SizeName(size), " ", ""), func(b *testing.B) {
			report(b, func() ([]Row, error) { return l.Measure(size, 16, rounds, d) })
		})
	}
}

// BenchmarkRedis: request/reply and pub/sub between two hosts riding one
// redis-server through builtin:redis, next to two plain go-redis clients
// doing the same through the same server in the same rounds.
func BenchmarkRedis(b *testing.B) {
	r := hosttest.StartRedis(b, hosttest.RedisOptions{})
	p, err := StartRedisPair(r.Addr, filepath.Join(repoRoot(b), "testdata", "wat", "echo.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	rounds, d := benchParams()
	for _, size := range []int{64, 1 << 10} {
		b.Run(strings.ReplaceAll(SizeName(size), " ", ""), func(b *testing.B) {
			report(b, func() ([]Row, error) { return p.Measure(size, 16, rounds, d) })
		})
	}
}
