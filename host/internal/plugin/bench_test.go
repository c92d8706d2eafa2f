package plugin

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/plugins"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var sizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// floorNs measures the bare cost of the same echo through raw wazero: write
// the input into guest memory, CallWithStack on a cached function, read the
// reply view. No pool, no deadline, no instrumentation.
func floorNs(b *testing.B, wasm []byte, size int) float64 {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	var rptr, rlen uint32
	_, err := rt.NewHostModuleBuilder(abi.ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			rptr, rlen = uint32(s[0]), uint32(s[1])
			s[0] = 0
		}), i32s(2), i32s(1)).Export(abi.ImportReply).Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	alloc, handle, mem := mod.ExportedFunction(abi.ExportAlloc), mod.ExportedFunction(abi.ExportHandle), mod.Memory()
	subject, payload := "echo.upper", make([]byte, size)
	stack := make([]uint64, 5)
	stack[0] = uint64(len(subject) + size)
	if err := alloc.CallWithStack(ctx, stack); err != nil {
		b.Fatal(err)
	}
	ptr := uint32(stack[0])
	const n = 20000
	var sink byte
	start := time.Now()
	for range n {
		mem.Write(ptr, []byte(subject))
		mem.Write(ptr+uint32(len(subject)), payload)
		stack[0], stack[1], stack[2], stack[3], stack[4] = 1, uint64(ptr), uint64(len(subject)), uint64(size), 0
		if err := handle.CallWithStack(ctx, stack); err != nil {
			b.Fatal(err)
		}
		out, _ := mem.Read(rptr, rlen)
		sink += out[0]
	}
	_ = sink
	return float64(time.Since(start).Nanoseconds()) / n
}

func benchRuntime(b *testing.B, wasm []byte, callers, instances int) {
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("%s/callers=%d/instances=%d", sz.name, callers, instances), func(b *testing.B) {
			floor := floorNs(b, wasm, sz.n)
			e := newEngine(b)
			v := load(b, e, Spec{Name: "echo", Wasm: wasm, Instances: instances, Timeout: time.Minute})
			payload := make([]byte, sz.n)
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.ResetTimer()
			requestFrom(b, v, callers, payload)
			b.StopTimer()
			perMsg := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(floor, "floor-ns")
			b.ReportMetric(perMsg/floor, "x-floor")
			b.ReportMetric(1e9/perMsg, "msgs/s")
		})
	}
}

// requestFrom makes b.N echo.upper requests from callers goroutines.
func requestFrom(b *testing.B, v *Version, callers int, payload []byte) {
	var wg sync.WaitGroup
	for c := range callers {
		n := b.N / callers
		if c == 0 {
			n += b.N % callers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &message.Message{Kind: abi.KindRequest, Subject: "echo.upper", Payload: payload}
			for range n {
				if _, err := v.Request(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRequestWAT is the per-message cost of a request through the
// runtime (pool checkout, deadline armed, payload in, reply out) for the
// hand-written WAT echo, next to the bare wazero floor.
func BenchmarkRequestWAT(b *testing.B) {
	wasm := fixture(b, "echo.wasm")
	benchRuntime(b, wasm, 1, 1)
	benchRuntime(b, wasm, 8, 8)
}

// BenchmarkPoolScaling: 8 callers into one plugin with 1, 2 and 8 instances.
func BenchmarkPoolScaling(b *testing.B) {
	wasm := fixture(b, "echo.wasm")
	for _, n := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			e := newEngine(b)
			v := load(b, e, Spec{Name: "echo", Wasm: wasm, Instances: n, Timeout: time.Minute})
			payload := make([]byte, 64)
			b.ResetTimer()
			b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 callers
			b.RunParallel(func(pb *testing.PB) {
				m := &message.Message{Kind: abi.KindRequest, Subject: "echo.upper", Payload: payload}
				for pb.Next() {
					if _, err := v.Request(context.Background(), m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// BenchmarkRequestGo runs the bundled Go echo plugin (plugins/echo) with
// the WAT echo's raw-wazero floor: the ratio includes the Go guest's own
// cost (SDK dispatch, Go runtime) on top of the runtime's.
func BenchmarkRequestGo(b *testing.B) {
	wat := fixture(b, "echo.wasm")
	goEcho, ok := plugins.Builtin("echo")
	if !ok {
		b.Fatal("no builtin echo")
	}
	for _, callers := range []int{1, 8} {
		for _, sz := range sizes {
			b.Run(fmt.Sprintf("%s/callers=%d", sz.name, callers), func(b *testing.B) {
				floor := floorNs(b, wat, sz.n)
				e := newEngine(b)
				v := load(b, e, Spec{Name: "echo", Wasm: goEcho, Instances: callers, Timeout: time.Minute})
				payload := make([]byte, sz.n)
				b.SetBytes(int64(sz.n))
				b.ResetTimer()
				requestFrom(b, v, callers, payload)
				perMsg := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(perMsg/floor, "x-floor")
			})
		}
	}
}

// BenchmarkStartGoEcho loads the Go echo plugin with an empty compilation
// cache and with a warm one, and reports cold/warm.
func BenchmarkStartGoEcho(b *testing.B) {
	goEcho, _ := plugins.Builtin("echo")
	start := func(dir string) time.Duration {
		t0 := time.Now()
		e, err := NewEngine(EngineOptions{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		v, err := e.Load(context.Background(), Spec{Name: "echo", Wasm: goEcho, Instances: 1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		v.Close()
		e.Close()
		return d
	}
	warmDir := b.TempDir()
	start(warmDir)
	var cold, warm time.Duration
	for range b.N {
		cold += start(b.TempDir())
		warm += start(warmDir)
	}
	b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "cold-ms")
	b.ReportMetric(float64(warm.Milliseconds())/float64(b.N), "warm-ms")
	b.ReportMetric(float64(cold)/float64(warm), "x-cold/warm")
}

// BenchmarkPluginRequest is one sequential request through Plugin.Request
// the way the comparison harness makes it (host/internal/bench/compare,
// "ours"): a fresh message with its own deadline per call, one instance,
// the WAT echo. It is the per-call overhead on top of the floor, for
// profiling and for comparing two builds back to back (cpu-ns/op).
func BenchmarkPluginRequest(b *testing.B) {
	wasm := fixture(b, "echo.wasm")
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			e := newEngine(b)
			p := New("echo", load(b, e, Spec{Name: "echo", Wasm: wasm, Instances: 1, Queue: 64, Timeout: 10 * time.Second, MaxReply: 1 << 20}))
			payload := make([]byte, sz.n)
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				m := &message.Message{Kind: abi.KindRequest, Subject: "echo.upper", Payload: payload, Deadline: time.Now().Add(10 * time.Second)}
				if _, err := p.Request(context.Background(), m); err != nil {
					b.Fatal(err)
				}
			}
			// The whole process's CPU (GC and the watchdog included) per
			// call: steadier than ns/op on a shared machine.
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
