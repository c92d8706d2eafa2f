package plugins

// Checks on the committed build of the echo plugin (echo/echo.wasm):
//
//   - Freshness: rebuilt with mkwasm.go (what go generate runs), it
//     must be byte-identical to the committed file. Only the Go version that
//     built it reproduces it, so with another Go version the test skips and
//     names both.
//   - ABI shape: wazero compiles it, and its exports and imports are exactly
//     what ABI v1 asks of a Go plugin, by the abi package's names and with
//     SPEC.md's signatures.
//
// What echo does when run is tested end to end through the real runtime in
// host/internal/plugin, not here.

import (
	"bufio"
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/pycomms/pycomms-host/abi"
)

// Paths relative to this package's directory, where go test runs.
const (
	echoWasmPath    = "echo/echo.wasm"
	echoVersionPath = "echo/echo.wasm.go-version"
	echoBuildScript = "./mkwasm.go"
	echoSpecPath    = "../abi/SPEC.md"
)

func TestEchoWasmIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds echo.wasm, which takes seconds: skipped with -short")
	}
	committed, err := os.ReadFile(echoWasmPath)
	if err != nil {
		t.Fatal(err)
	}
	v, err := os.ReadFile(echoVersionPath)
	if err != nil {
		t.Fatal(err)
	}
	builtWith := strings.TrimSpace(string(v))
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatalf("go env GOVERSION: %v", err)
	}
	running := strings.TrimSpace(string(out))
	if running != builtWith {
		t.Skipf("%s was built with %s but this is %s: only the same Go version reproduces it byte for byte", echoWasmPath, builtWith, running)
	}

	rebuilt := filepath.Join(t.TempDir(), "echo.wasm")
	cmd := exec.Command("go", "run", echoBuildScript, "-o", rebuilt, "echo")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run %s -o %s: %v\n%s", echoBuildScript, rebuilt, err, out)
	}
	fresh, err := os.ReadFile(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Errorf("%s is stale: a rebuild from source gives %d bytes, the committed file has %d; run `go generate ./plugins/...` and commit %s",
			echoWasmPath, len(fresh), len(committed), echoWasmPath)
	}
	if fv, err := os.ReadFile(rebuilt + ".go-version"); err != nil || string(fv) != string(v) {
		t.Errorf("the build script wrote Go version %q (%v), the committed %s says %q", fv, err, echoVersionPath, v)
	}
}

