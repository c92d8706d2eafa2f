package hosttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildWasmC compiles C sources into a WASI reactor module with clang-14
// and wasi-libc, the way scripts/build-fixtures.sh builds the C plugins
// (warnings are errors), with include as the include directory, and
// returns the module. Without clang-14 the test is skipped, or fails when
// CI=true: CI must run it.
func BuildWasmC(t testing.TB, include string, sources ...string) []byte {
	t.Helper()
	clang, err := exec.LookPath("clang-14")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("clang-14 not found (required when CI=true): install it with scripts/install-toolchains.sh")
		}
		t.Skip("clang-14 not found")
	}
	out := filepath.Join(t.TempDir(), "module.wasm")
	args := append([]string{"--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wextra", "-Werror",
		"-Wl,--strip-all", "-I", include, "-o", out}, sources...)
	cmd := exec.Command(clang, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}
