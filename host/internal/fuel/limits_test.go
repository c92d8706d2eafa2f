package fuel

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Hand-assembled modules: wat2wasm refuses the invalid ones these tests
// need, and the bytes show exactly which count or index is wrong.

func u32(v uint32) []byte { return appendU32(nil, v) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func sec(id byte, body ...[]byte) []byte {
	b := cat(body...)
	return cat([]byte{id}, u32(uint32(len(b))), b)
}

func wasmModule(secs ...[]byte) []byte { return cat([]byte("\x00asm\x01\x00\x00\x00"), cat(secs...)) }

func name(s string) []byte { return appendName(nil, s) }

// one function type (i32) -> (), one function of that type exported as
// "spin", whose body is given.
func spinModule(globals, body []byte) []byte {
	secs := [][]byte{
		sec(secType, u32(1), []byte{0x60, 1, 0x7f, 0}),
		sec(secFunction, u32(1), u32(0)),
	}
	if globals != nil {
		secs = append(secs, sec(secGlobal, globals))
	}
	secs = append(secs,
		sec(secExport, u32(1), name("spin"), []byte{0}, u32(0)),
		sec(secCode, u32(1), u32(uint32(len(body))), body))
	return wasmModule(secs...)
}

// spinBody loops param-0 times (0 means 2^32), and in every iteration
// sets each global in sets to 0x7fffffff.
func spinBody(sets ...uint32) []byte {
	b := []byte{0, 0x03, 0x40}
	for _, g := range sets {
		b = append(b, 0x41)
		b = appendS32(b, 0x7fffffff)
		b = append(b, 0x24)
		b = appendU32(b, g)
	}
	return append(b, 0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b, 0x0b)
}

// The 18-byte file that killed the node: one function type declaring
// 2^32-1 parameters. wazero allocated from the count before reading it.
const bomb18 = "0061736d0100000001080160ffffffff0f00"

func TestInstrumentBoundsCounts(t *testing.T) {
	bomb, _ := hex.DecodeString(bomb18)
	huge := u32(0xffffffff)
	for _, tc := range []struct {
		name string
		mod  []byte
		want string
	}{
		{"18-byte params bomb", bomb, "type section: 4294967295 parameters in type 0 declared, more than the 1000 allowed"},
		{"results", wasmModule(sec(secType, u32(1), []byte{0x60, 0}, u32(900), make([]byte, 10))), "type section: 900 results in type 0 declared, but only 10 bytes remain"},
		{"types", wasmModule(sec(secType, huge)), "type section: 4294967295 types declared"},
		{"imports", wasmModule(sec(secImport, u32(50_000), make([]byte, 8))), "import section: 50000 imports declared, but only 8 bytes remain"},
		{"functions", wasmModule(sec(secType, u32(1), []byte{0x60, 0, 0}), sec(secFunction, huge)), "function section: 4294967295 functions declared"},
		{"tables", wasmModule(sec(secTable, huge)), "table section: 4294967295 tables declared"},
		{"table size", wasmModule(sec(secTable, u32(1), []byte{0x70, 0}, huge)), "table section: table: initial size 4294967295, more than the 1048576 allowed"},
		{"memory size", wasmModule(sec(secMemory, u32(1), []byte{0}, u32(70_000))), "memory section: memory: initial size 70000, more than the 65536 allowed"},
		{"globals", wasmModule(sec(secGlobal, huge)), "global section: 4294967295 globals declared"},
		{"exports", wasmModule(sec(secExport, u32(90_000), make([]byte, 9))), "export section: 90000 exports declared"},
		{"elements", wasmModule(sec(secElement, huge)), "element section: 4294967295 element segments declared"},
		{"data", wasmModule(sec(secData, huge)), "data section: 4294967295 data segments declared"},
		{"data count", wasmModule(sec(secDataCount, huge)), "data count section: 4294967295 data segments declared"},
		{"locals", spinModule(nil, cat(u32(1), huge, []byte{0x7f, 0x0b})), "code section: function 0: 4294967295 locals declared, more than the 50000 allowed"},
		{"body size", wasmModule(sec(secType, u32(1), []byte{0x60, 0, 0}), sec(secFunction, u32(1), u32(0)), sec(secCode, u32(1), u32(8_000_000))), "code section: function 0: body of 8000000 bytes"},
		{"bodies", wasmModule(sec(secType, u32(1), []byte{0x60, 0, 0}), sec(secFunction, u32(1), u32(0)), sec(secCode, u32(3), make([]byte, 6))), "code section: 3 function bodies, but the function section declares 1"},
		{"names", wasmModule(sec(secCustom, name("name"), []byte{1}, u32(5), huge)), "name section: subsection 1: 4294967295 function names declared"},
		{"custom name", wasmModule([]byte{0, 3, 10, 'a', 'b'}), "custom section at offset 8: name"},
		{"section order", wasmModule(sec(secFunction, u32(0)), sec(secType, u32(0))), "type section at offset 11 is out of order or repeated"},
		{"unknown section", wasmModule(sec(14, nil)), "unknown section id 14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Instrument(tc.mod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Instrument(%x) = %v, want an error containing %q", tc.mod, err, tc.want)
			}
		})
	}
}

