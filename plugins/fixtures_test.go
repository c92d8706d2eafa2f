package plugins

// Checks on the checked-in Wasm artifacts: the WAT fixtures in testdata/wat
// and the C example plugin plugins/hello-c.
//
//   - Freshness: every .wasm must be exactly what scripts/build-fixtures.sh
//     builds from its source today. The tests rebuild into a temporary
//     directory and compare bytes. They need wat2wasm (and clang-14 for
//     hello-c); locally they skip when a tool is missing, in CI (CI=true)
//     they fail. Install the tools with scripts/install-toolchains.sh.
//   - ABI shape: every module compiles with wazero and has the exports and
//     imports ABI v1 requires, named after the abi package.
//
// What the fixtures do when run is tested through the real runtime in
// host/internal/plugin, not here.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/pycomms/pycomms-host/abi"
)

// repoRoot is the repository root, seen from this package's directory
// (go test runs in plugins/).
const repoRoot = ".."

const (
	watDir        = "testdata/wat"
	helloWasm     = "plugins/hello-c/hello.wasm"
	helloToolchID = "plugins/hello-c/hello.wasm.clang-version"
	notWasm       = "notwasm.wasm" // deliberately not a module; has no .wat
	noExport      = "noexport.wasm"
	wasiModule    = wasi_snapshot_preview1.ModuleName
	buildScript   = "scripts/build-fixtures.sh"
)

// wantFixtures are the WAT fixtures other packages' tests rely on.
var wantFixtures = []string{
	"echo", "echo_a", "echo_b", "loop", "memgrow", "biggrow", "status", "initloop", "badwrite", "trap", "badptr", "badalloc",
	"nogrant", "bigreply", "wrongabi", "noexport", "caller", "publisher", "batch", "badbatch", "badbatchsig", "headers",
	"transport_echo", "transport_loop", "transport_foreign", "transport_baddial", "transport_garbage", "transport_noread", "transport_frames",
	"transport_replyh", "queue_worker",
}

var i32 = api.ValueTypeI32

// importParams are the parameter types of every pycomms:host/v1 import
// (abi/SPEC.md section 4); each returns one i32.
var importParams = map[string][]api.ValueType{
	abi.ImportReply:     {i32, i32},
	abi.ImportLog:       {i32, i32, i32},
	abi.ImportPublish:   {i32, i32, i32, i32},
	abi.ImportSend:      {i32, i32, i32, i32},
	abi.ImportCall:      {i32, i32, i32, i32, i32},
	abi.ImportResult:    {i32, i32},
	abi.ImportConfig:    {i32, i32},
	abi.ImportConfigGet: {i32, i32, i32, i32},
	abi.ImportHeader:    {i32, i32, i32, i32},
	// headers on outgoing messages and replies (abi/SPEC.md section 10)
	abi.ImportPublishH:      {i32, i32, i32, i32, i32, i32},
	abi.ImportSendH:         {i32, i32, i32, i32, i32, i32},
	abi.ImportCallH:         {i32, i32, i32, i32, i32, i32, i32},
	abi.ImportResultHeader:  {i32, i32, i32, i32},
	abi.ImportResultHeaders: {i32, i32},
	abi.ImportReplyH:        {i32, i32, i32, i32},
	// transport actions (abi/SPEC.md section 13.3)
	abi.ImportConnWrite: {i32, i32, i32},
	abi.ImportConnOpen:  {i32},
	abi.ImportConnClose: {i32},
	abi.ImportTimerSet:  {i32, i32},
	abi.ImportDeliver:   {i32, i32, i32, i32, i32, i32},
	abi.ImportRespond:   {i32, i32, i32, i32},
	abi.ImportRespondH:  {i32, i32, i32, i32, i32, i32},
}

// exportSigs are the signatures of the guest exports (abi/SPEC.md section 3).
var exportSigs = map[string]struct{ params, results []api.ValueType }{
	abi.ExportABIVersion: {nil, []api.ValueType{i32}},
	abi.ExportAlloc:      {[]api.ValueType{i32}, []api.ValueType{i32}},
	abi.ExportHandle:     {[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}},
	abi.ExportInitialize: {nil, nil},
	// transport plugins (abi/SPEC.md section 13.1)
	abi.ExportTransportEvent: {[]api.ValueType{i32, i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}},
	// codec plugins (abi/SPEC.md section 14.1)
	abi.ExportCodecPairs:   {nil, []api.ValueType{i32}},
	abi.ExportCodecConvert: {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
}

func inRepo(rel string) string { return filepath.Join(repoRoot, filepath.FromSlash(rel)) }

// requireTool skips the test when a build tool is missing from PATH, except
// in CI (CI=true), where a missing tool is a failure.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	msg := name + " not found on PATH: install it with scripts/install-toolchains.sh"
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (required when CI=true)", msg)
	}
	t.Skip(msg)
}

