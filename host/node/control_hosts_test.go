package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlAllowHosts: control.allow_hosts extends the Host names the
// control API accepts, and the 403 for any other name names that key.
func TestControlAllowHosts(t *testing.T) {
	dir := t.TempDir()
	cfg := "control: {listen: 127.0.0.1:0, allow_hosts: [Pycomms.Internal]}\n" +
		"listen: {tcp: '', quic: ''}\n" +
		"cache_dir: " + sharedCache + "\n" +
		"data_dir: " + filepath.Join(dir, "data") + "\n" +
		"plugins: [{name: echo, path: 'builtin:echo', services: [echo]}]\n"
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	get := func(host string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+n.ControlAddr()+"/v1/health", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("pycomms.internal:7480"); code != 200 {
		t.Errorf("Host pycomms.internal (listed in control.allow_hosts): %d %s", code, body)
	}
	if code, body := get("localhost"); code != 200 {
		t.Errorf("Host localhost: %d %s", code, body)
	}
	code, body := get("evil.example:7480")
	if code != 403 || !strings.Contains(body, "control.allow_hosts") || !strings.Contains(body, `"status":"denied"`) {
		t.Errorf("Host evil.example: %d %s, want 403 denied naming control.allow_hosts", code, body)
	}
}
