package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/config"
)

// TestReloadRefusesOversizedConfig checks that the config file size limit
// applies to a reload too: a file grown past config.MaxFileSize is refused
// with its size and the limit, and the running config keeps serving.
func TestReloadRefusesOversizedConfig(t *testing.T) {
	dir := t.TempDir()
	_, c, _ := startNode(t, dir, "plugins:\n  - {name: a, path: "+abs(t, "echo_a.wasm")+", services: [a]}\n")
	ctx := context.Background()
	path := filepath.Join(dir, "pycomms.yaml")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	big := string(orig) + "  - {name: b, path: " + abs(t, "echo_b.wasm") + ", services: [b]}\n"
	big += "#" + strings.Repeat("x", config.MaxFileSize-len(big)) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	err = c.Reload(ctx)
	want := fmt.Sprintf("the config file is %d bytes, more than the limit of 4MiB", len(big))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Reload(oversized file) = %v, want %q", err, want)
	}
	if r, err := c.Call(ctx, "a.x", []byte("1"), nil, 5*time.Second); string(r) != "A:1" || err != nil {
		t.Fatalf("a after the refused reload: %q %v", r, err)
	}
	if _, err := c.Call(ctx, "b.x", nil, nil, 5*time.Second); err == nil {
		t.Fatal("b serves: the oversized config was applied")
	}
}