// build runs scripts/build-fixtures.sh for one target into a temporary
// directory and returns that directory.
func build(t *testing.T, target string) string {
	t.Helper()
	requireTool(t, "bash")
	out := t.TempDir()
	cmd := exec.Command("bash", buildScript, "--out", out, target)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s --out %s %s: %v\n%s", buildScript, out, target, err, b)
	}
	return out
}

func watSources(t *testing.T) []string {
	t.Helper()
	srcs, err := filepath.Glob(filepath.Join(inRepo(watDir), "*.wat"))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) == 0 {
		t.Fatalf("no .wat files in %s", watDir)
	}
	sort.Strings(srcs)
	return srcs
}

func TestWATFixturesAreFresh(t *testing.T) {
	requireTool(t, "wat2wasm")
	out := build(t, "wat")
	for _, src := range watSources(t) {
		name := strings.TrimSuffix(filepath.Base(src), ".wat") + ".wasm"
		rel := watDir + "/" + name
		committed, err := os.ReadFile(inRepo(rel))
		if err != nil {
			t.Errorf("%s: %v (run %s)", rel, err, buildScript)
			continue
		}
		fresh, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatalf("%s was not rebuilt: %v", rel, err)
		}
		if !bytes.Equal(committed, fresh) {
			t.Errorf("%s is stale: it differs from what %s builds from %s (%d vs %d bytes); run %s and commit the result",
				rel, buildScript, strings.TrimSuffix(rel, ".wasm")+".wat", len(committed), len(fresh), buildScript)
		}
	}
}

func TestHelloCIsFresh(t *testing.T) {
	requireTool(t, "clang-14")
	out := build(t, "c")
	committedID, err := os.ReadFile(inRepo(helloToolchID))
	if err != nil {
		t.Fatalf("%v (run %s)", err, buildScript)
	}
	localID, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(helloToolchID)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committedID, localID) {
		t.Skipf("%s was built with a different toolchain, so its bytes are not compared:\ncommitted:\n%slocal:\n%s",
			helloWasm, committedID, localID)
	}
	committed, err := os.ReadFile(inRepo(helloWasm))
	if err != nil {
		t.Fatalf("%v (run %s)", err, buildScript)
	}
	fresh, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(helloWasm)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, fresh) {
		t.Errorf("%s is stale: it differs from what %s builds from plugins/hello-c/plugin.c and sdk/c (%d vs %d bytes); run %s and commit the result",
			helloWasm, buildScript, len(committed), len(fresh), buildScript)
	}
}

// TestFixtureSet checks that every fixture other tests rely on is there,
// with its source, and that every source starts with the header comment
// that says what it does.
func TestFixtureSet(t *testing.T) {
	for _, name := range wantFixtures {
		for _, ext := range []string{".wat", ".wasm"} {
			if _, err := os.Stat(inRepo(watDir + "/" + name + ext)); err != nil {
				t.Errorf("missing fixture: %v", err)
			}
		}
	}
	if _, err := os.Stat(inRepo(watDir + "/" + notWasm)); err != nil {
		t.Errorf("missing fixture: %v", err)
	}
	for _, src := range watSources(t) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(src)
		if !bytes.HasPrefix(b, []byte(";; "+base+" - ")) || !bytes.Contains(b, []byte("What the host must answer")) {
			t.Errorf("%s/%s: must start with a header comment \";; %s - ...\" saying what it does and \"What the host must answer\"",
				watDir, base, base)
		}
	}
	// Every module has a source, except the one that is not a module.
	wasms, err := filepath.Glob(filepath.Join(inRepo(watDir), "*.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wasms {
		if filepath.Base(w) == notWasm {
			continue
		}
		if _, err := os.Stat(strings.TrimSuffix(w, ".wasm") + ".wat"); err != nil {
			t.Errorf("%s/%s has no source: %v", watDir, filepath.Base(w), err)
		}
	}
}

