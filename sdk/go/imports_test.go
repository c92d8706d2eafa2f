package pycomms

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/tetratelabs/wazero"
)

// TestHeaderImportsOnlyWhenUsed builds the SDK's example plugin, which
// sends no headers and sets no reply header, and checks that it imports
// none of the header imports (publish_h, send_h, call_h, result_header,
// result_headers, reply_h): a plugin rebuilt with this SDK but not using
// headers keeps loading on hosts that predate them.
func TestHeaderImportsOnlyWhenUsed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	out := filepath.Join(t.TempDir(), "example.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./example")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	mod, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	headerImports := []string{abi.ImportPublishH, abi.ImportSendH, abi.ImportCallH,
		abi.ImportResultHeader, abi.ImportResultHeaders, abi.ImportReplyH}
	var pycomms []string
	for _, f := range mod.ImportedFunctions() {
		module, name, _ := f.Import()
		if module != abi.ImportModule {
			continue
		}
		pycomms = append(pycomms, name)
		if slices.Contains(headerImports, name) {
			t.Errorf("the example plugin imports %q although it uses no headers", name)
		}
	}
	if len(pycomms) == 0 {
		t.Fatalf("the example plugin imports nothing from %s: the check would prove nothing", abi.ImportModule)
	}
}
