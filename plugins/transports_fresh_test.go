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

// TestGoTransportsAreFresh: each bundled Go transport's DIR/DIR.wasm is
// what mkwasm.go builds from source today (with the Go version that built
// it; another version skips), and it is a transport plugin by its exports.
func TestGoTransportsAreFresh(t *testing.T) {
	for _, dir := range []string{"linejson", "redis"} {
		t.Run(dir, func(t *testing.T) { checkGoTransportFresh(t, dir) })
	}
}

func checkGoTransportFresh(t *testing.T, dir string) {
	wasm := filepath.Join(dir, dir+".wasm")
	committed, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	checkTransportExports(t, wasm, committed)
	checkGoBuildFresh(t, dir, committed)
}

// checkGoBuildFresh fails t unless committed is what mkwasm.go builds from
// DIR today; it skips with -short and when the Go version differs from
// the one recorded in DIR/DIR.wasm.go-version.
func checkGoBuildFresh(t *testing.T, dir string, committed []byte) {
	t.Helper()
	wasm := filepath.Join(dir, dir+".wasm")
	if testing.Short() {
		t.Skipf("rebuilds %s, which takes seconds: skipped with -short", wasm)
	}
	v, err := os.ReadFile(wasm + ".go-version")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	if running := strings.TrimSpace(string(out)); running != strings.TrimSpace(string(v)) {
		t.Skipf("%s was built with %s but this is %s", wasm, strings.TrimSpace(string(v)), running)
	}
	rebuilt := filepath.Join(t.TempDir(), dir+".wasm")
	if out, err := exec.Command("go", "run", "./mkwasm.go", "-o", rebuilt, dir).CombinedOutput(); err != nil {
		t.Fatalf("go run ./mkwasm.go %s: %v\n%s", dir, err, out)
	}
	fresh, err := os.ReadFile(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Errorf("%s is stale (%d bytes rebuilt, %d committed): run `go generate ./plugins/...` and commit it", wasm, len(fresh), len(committed))
	}
}

// checkTransportExports fails t unless the module is a transport plugin by
// its exports (abi.KindOf).
func checkTransportExports(t *testing.T, name string, module []byte) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, module)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range cm.ExportedFunctions() {
		names = append(names, n)
	}
	if k, err := abi.KindOf(names); k != abi.PluginTransport {
		t.Errorf("%s is not a transport by its exports: %q, %v", name, k, err)
	}
}

// checkCodecExports fails t unless the module is a codec plugin by its
// exports (abi.KindOf).
func checkCodecExports(t *testing.T, name string, module []byte) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, module)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range cm.ExportedFunctions() {
		names = append(names, n)
	}
	if k, err := abi.KindOf(names); k != abi.PluginCodec {
		t.Errorf("%s is not a codec by its exports: %q, %v", name, k, err)
	}
}
