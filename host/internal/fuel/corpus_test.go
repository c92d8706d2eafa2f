package fuel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// The project's own corpus run plain and instrumented: the WAT fixtures,
// the Go and C example plugins and the fuzz seeds. The spec suite
// (spec_test.go) covers every instruction in small modules; this covers
// the code the host actually runs, produced by real toolchains (Go's
// wasip1 runtime, clang with wasi-libc), and so keeps an optimisation of
// the rewriter honest on large functions, tables and start-up code. For
// every module both sides make the same calls and must give the same
// results, the same trap (first line of the error), the same host import
// calls with the same memory at each, the same WASI output and the same
// final memory size and contents.

// corpusMemoryPages caps both sides' memory at 16 MiB: memgrow.wat grows
// until refused and biggrow.wat asks for 256 MiB, and without a cap each
// side would allocate up to 4 GiB.
const corpusMemoryPages = 256

// corpusDeadline bounds one call. loop.wat and initloop.wat never return;
// both sides are then closed by the deadline and the outcome is compared
// as "did not finish". Every other call in the corpus takes milliseconds;
// the longest, the Go plugin's _initialize, took 0.55 s under -race here,
// so the deadline leaves a loaded machine a 9x margin.
const corpusDeadline = 5 * time.Second

// corpusModule is one module of the corpus. trusted modules come from the
// project's own toolchains and must be accepted by Instrument (unless
// refuse says they are not WebAssembly); fuzz seeds are hostile input,
// and one Instrument refuses never reaches wazero (see FuzzInstrument).
type corpusModule struct {
	name    string
	bytes   []byte
	trusted bool
}

func loadCorpus(t *testing.T) []corpusModule {
	t.Helper()
	var mods []corpusModule
	paths, err := filepath.Glob("../../../testdata/wat/*.wasm")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no WAT fixtures in ../../../testdata/wat: %v", err)
	}
	paths = append(paths, "testdata/count.wasm", "../../../plugins/echo/echo.wasm", "../../../plugins/hello-c/hello.wasm")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("corpus: %v", err)
		}
		mods = append(mods, corpusModule{name: strings.TrimPrefix(p, "../../../"), bytes: b, trusted: true})
	}
	seeds, err := filepath.Glob("testdata/fuzz/FuzzInstrument/*")
	if err != nil || len(seeds) == 0 {
		t.Fatalf("no fuzz seeds in testdata/fuzz/FuzzInstrument: %v", err)
	}
	for _, p := range seeds {
		b, err := readFuzzSeed(p)
		if err != nil {
			t.Fatalf("fuzz seed %s: %v", p, err)
		}
		mods = append(mods, corpusModule{name: p, bytes: b})
	}
	return mods
}

// readFuzzSeed decodes a corpus file of go test's fuzzing format holding
// one []byte value.
func readFuzzSeed(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, errors.New("not a one-value \"go test fuzz v1\" file")
	}
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	if lit, ok = strings.CutSuffix(lit, ")"); !ok {
		return nil, fmt.Errorf("value is not a []byte literal: %.40s", lines[1])
	}
	s, err := strconv.Unquote(lit)
	if err != nil {
		return nil, fmt.Errorf("[]byte literal: %w", err)
	}
	return []byte(s), nil
}

func TestCorpusDifferential(t *testing.T) {
	mods := loadCorpus(t)
	var ran int
	for _, m := range mods {
		if m.name == "testdata/wat/notwasm.wasm" {
			// Not WebAssembly: both must refuse it (the file is ours and
			// small, so wazero may see it).
			if _, err := Instrument(m.bytes); err == nil {
				t.Errorf("%s: Instrument accepts a file that is not WebAssembly", m.name)
			}
			rt := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
			if _, err := rt.CompileModule(context.Background(), m.bytes); err == nil {
				t.Errorf("%s: wazero compiles a file that is not WebAssembly", m.name)
			}
			rt.Close(context.Background())
			continue
		}
		out, err := Instrument(m.bytes)
		if err != nil {
			if m.trusted {
				t.Errorf("%s: Instrument refuses a module of the project's corpus: %v", m.name, err)
			}
			continue
		}
		ran++
		t.Run(strings.ReplaceAll(m.name, "/", "_"), func(t *testing.T) {
			t.Parallel()
			compareModule(t, m, out)
		})
	}
	if ran < 20 {
		t.Errorf("only %d modules of the corpus ran on both sides", ran)
	}
}