// TestFixturesMatchABI compiles every module with wazero and checks its
// exports and imports against the abi package.
func TestFixturesMatchABI(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	wasiFuncs := r.Module(wasiModule).ExportedFunctionDefinitions()

	modules := map[string]string{helloWasm: inRepo(helloWasm)} // rel -> path
	for _, src := range watSources(t) {
		rel := watDir + "/" + strings.TrimSuffix(filepath.Base(src), ".wat") + ".wasm"
		modules[rel] = inRepo(rel)
	}
	rels := make([]string, 0, len(modules))
	for rel := range modules {
		rels = append(rels, rel)
	}
	sort.Strings(rels)

	for _, rel := range rels {
		t.Run(rel, func(t *testing.T) {
			bin, err := os.ReadFile(modules[rel])
			if err != nil {
				t.Fatal(err)
			}
			cm, err := r.CompileModule(ctx, bin)
			if err != nil {
				t.Fatalf("does not compile: %v", err)
			}
			defer cm.Close(ctx)

			wantExports := []string{abi.ExportABIVersion, abi.ExportAlloc, abi.ExportHandle}
			if filepath.Base(rel) == noExport {
				wantExports = wantExports[:2]
				if _, ok := cm.ExportedFunctions()[abi.ExportHandle]; ok {
					t.Errorf("exports %s, but this fixture must not", abi.ExportHandle)
				}
			}
			if _, ok := cm.ExportedFunctions()[abi.ExportTransportEvent]; ok {
				wantExports[2] = abi.ExportTransportEvent // a transport (SPEC section 13)
			}
			if _, ok := cm.ExportedFunctions()[abi.ExportCodecConvert]; ok {
				// a codec (SPEC section 14); codec_both also exports
				// pycomms_handle, which the host refuses
				wantExports = append(wantExports[:2], abi.ExportCodecConvert, abi.ExportCodecPairs)
			}
			if rel == helloWasm { // a WASI reactor
				wantExports = append(wantExports, abi.ExportInitialize)
			}
			for _, name := range wantExports {
				def, ok := cm.ExportedFunctions()[name]
				if !ok {
					t.Errorf("missing export %s", name)
					continue
				}
				want := exportSigs[name]
				if !sameTypes(def.ParamTypes(), want.params) || !sameTypes(def.ResultTypes(), want.results) {
					t.Errorf("export %s: signature %s, want %s",
						name, sig(def.ParamTypes(), def.ResultTypes()), sig(want.params, want.results))
				}
			}
			if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
				t.Errorf("missing memory export %q", abi.ExportMemory)
			}
			if n := len(cm.ImportedMemories()); n != 0 {
				t.Errorf("imports %d memories; a plugin must define its own", n)
			}

			for _, def := range cm.ImportedFunctions() {
				mod, name, _ := def.Import()
				switch mod {
				case abi.ImportModule:
					params, ok := importParams[name]
					if !ok {
						t.Errorf("imports unknown host function %s.%s", mod, name)
						continue
					}
					if !sameTypes(def.ParamTypes(), params) || !sameTypes(def.ResultTypes(), []api.ValueType{i32}) {
						t.Errorf("import %s.%s: signature %s, want %s", mod, name,
							sig(def.ParamTypes(), def.ResultTypes()), sig(params, []api.ValueType{i32}))
					}
				case wasiModule:
					want, ok := wasiFuncs[name]
					if !ok {
						t.Errorf("imports %s.%s, which wazero does not provide", mod, name)
						continue
					}
					if !sameTypes(def.ParamTypes(), want.ParamTypes()) || !sameTypes(def.ResultTypes(), want.ResultTypes()) {
						t.Errorf("import %s.%s: signature %s, want %s", mod, name,
							sig(def.ParamTypes(), def.ResultTypes()), sig(want.ParamTypes(), want.ResultTypes()))
					}
				default:
					t.Errorf("imports %s.%s: only %q and %q are resolvable", mod, name, abi.ImportModule, wasiModule)
				}
			}
		})
	}
}

// TestImportTableCoversABI keeps importParams, this test's own reading of
// abi/SPEC.md, in step with the abi package's import table.
func TestImportTableCoversABI(t *testing.T) {
	for _, im := range append(abi.Imports(), abi.TransportImports()...) {
		params, ok := importParams[im.Name]
		if !ok {
			t.Errorf("abi import %q has no signature in importParams (add it from abi/SPEC.md)", im.Name)
		} else if len(params) != len(im.Params) {
			t.Errorf("abi import %q: importParams has %d parameters, abi.Imports %d", im.Name, len(params), len(im.Params))
		}
	}
	for name := range importParams {
		if _, ok := abi.ImportCapability(name); !ok && !abi.IsTransportImport(name) {
			t.Errorf("importParams lists %q, which the abi package does not define", name)
		}
	}
}

func TestNotWasmIsRefused(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	bin, err := os.ReadFile(inRepo(watDir + "/" + notWasm))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := r.CompileModule(ctx, bin)
	if err == nil {
		cm.Close(ctx)
		t.Fatalf("%s/%s compiled; it must be refused", watDir, notWasm)
	}
	t.Logf("refused as expected: %v", err)
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return names(params) + " -> " + names(results)
}