// An index one past the original entries names what the rewrite appends:
// the fuel counter, the tick type or the tick import. Each must be
// refused as out of range, as wazero refuses it in the original.
func TestInstrumentRefusesIndexesPastTheOriginal(t *testing.T) {
	mutI32 := []byte{0x7f, 1, 0x41, 0, 0x0b}
	for _, tc := range []struct {
		name string
		mod  []byte
		want string
	}{
		{"global.set of the fuel counter", spinModule(nil, spinBody(0)), "code section: function 0: global index 0 out of range (the module has 0)"},
		{"global.set past two globals", spinModule(cat(u32(2), mutI32, mutI32), spinBody(0, 1, 2)), "global index 2 out of range (the module has 2)"},
		{"global.get in an initializer", wasmModule(sec(secGlobal, u32(1), []byte{0x7f, 0, 0x23, 1, 0x0b})), "global section: global 0 initializer: global index 1 out of range (the module has 1)"},
		{"export of the fuel counter", wasmModule(sec(secExport, u32(1), name("fuel"), []byte{3}, u32(0))), "export section: global index 0 out of range"},
		{"function of the tick type", wasmModule(sec(secType, u32(0)), sec(secFunction, u32(1), u32(0)), sec(secCode, u32(1), u32(4), []byte{0, 0x41, 0, 0x0b})), "function section: type index 0 out of range (the module has 0)"},
		{"import of the tick type", wasmModule(sec(secType, u32(0)), sec(secImport, u32(1), name("m"), name("f"), []byte{0}, u32(0))), "import section: type index 0 out of range"},
		{"call_indirect of the tick type", spinModule(nil, []byte{0, 0x41, 0, 0x11, 1, 0, 0x1a, 0x0b}), "type index 1 out of range (the module has 1)"},
		{"block of the tick type", spinModule(nil, []byte{0, 0x02, 1, 0x1a, 0x0b, 0x0b}), "block type index 1 out of range"},
		{"call past the last function", spinModule(nil, []byte{0, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0b}), "function index 4294967295 out of range"},
		{"start past the last function", wasmModule(sec(secStart, u32(0))), "start section: function index 0 out of range"},
		{"element of a missing function", wasmModule(sec(secElement, u32(1), []byte{1, 0}, u32(1), u32(0))), "element section: function index 0 out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Instrument(tc.mod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Instrument = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

var errStop = errors.New("stopped by the host")

// A guest that writes every global it can name, in a loop the host must
// stop: it still ticks once per Period iterations, and when the tick
// refuses to refill, the call ends.
func TestGuestWritingEveryGlobalIsStopped(t *testing.T) {
	mutI32 := []byte{0x7f, 1, 0x41, 0, 0x0b}
	mod := spinModule(cat(u32(3), mutI32, mutI32, mutI32), spinBody(0, 1, 2))
	out, err := Instrument(mod)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	ticks, stop := 0, false
	const stopAfter = 5
	_, err = rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
			ticks++
			if stop && ticks >= stopAfter {
				panic(errStop) // what the host does at a deadline
			}
			s[0] = Period
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(ImportTick).
		NewFunctionBuilder().WithGoModuleFunction(growImport, i32, i32).Export(ImportGrow).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	spin := m.ExportedFunction("spin")
	if _, err := spin.Call(ctx, 1_000_000); err != nil {
		t.Fatal(err)
	}
	if ticks < 1_000_000/Period-1 {
		t.Fatalf("1e6 iterations writing every global made %d ticks, want about %d", ticks, 1_000_000/Period)
	}
	ticks, stop = 0, true
	_, err = spin.Call(ctx, 0) // 2^32 iterations: only the tick can end it
	if !errors.Is(err, errStop) {
		t.Fatalf("spin(2^32) = %v, want it stopped by the tick", err)
	}
	if ticks != stopAfter {
		t.Fatalf("stopped after %d ticks, want %d", ticks, stopAfter)
	}
}
