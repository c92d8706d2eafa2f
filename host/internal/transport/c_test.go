package transport

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pycomms/pycomms-host/host/internal/plugin"
)

// TestCTransport builds sdk/c/testdata/transport_lines.c with the C SDK's
// transport half (clang-14 and wasi-libc; skipped without them, except in
// CI) and runs it: lines come back, a partial one waits, a routed request
// is written and answered.
func TestCTransport(t *testing.T) {
	clang, err := exec.LookPath("clang-14")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("clang-14 not found (required when CI=true): install it with scripts/install-toolchains.sh")
		}
		t.Skip("clang-14 not found")
	}
	sdk := filepath.Join("..", "..", "..", "sdk", "c")
	out := filepath.Join(t.TempDir(), "lines.wasm")
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wextra", "-Werror",
		"-Wl,--strip-all", "-I", sdk, "-o", out, filepath.Join(sdk, "testdata", "transport_lines.c"), filepath.Join(sdk, "pycomms_transport.c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := plugin.NewEngine(plugin.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	if k, err := plugin.KindOf(t.Context(), wasm); err != nil || k != "transport" {
		t.Fatalf("the C transport's kind: %q, %v", k, err)
	}
	g := startWasm(t, wasm, Config{Accept: []string{"127.0.0.1:0"}}, []string{"c"}, nil)
	c := dialTo(t, g.tr)
	waitFor(t, "the connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	c.Write([]byte("ab\ncd"))
	if got := readN(t, c, 3); got != "ab\n" {
		t.Fatalf("read %q", got)
	}
	c.Write([]byte("\n"))
	if got := readN(t, c, 3); got != "cd\n" {
		t.Fatalf("read %q, want the kept partial line", got)
	}
	reply, err := call(g.r, "c.x", "out")
	if err != nil || string(reply) != "out" {
		t.Fatalf("request through the C transport: %q, %v", reply, err)
	}
	if got := readN(t, c, 3); got != "out" {
		t.Fatalf("peer read %q", got)
	}
}
