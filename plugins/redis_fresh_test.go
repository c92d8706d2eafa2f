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

// TestRedisWasmIsFresh: redis/redis.wasm is what
// mkwasm.go builds from source today (with the Go version that
// built it; another version skips), and it is a transport plugin by its
// exports.
func TestRedisWasmIsFresh(t *testing.T) {
	committed, err := os.ReadFile("redis/redis.wasm")
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
		t.Errorf("redis.wasm is not a transport by its exports: %q, %v", k, err)
	}
	if testing.Short() {
		t.Skip("rebuilds redis.wasm, which takes seconds: skipped with -short")
	}
	v, err := os.ReadFile("redis/redis.wasm.go-version")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	if running := strings.TrimSpace(string(out)); running != strings.TrimSpace(string(v)) {
		t.Skipf("redis.wasm was built with %s but this is %s", strings.TrimSpace(string(v)), running)
	}
	rebuilt := filepath.Join(t.TempDir(), "redis.wasm")
	if out, err := exec.Command("go", "run", "./mkwasm.go", "-o", rebuilt, "redis").CombinedOutput(); err != nil {
		t.Fatalf("go run ./mkwasm.go redis: %v\n%s", err, out)
	}
	fresh, err := os.ReadFile(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Errorf("redis/redis.wasm is stale (%d bytes rebuilt, %d committed): run `go generate ./plugins/...` and commit it", len(fresh), len(committed))
	}
}