func TestEchoWasmMatchesABI(t *testing.T) {
	wasm, ok := Builtin("echo")
	if !ok {
		t.Fatal(`Builtin("echo") not found`)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatalf("wazero cannot compile echo.wasm: %v", err)
	}
	spec := echoSpecSignatures(t)

	// Exports: the four ABI functions, the memory, and _initialize, which
	// every Go reactor has; nothing else.
	var exports []string
	for name, def := range cm.ExportedFunctions() {
		exports = append(exports, name)
		echoCheckSignature(t, "export "+name, def, spec)
	}
	slices.Sort(exports)
	wantExports := []string{abi.ExportABIVersion, abi.ExportAlloc, abi.ExportHandle, abi.ExportHandleBatch, abi.ExportInitialize}
	slices.Sort(wantExports)
	if !slices.Equal(exports, wantExports) {
		t.Errorf("echo.wasm exports functions %v, want exactly %v", exports, wantExports)
	}
	var memories []string
	for name := range cm.ExportedMemories() {
		memories = append(memories, name)
	}
	if !slices.Equal(memories, []string{abi.ExportMemory}) {
		t.Errorf("echo.wasm exports memories %v, want [%s]", memories, abi.ExportMemory)
	}

	// Imports: only the pycomms module and WASI preview 1; echo uses every
	// host function the Go SDK uses, so it imports each one the abi
	// package defines but goSDKUnused.
	var pycommsImports []string
	for _, def := range cm.ImportedFunctions() {
		module, name, _ := def.Import()
		switch module {
		case abi.ImportModule:
			if _, known := abi.ImportCapability(name); !known {
				t.Errorf("echo.wasm imports %s.%s, which is not an abi import", module, name)
			}
			pycommsImports = append(pycommsImports, name)
			echoCheckSignature(t, "import "+name, def, spec)
		case wasi_snapshot_preview1.ModuleName:
		default:
			t.Errorf("echo.wasm imports %s.%s: only %q and %q can be resolved", module, name, abi.ImportModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	slices.Sort(pycommsImports)
	var allImports []string
	for _, im := range abi.Imports() {
		if _, unused := goSDKUnused[im.Name]; !unused {
			allImports = append(allImports, im.Name)
		}
	}
	slices.Sort(allImports)
	if !slices.Equal(pycommsImports, allImports) {
		t.Errorf("echo.wasm imports %v from %s, want every abi import but %v: %v", pycommsImports, abi.ImportModule, slices.Collect(maps.Keys(goSDKUnused)), allImports)
	}
	if n := len(cm.ImportedMemories()); n != 0 {
		t.Errorf("echo.wasm imports %d memories, want none", n)
	}
}

// goSDKUnused are the abi imports the Go SDK has no use for, and why; a
// test elsewhere covers each (host/internal/plugin: headers.wat and the C
// SDK's sdk/c/testdata/headers.c).
var goSDKUnused = map[string]string{
	abi.ImportResultHeader: "CallWith reads every reply header at once with result_headers; result_header is for plugins without a CBOR decoder",
}

func TestBuiltin(t *testing.T) {
	if names := BuiltinNames(); !slices.Contains(names, "echo") || !slices.IsSorted(names) {
		t.Errorf("BuiltinNames() = %v, want a sorted list with echo", names)
	}
	wasm, ok := Builtin("echo")
	if !ok || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		t.Errorf(`Builtin("echo") = %d bytes, %v; want a Wasm module`, len(wasm), ok)
	}
	onDisk, err := os.ReadFile(echoWasmPath)
	if err != nil || !bytes.Equal(onDisk, wasm) {
		t.Errorf("the embedded echo differs from %s (%v)", echoWasmPath, err)
	}
	if _, ok := Builtin("no-such-plugin"); ok {
		t.Error(`Builtin("no-such-plugin") found something`)
	}
}

// echoCheckSignature compares a function's Wasm signature with SPEC.md's
// (every ABI value is an i32).
func echoCheckSignature(t *testing.T, what string, def api.FunctionDefinition, spec map[string]echoSig) {
	t.Helper()
	name := def.ExportNames()
	key := ""
	if _, n, ok := def.Import(); ok {
		key = n
	} else if len(name) > 0 {
		key = name[0]
	}
	want, ok := spec[key]
	if !ok {
		t.Errorf("%s: SPEC.md has no signature for %q", what, key)
		return
	}
	if !echoAllI32(def.ParamTypes(), want.params) || !echoAllI32(def.ResultTypes(), want.results) {
		t.Errorf("%s: params %v results %v, SPEC.md says %d i32 params and %d i32 results",
			what, def.ParamTypes(), def.ResultTypes(), want.params, want.results)
	}
}

func echoAllI32(types []api.ValueType, n int) bool {
	if len(types) != n {
		return false
	}
	for _, typ := range types {
		if typ != api.ValueTypeI32 {
			return false
		}
	}
	return true
}

type echoSig struct{ params, results int }

// echoSpecRow matches a signature row of SPEC.md's export and import
// tables: | `name` | `(a i32, b i32) -> i32` | ...
var echoSpecRow = regexp.MustCompile("^\\|\\s*`([a-z_]+)`\\s*\\|\\s*`\\(([^)]*)\\)\\s*->\\s*(i32|\\(\\))`")

// echoSpecSignatures reads the i32 arity of every function in SPEC.md.
func echoSpecSignatures(t *testing.T) map[string]echoSig {
	t.Helper()
	f, err := os.Open(echoSpecPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sigs := map[string]echoSig{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := echoSpecRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var sig echoSig
		if strings.TrimSpace(m[2]) != "" {
			for _, p := range strings.Split(m[2], ",") {
				if !strings.HasSuffix(strings.TrimSpace(p), " i32") {
					t.Fatalf("%s: %s: parameter %q is not an i32", echoSpecPath, m[1], p)
				}
				sig.params++
			}
		}
		if m[3] == "i32" {
			sig.results = 1
		}
		sigs[m[1]] = sig
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(sigs) == 0 {
		t.Fatalf("%s: found no signature rows", echoSpecPath)
	}
	return sigs
}