// corpusSide is one runtime running one module, plain or instrumented.
type corpusSide struct {
	rt       wazero.Runtime
	mod      api.Module
	stdout   bytes.Buffer
	stderr   bytes.Buffer
	trace    []string // host import calls, with the memory hash at each
	ticks    int
	finished bool // closed: by the deadline or by proc_exit
}

func compareModule(t *testing.T, m corpusModule, instrumented []byte) {
	ctx := context.Background()
	plain, perr := newCorpusSide(ctx, t, m.bytes, false)
	metered, merr := newCorpusSide(ctx, t, instrumented, true)
	if (perr == nil) != (merr == nil) {
		t.Fatalf("load: plain %v, instrumented %v", perr, merr)
	}
	if perr != nil {
		if m.trusted {
			t.Fatalf("a module of the project's corpus does not load: %v", perr)
		}
		return // refused on both sides, as it should be
	}
	calls := plan(plain.mod)
	if m.trusted && len(calls) == 0 {
		t.Fatal("no export to call")
	}
	// The sides run at the same time, so a call that never returns costs
	// one deadline, not two.
	var want, got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		want = plain.run(ctx, calls)
	}()
	got = metered.run(ctx, calls)
	<-done
	for i, c := range calls {
		if i >= len(want) && i >= len(got) {
			break
		}
		var p, q string
		if i < len(want) {
			p = want[i]
		}
		if i < len(got) {
			q = got[i]
		}
		if p != q {
			t.Errorf("%s%v: instrumented %q, plain %q", c.name, c.args, q, p)
		} else if testing.Verbose() {
			t.Logf("%s%v: %.100s", c.name, c.args, p)
		}
	}
	if !equalTraces(t, plain.trace, metered.trace) {
		return
	}
	if plain.stdout.String() != metered.stdout.String() || plain.stderr.String() != metered.stderr.String() {
		t.Errorf("WASI output differs: plain stdout %q stderr %q, instrumented stdout %q stderr %q",
			plain.stdout.String(), plain.stderr.String(), metered.stdout.String(), metered.stderr.String())
	}
	if !plain.finished {
		if p, q := memoryState(plain.mod), memoryState(metered.mod); p != q {
			t.Errorf("final memory: plain %s, instrumented %s", p, q)
		}
	}
	if strings.HasSuffix(m.name, "echo.wasm") && strings.HasPrefix(m.name, "plugins") && metered.ticks == 0 {
		// The Go runtime's start-up alone runs far more than Period checks:
		// no tick means the instrumented side did not run instrumented code.
		t.Error("the instrumented Go plugin never called tick")
	}
	t.Logf("%d calls, %d host import calls, %d ticks", len(calls), len(plain.trace), metered.ticks)
}

func equalTraces(t *testing.T, plain, metered []string) bool {
	t.Helper()
	for i := 0; i < len(plain) || i < len(metered); i++ {
		var p, m string
		if i < len(plain) {
			p = plain[i]
		}
		if i < len(metered) {
			m = metered[i]
		}
		if p != m {
			t.Errorf("host import call %d: plain %q, instrumented %q", i, p, m)
			return false
		}
	}
	return true
}

func newCorpusSide(ctx context.Context, t *testing.T, wasm []byte, instrument bool) (*corpusSide, error) {
	s := &corpusSide{}
	// The interpreter: the Go plugin compiles in ~0.1 s there against
	// ~0.7 s with the compiler, and the corpus makes few calls.
	s.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().
		WithDebugInfoEnabled(false).
		WithMemoryLimitPages(corpusMemoryPages).
		// Reserve the cap up front: growing a page at a time otherwise
		// copies the memory on every grow, and memgrow.wat does that
		// to the cap.
		WithMemoryCapacityFromMax(true).
		WithCloseOnContextDone(true))
	t.Cleanup(func() { s.rt.Close(ctx) })
	compiled, err := s.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	if instrument {
		_, err := s.rt.NewHostModuleBuilder(ImportModule).
			NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, st []uint64) {
			s.ticks++
			st[0] = Period
		}), nil, i32).Export(ImportTick).
			NewFunctionBuilder().WithGoModuleFunction(growImport, i32, i32).Export(ImportGrow).
			Instantiate(ctx)
		if err != nil {
			return nil, fmt.Errorf("fuel imports: %w", err)
		}
	}
	if err := s.stubImports(ctx, compiled, instrument); err != nil {
		return nil, err
	}
	wall := clock(1_700_000_000_000_000_000)
	cfg := wazero.NewModuleConfig().
		WithStartFunctions(). // _initialize is called as a planned call
		WithStdout(&s.stdout).WithStderr(&s.stderr).
		WithRandSource(&countingReader{}).
		WithWalltime(func() (int64, int32) { t := wall(); return t / 1e9, int32(t % 1e9) }, sys.ClockResolution(1000)).
		WithNanotime(clock(0), sys.ClockResolution(1)).
		WithNanosleep(func(int64) {}).
		WithOsyield(func() {})
	mod, err := s.rt.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %s", firstLine(err))
	}
	s.mod = mod
	return s, nil
}

