package fuel

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// BenchmarkEchoLoop is the cost of metering in a tight loop: the WAT echo
// handler over 64 KiB (one loop iteration per byte), plain and
// instrumented, each in wazero's compiler with nothing else around the
// call (the deadline machinery of host/internal/plugin is not involved).
// The calls alternate, so that both see the same load; x-plain is the
// instrumented time over the plain one (the target is ≤ 1.1),
// x-plain-p25 the same for the fastest quarter of the calls. Two
// payloads: zeros (no byte is upper-cased) and all 'a' (every byte is,
// as in the comparison benchmarks of host/internal/bench); the compiled
// loops differ enough in block layout that the ratio depends on which.
func BenchmarkEchoLoop(b *testing.B) {
	wasm, err := os.ReadFile("../../../testdata/wat/echo.wasm")
	if err != nil {
		b.Fatal(err)
	}
	metered, err := Instrument(wasm)
	if err != nil {
		b.Fatal(err)
	}
	const size = 64 << 10
	for _, fill := range []byte{0, 'a'} {
		name := "zeros"
		if fill != 0 {
			name = "a"
		}
		b.Run(name, func(b *testing.B) {
			plain, meter := echoCaller(b, wasm, false, size, fill), echoCaller(b, metered, true, size, fill)
			tp, tm := make([]time.Duration, b.N), make([]time.Duration, b.N)
			b.SetBytes(2 * size)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				plain()
				t1 := time.Now()
				meter()
				tp[i], tm[i] = t1.Sub(t0), time.Since(t1)
			}
			b.StopTimer()
			// The median and the fastest quarter: on a shared machine a
			// call is sometimes descheduled, and the low quantile is what
			// it costs when it is not.
			p50, m50, p25, m25 := quantile(tp, 0.5), quantile(tm, 0.5), quantile(tp, 0.25), quantile(tm, 0.25)
			b.ReportMetric(float64(p50), "plain-ns")
			b.ReportMetric(float64(m50), "metered-ns")
			b.ReportMetric(float64(m50)/float64(p50), "x-plain")
			b.ReportMetric(float64(m25)/float64(p25), "x-plain-p25")
		})
	}
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// echoCaller instantiates an echo module in a runtime of its own, writes
// a payload of size bytes of fill, and returns a function that has it
// handle that payload as a request.
func echoCaller(b *testing.B, mod []byte, instrumented bool, size uint64, fill byte) func() {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	b.Cleanup(func() { rt.Close(ctx) })
	if instrumented {
		_, err := rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = Period }), nil, i32).
			Export(ImportTick).
			NewFunctionBuilder().WithGoModuleFunction(growImport, i32, i32).Export(ImportGrow).Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
	}
	_, err := rt.NewHostModuleBuilder("pycomms:host/v1").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = 0 }), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, i32).
		Export("reply").Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m, err := rt.Instantiate(ctx, mod)
	if err != nil {
		b.Fatal(err)
	}
	const subject = 10
	stack := []uint64{subject + size, 0, 0, 0, 0}
	if err := m.ExportedFunction("pycomms_alloc").CallWithStack(ctx, stack); err != nil || stack[0] == 0 {
		b.Fatalf("alloc: %v (ptr %d)", err, stack[0])
	}
	ptr := stack[0]
	if !m.Memory().Write(uint32(ptr)+subject, bytes.Repeat([]byte{fill}, int(size))) {
		b.Fatal("payload out of range")
	}
	handle := m.ExportedFunction("pycomms_handle")
	return func() {
		stack[0], stack[1], stack[2], stack[3], stack[4] = 1, ptr, subject, size, 0
		if err := handle.CallWithStack(ctx, stack); err != nil || stack[0] != 0 {
			b.Fatalf("handle: %v (status %d)", err, stack[0])
		}
	}
}
