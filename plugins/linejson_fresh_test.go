package plugins

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/pycomms/pycomms-host/abi"
)

// TestLinejsonWasmIsFresh: linejson/linejson.wasm is what
// mkwasm.go builds from source today (with the Go version that
// built it; another version skips), and it is a transport plugin by its
// exports.
func TestLinejsonWasmIsFresh(t *testing.T) {
	committed, err := os.ReadFile("linejson/linejson.wasm")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, committed)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range cm.ExportedFunctions() {
		names = append(names, n)
	}
	if k, err := abi.KindOf(names); k != abi.PluginTransport {
		t.Errorf("linejson.wasm is not a transport by its exports: %q, %v", k, err)
	}
	if testing.Short() {
		t.Skip("rebuilds linejson.wasm, which takes seconds: skipped with -short")
	}
	v, err := os.ReadFile("linejson/linejson.wasm.go-version")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	if running := strings.TrimSpace(string(out)); running != strings.TrimSpace(string(v)) {
		t.Skipf("linejson.wasm was built with %s but this is %s", strings.TrimSpace(string(v)), running)
	}
	rebuilt := filepath.Join(t.TempDir(), "linejson.wasm")
	if out, err := exec.Command("go", "run", "./mkwasm.go", "-o", rebuilt, "linejson").CombinedOutput(); err != nil {
		t.Fatalf("go run ./mkwasm.go linejson: %v\n%s", err, out)
	}
	fresh, err := os.ReadFile(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Errorf("linejson/linejson.wasm is stale (%d bytes rebuilt, %d committed): run `go generate ./plugins/...` and commit it", len(fresh), len(committed))
	}
}