// clock is a deterministic clock: it advances 1 µs on every reading, so
// a guest waiting for time to pass still sees it pass, and both sides see
// the same times as long as they read the clock the same number of times.
// Each side has its own.
func clock(start int64) func() int64 {
	now := start
	return func() int64 {
		now += 1000
		return now
	}
}

// countingReader is a deterministic random source: 0, 1, 2, ...
type countingReader struct{ n byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// stubImports provides every function the module imports, other than
// WASI (wazero's, with the fixed clock and random source above) and the
// fuel imports: each stub records its name, arguments and the memory at
// the call, and returns zeros. Built from the module's own import
// declarations, so any module of the corpus links, and identically on
// both sides (the instrumented module imports the same, plus fuel's).
func (s *corpusSide) stubImports(ctx context.Context, compiled wazero.CompiledModule, instrument bool) error {
	byModule := map[string]map[string]api.FunctionDefinition{}
	for _, d := range compiled.ImportedFunctions() {
		mod, name, _ := d.Import()
		if mod == wasi_snapshot_preview1.ModuleName || (instrument && mod == ImportModule) {
			continue
		}
		if byModule[mod] == nil {
			byModule[mod] = map[string]api.FunctionDefinition{}
		}
		byModule[mod][name] = d // a repeated import is one export of the host module
	}
	for _, d := range compiled.ImportedFunctions() {
		if mod, _, _ := d.Import(); mod == wasi_snapshot_preview1.ModuleName {
			if _, err := wasi_snapshot_preview1.Instantiate(ctx, s.rt); err != nil {
				return fmt.Errorf("WASI: %w", err)
			}
			break
		}
	}
	for mod, funcs := range byModule {
		b := s.rt.NewHostModuleBuilder(mod)
		for name, d := range funcs {
			label := mod + "." + name
			b = b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, st []uint64) {
				s.trace = append(s.trace, fmt.Sprintf("%s%v %s", label, st[:len(d.ParamTypes())], memoryState(m)))
				clear(st)
			}), d.ParamTypes(), d.ResultTypes()).Export(name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("stub imports of %q: %w", mod, err)
		}
	}
	return nil
}

// memoryState is the size and SHA-256 of the module's memory, or "no
// memory".
func memoryState(m api.Module) string {
	mem := m.Memory()
	if mem == nil || reflect.ValueOf(mem).IsNil() { // wazero returns a typed nil
		return "no memory"
	}
	b, ok := mem.Read(0, mem.Size())
	if !ok {
		return "memory unreadable"
	}
	return fmt.Sprintf("%d bytes sha256:%x", mem.Size(), sha256.Sum256(b))
}

// corpusCall is one step of the plan both sides follow: a call of an
// export, or the delivery of one message through the pycomms ABI.
type corpusCall struct {
	name    string
	args    []uint64
	message *abiMessage
}

type abiMessage struct {
	kind                      uint64
	subject, payload, headers string
}

