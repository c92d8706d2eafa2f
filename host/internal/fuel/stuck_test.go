package fuel

import (
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// stuckGuest is testdata/stuck.wasm instrumented, in wazero's compiler
// (the engine the host runs), with a tick that counts and, once stop is
// set, refuses to refill after stopAfter more ticks, as the host does for
// an instance past its deadline.
type stuckGuest struct {
	m           api.Module
	ticks       int
	stop        bool
	stopAfter   int
	ticksAtStop int
}

func newStuckGuest(t *testing.T) *stuckGuest {
	t.Helper()
	b, err := os.ReadFile("testdata/stuck.wasm")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Instrument(b)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	t.Cleanup(func() { rt.Close(ctx) })
	g := &stuckGuest{}
	_, err = rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			g.ticks++
			if g.stop && g.ticks-g.ticksAtStop >= g.stopAfter {
				panic(errStop)
			}
			s[0] = Period
		}), nil, i32).Export(ImportTick).
		NewFunctionBuilder().WithGoModuleFunction(growImport, i32, i32).Export(ImportGrow).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g.m, err = rt.Instantiate(ctx, out); err != nil {
		t.Fatal(err)
	}
	return g
}

// run calls name(arg) and returns its error and the ticks it made.
func (g *stuckGuest) run(t *testing.T, name string, arg uint64) (int, error) {
	t.Helper()
	f := g.m.ExportedFunction(name)
	if f == nil {
		t.Fatalf("stuck.wasm exports no %q", name)
	}
	before := g.ticks
	g.ticksAtStop = before
	_, err := f.Call(context.Background(), arg)
	return g.ticks - before, err
}

// Every shape of a guest that does not return is stopped once the host
// stops refilling: one tight loop (the loop counter), a tight loop in a
// loop (a branch crossing the wrapper), a loop calling a function (the
// check at the header), a recursion tree without loops (the check at
// function entry), a recursion tree of short tight loops (each call's
// loop ends before its counter runs out) and a tight loop carrying a
// value (br_if to the wrapper). Each first runs a bounded amount of work,
// which must tick about as often as the work says: metering that stopped
// counting would fail there, and the unbounded call would never return.
func TestStuckGuestsAreStopped(t *testing.T) {
	const stopAfter = 3
	for _, tc := range []struct {
		name      string
		bounded   uint64 // argument for a bounded run
		units     int    // fuel that run spends at least
		unbounded uint64 // argument for a run only the tick can end
	}{
		{"spin", 2_000_000, 2_000_000, 0},
		{"nested", 20_000, 20_000 * 100, 0},
		{"calling", 1_000_000, 2 * 1_000_000, 0},
		{"tree", 20, 1<<21 - 1, 62},
		// Each call's 200 iterations are fewer than Batch and never paid
		// for: only the function entries are (see Batch).
		{"short", 14, 1 << 15, 62},
		{"carried", 2_000_000, 2_000_000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newStuckGuest(t)
			ticks, err := g.run(t, tc.name, tc.bounded)
			if err != nil {
				t.Fatalf("%s(%d): %v", tc.name, tc.bounded, err)
			}
			// A tight loop pays in batches, so it can run up to Batch
			// units past a tick before paying.
			if want := tc.units / (Period + int(Batch)); ticks < want {
				t.Fatalf("%s(%d) made %d ticks, want at least %d (one per %d units of fuel)", tc.name, tc.bounded, ticks, want, Period)
			}
			g.stop, g.stopAfter = true, stopAfter
			start := time.Now()
			ticks, err = g.run(t, tc.name, tc.unbounded)
			if !errors.Is(err, errStop) {
				t.Fatalf("%s(%d) = %v, want it stopped by the tick", tc.name, tc.unbounded, err)
			}
			if ticks != stopAfter {
				t.Fatalf("stopped after %d ticks, want %d", ticks, stopAfter)
			}
			t.Logf("%s stopped %v after the first of its last %d ticks", tc.name, time.Since(start), stopAfter)
		})
	}
}

// A guest naming the local one past its own would name the loop counter
// the rewrite appends (and could set it for ever): refused, as wazero
// refuses it in the original. The function has a tight loop, so the
// rewrite would give it the counter. The same for a branch label one past
// the blocks open around it, which would name the wrapper loop.
func TestInstrumentRefusesTheLocalAndLabelPastTheOriginal(t *testing.T) {
	// (func (param i32) (local i32) (loop (local.set 2 (i32.const 1000)) (br 0)))
	body := []byte{1, 1, 0x7f, 0x03, 0x40, 0x41, 0xe8, 0x07, 0x21, 2, 0x0c, 0, 0x0b, 0x0b}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"local.set", body, "code section: function 0: local index 2 out of range (the module has 2)"},
		{"local.get", []byte{0, 0x03, 0x40, 0x20, 1, 0x1a, 0x0c, 0, 0x0b, 0x0b}, "local index 1 out of range (the module has 1)"},
		{"local.tee", []byte{0, 0x41, 0, 0x22, 1, 0x1a, 0x0b}, "local index 1 out of range (the module has 1)"},
		{"in a constant expression", nil, "global section: global 0 initializer: local index 0 out of range (the module has 0)"},
		// (loop (br 2)): one past the loop and the function's label, it
		// would name the wrapper loop the rewrite puts around a tight loop.
		{"branch label", []byte{0, 0x03, 0x40, 0x0c, 2, 0x0b, 0x0b}, "code section: function 0: label 2 out of range (2 in scope)"},
		{"br_table label", []byte{0, 0x03, 0x40, 0x41, 0, 0x0e, 1, 0, 2, 0x0b, 0x0b}, "label 2 out of range (2 in scope)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := spinModule(nil, tc.body)
			if tc.body == nil {
				mod = wasmModule(sec(secGlobal, u32(1), []byte{0x7f, 0, 0x20, 0, 0x0b}))
			}
			_, err := Instrument(mod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Instrument = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The tight loops of stuck.wasm do get the loop counter, and the other
// shapes do not (otherwise TestStuckGuestsAreStopped would only test the
// check at loop headers): with the counter a function pays loopEntry at
// entry and nothing for fewer than Batch iterations (see Batch), without
// it 1 at entry and 1 per iteration. Each case says what one call pays.
func TestTightLoopsGetTheCounter(t *testing.T) {
	const calls = 2048
	for _, tc := range []struct {
		name         string
		units, plain int // fuel one call (argument 1) pays with the counter, and without
	}{
		{"spin", loopEntry, 2},            // one iteration
		{"nested", loopEntry + 1, 102},    // the outer loop's header, 100 inner iterations
		{"short", 3 * loopEntry, 3 * 201}, // three calls of 200 iterations
		{"carried", loopEntry, 2},         // one iteration
		{"calling", 3, 3},                 // its entry, one header, the callee's entry
		{"tree", 3, 3},                    // three calls
	} {
		g := newStuckGuest(t)
		ticks := 0
		for range calls {
			n, err := g.run(t, tc.name, 1)
			if err != nil {
				t.Fatalf("%s(1): %v", tc.name, err)
			}
			ticks += n
		}
		if want := float64(calls*tc.units) / Period; math.Abs(float64(ticks)-want) > 1.5 {
			t.Errorf("%d calls of %s(1) made %d ticks, want %.1f (%.1f without the loop counter)", calls, tc.name, ticks, want, float64(calls*tc.plain)/Period)
		}
	}
}
