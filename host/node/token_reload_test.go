package node

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestControlTokenRotatedByReload: control.token_file is read again at
// every reload, so an operator rotates the token by writing the file and
// reloading, the config itself unchanged. The old token is refused from
// then on, the new one accepted; a token file made readable by others
// fails the reload naming the key and leaves the token in force; and
// control.public_metrics applies without a restart.
func TestControlTokenRotatedByReload(t *testing.T) {
	dir := t.TempDir()
	tokFile := writeToken(t, dir)
	controlYAML := "{listen: 127.0.0.1:0, token_file: " + tokFile + "}"
	n, logs := startNodeControl(t, dir, controlYAML, "")
	addr := n.ControlAddr()
	ctx := context.Background()
	oldC := control.NewClient(addr, control.WithBearerToken(metricsToken))
	if _, err := oldC.Plugins(ctx); err != nil {
		t.Fatalf("with the token at start: %v", err)
	}

	const newToken = "rotated-token-0123456789abcdef"
	if err := os.WriteFile(tokFile, []byte(newToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := oldC.Reload(ctx); err != nil { // the reload itself still carries the old token
		t.Fatalf("reload: %v", err)
	}
	if _, err := oldC.Plugins(ctx); message.StatusOf(err) != abi.StatusDenied {
		t.Fatalf("old token after the rotation: %v; want denied", err)
	}
	newC := control.NewClient(addr, control.WithBearerToken(newToken))
	if _, err := newC.Plugins(ctx); err != nil {
		t.Fatalf("new token after the rotation: %v", err)
	}
	if !strings.Contains(logs.String(), "control token replaced") {
		t.Errorf("the reload did not log the replacement:\n%s", logs)
	}

	// A file others can read: the reload fails, naming the key; the
	// token in force stays.
	if err := os.Chmod(tokFile, 0o644); err != nil {
		t.Fatal(err)
	}
	err := newC.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "control.token_file") || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("reload with a token file of mode 0644: %v; want an error naming control.token_file and the mode", err)
	}
	if _, err := newC.Plugins(ctx); err != nil {
		t.Fatalf("after the refused reload, the token in force: %v", err)
	}
	if err := os.Chmod(tokFile, 0o600); err != nil {
		t.Fatal(err)
	}

	// public_metrics, live: /metrics opens without a token.
	get := func() int {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d, want 401", code)
	}
	cfgPath := filepath.Join(dir, "pycomms.yaml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), controlYAML, "{listen: 127.0.0.1:0, token_file: "+tokFile+", public_metrics: true}", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := newC.Reload(ctx); err != nil {
		t.Fatalf("reload with public_metrics: %v", err)
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("/metrics without a token after public_metrics: true: %d, want 200", code)
	}
	if strings.Contains(logs.String(), newToken) || strings.Contains(logs.String(), metricsToken) {
		t.Error("the node's log shows a token")
	}
}