// plan lists the calls made on each module: _initialize, the ABI
// version, a few fixed messages through pycomms_alloc and pycomms_handle
// when the module has them, then every other export (sorted by name) with
// all arguments 0 and then all 5.
func plan(m api.Module) []corpusCall {
	defs := m.ExportedFunctionDefinitions()
	var calls []corpusCall
	if _, ok := defs["_initialize"]; ok {
		calls = append(calls, corpusCall{name: "_initialize"})
	}
	if _, ok := defs["pycomms_abi_version"]; ok {
		calls = append(calls, corpusCall{name: "pycomms_abi_version"})
	}
	_, alloc := defs["pycomms_alloc"]
	_, handle := defs["pycomms_handle"]
	if alloc && handle {
		for _, msg := range []abiMessage{
			{kind: 1, subject: "hello.greet", payload: "world"},
			{kind: 1, subject: "hello.count"},
			{kind: 1, subject: "hello.count", payload: "again"},
			// The Go plugin's handlers (plugins/echo) but echo.loop and
			// echo.sleep, which wait on the host.
			{kind: 1, subject: "echo.upper", payload: "mixed Case payload"},
			{kind: 1, subject: "echo.prefix", payload: "p"},
			{kind: 1, subject: "echo.fail", payload: "why"},
			{kind: 1, subject: "echo.call", payload: "other.svc data"},
			{kind: 1, subject: "echo.send", payload: "other.svc data"},
			{kind: 1, subject: "echo.publish", payload: "topic.x data"},
			{kind: 1, subject: "echo.headers", headers: "\xa1\x61k\x61v"}, // CBOR {"k": "v"}
			{kind: 1, subject: "echo.config"},
			{kind: 1, subject: "echo.log", payload: "a line"},
			{kind: 2, subject: "hello.other", payload: "x"},
			{kind: 3, subject: "greetings.en", payload: "hi"},
		} {
			calls = append(calls, corpusCall{name: "message " + msg.subject, message: &msg})
		}
	}
	names := make([]string, 0, len(defs))
	for name := range defs {
		switch name {
		case "_initialize", "pycomms_abi_version", "pycomms_alloc", "pycomms_handle":
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := len(defs[name].ParamTypes())
		calls = append(calls, corpusCall{name: name, args: make([]uint64, n)})
		if n > 0 {
			five := make([]uint64, n)
			for i := range five {
				five[i] = 5
			}
			calls = append(calls, corpusCall{name: name, args: five})
		}
	}
	return calls
}

// run makes the calls in order until the side is closed, and returns
// their outcomes.
func (s *corpusSide) run(ctx context.Context, calls []corpusCall) []string {
	var out []string
	for _, c := range calls {
		out = append(out, s.do(ctx, c))
		if s.finished {
			break
		}
	}
	return out
}

// do makes one call and describes its outcome: the results, or the
// class of failure. A side closed by the deadline or by proc_exit is
// finished; later calls are not made.
func (s *corpusSide) do(ctx context.Context, c corpusCall) string {
	if c.message == nil {
		return s.call(ctx, c.name, c.args...)
	}
	msg := c.message
	size := len(msg.subject) + len(msg.payload) + len(msg.headers)
	res := s.call(ctx, "pycomms_alloc", uint64(size))
	if s.finished || !strings.HasPrefix(res, "[") {
		return "alloc " + res
	}
	ptr, err := strconv.ParseUint(strings.Trim(res, "[]"), 10, 32)
	if err != nil {
		return "alloc result " + res
	}
	if ptr == 0 || !s.mod.Memory().Write(uint32(ptr), []byte(msg.subject+msg.payload+msg.headers)) {
		return "alloc " + res + ": nothing written"
	}
	return "alloc " + res + ", handle " + s.call(ctx, "pycomms_handle", msg.kind, ptr,
		uint64(len(msg.subject)), uint64(len(msg.payload)), uint64(len(msg.headers)))
}

func (s *corpusSide) call(ctx context.Context, name string, args ...uint64) string {
	f := s.mod.ExportedFunction(name)
	if f == nil {
		return "no export " + name
	}
	ctx, cancel := context.WithTimeout(ctx, corpusDeadline)
	defer cancel()
	res, err := f.Call(ctx, args...)
	if err == nil {
		return fmt.Sprint(res)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		s.finished = true
		if code := exit.ExitCode(); code == sys.ExitCodeDeadlineExceeded || code == sys.ExitCodeContextCanceled {
			return "did not finish within the deadline"
		}
		return fmt.Sprintf("exit %d", exit.ExitCode())
	}
	return "error: " + firstLine(err)
}

// firstLine is an error's first line: the stack trace below it names
// functions by index, which the rewriter shifts.
func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}
