package fuel

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func instantiate(t *testing.T, path string) (api.Module, *int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Instrument(b)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	ticks := new(int)
	_, err = rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) { *ticks++; s[0] = Period }), nil, []api.ValueType{api.ValueTypeI32}).
		Export(ImportTick).
		NewFunctionBuilder().WithGoModuleFunction(growImport, i32, i32).Export(ImportGrow).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	return m, ticks
}

func TestCount(t *testing.T) {
	m, ticks := instantiate(t, "testdata/count.wasm")
	ctx := context.Background()
	call := func(name string, args ...uint64) uint64 {
		r, err := m.ExportedFunction(name).Call(ctx, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r[0]
	}
	if got := call("started"); got != 1 {
		t.Fatalf("start function did not run: %d", got)
	}
	if got := call("count", 1_000_000); got != 1_000_000 {
		t.Fatalf("count = %d", got)
	}
	if *ticks < 1_000_000/Period || *ticks > 1_000_000/Period+2 {
		t.Fatalf("ticks = %d, want about %d", *ticks, 1_000_000/Period)
	}
	before := *ticks
	if got := call("fib", 25); got != 75025 {
		t.Fatalf("fib = %d", got)
	}
	if *ticks-before < 200_000/Period { // fib(25) makes ~243k calls
		t.Fatalf("recursion did not consume fuel: %d ticks", *ticks-before)
	}
	if got := call("indirect", 1, 10); got != 55 {
		t.Fatalf("indirect fib = %d", got)
	}
	if got := call("indirect", 0, 7); got != 7 {
		t.Fatalf("indirect count = %d", got)
	}
}

// FuzzInstrument: arbitrary bytes never panic the instrumenter, and only
// bytes it accepts reach wazero (as in the host, whose decoder allocates
// from declared counts); then the instrumented module validates exactly
// when the original does: a module wazero accepts stays acceptable after
// instrumenting and a module it refuses stays refused. The one direction
// not checked is Instrument refusing what wazero would accept: those bytes
// may be the ones that make wazero allocate gigabytes, and refusing more
// than wazero (the Max limits) is the point; TestCorpusDifferential checks
// that Instrument accepts every module the project ships. The seeds are
// the corpus of that test but the 3.8 MB Go plugin, which would make every
// fuzzing run slow. scripts/test.sh runs this briefly under an
// address-space limit, so an input that makes wazero allocate gigabytes
// fails it instead of swapping the machine.
func FuzzInstrument(f *testing.F) {
	seeds, err := filepath.Glob("../../../testdata/wat/*.wasm")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no WAT fixtures in ../../../testdata/wat: %v", err)
	}
	for _, p := range append(seeds, "testdata/count.wasm", "testdata/stuck.wasm", "../../../plugins/hello-c/hello.wasm") {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Instrument(b)
		if err != nil {
			return // refused before wazero sees it
		}
		ctx := context.Background()
		// As the host compiles (host/internal/plugin): without debug info. With it,
		// wazero v1.12 refuses a module whose last section is a custom
		// section with nothing after its name (its reader hits EOF reading
		// zero bytes), and accepts the same section anywhere else, so the
		// refusal would depend on what the rewriter appends after it.
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithDebugInfoEnabled(false))
		defer rt.Close(ctx)
		_, perr := rt.CompileModule(ctx, b)
		_, merr := rt.CompileModule(ctx, out)
		if perr == nil && merr != nil {
			t.Fatalf("instrumented module no longer compiles: %v", merr)
		}
		if perr != nil && merr == nil {
			t.Fatalf("wazero refuses the module (%v) but compiles it instrumented", perr)
		}
	})
}

var i32 = []api.ValueType{api.ValueTypeI32}

// growImport is memory.grow done by the host, as the instrumented module
// expects it (ImportGrow).
var growImport = api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
	prev, ok := m.Memory().Grow(uint32(s[0]))
	if !ok {
		s[0] = uint64(math.MaxUint32) // -1
		return
	}
	s[0] = uint64(prev)
})
