package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
)

// TestTokenFlagAndEnv: against a control API that requires a token, the
// CLI without one exits 8 (other: denied) saying what is missing; with
// --token-file or PYCOMMS_CONTROL_TOKEN it gets through; a token file
// others can read is refused as a usage error naming the flag and the
// mode, and no output shows the token.
func TestTokenFlagAndEnv(t *testing.T) {
	const tok = "cli-token-0123456789abcdef"
	_, addr := controltest.Start(t, controltest.NewBackend(), control.WithToken(tok))
	dir := t.TempDir()
	good, wide := filepath.Join(dir, "good"), filepath.Join(dir, "wide")
	for p, mode := range map[string]os.FileMode{good: 0o600, wide: 0o644} {
		if err := os.WriteFile(p, []byte(tok+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(control.EnvToken, "")

	check := func(name string, r result, code int, want string) {
		t.Helper()
		if r.code != code || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", name, r.code, r.stderr, code, want)
		}
		if strings.Contains(r.stdout+r.stderr, tok) {
			t.Errorf("%s: output shows the token", name)
		}
	}
	check("no token", runCLI(t, "", "plugins", "--control", addr), exitOther, "needs a token")
	check("token file", runCLI(t, "", "plugins", "--control", addr, "--token-file", good), exitOK, "")
	check("wide file", runCLI(t, "", "plugins", "--control", addr, "--token-file", wide), exitUsage, "--token-file: "+wide+" has mode 0644")

	t.Setenv(control.EnvToken, tok)
	check("env", runCLI(t, "", "plugins", "--control", addr), exitOK, "")
	t.Setenv(control.EnvToken, "wrong-token-0123456789")
	check("wrong env", runCLI(t, "", "plugins", "--control", addr), exitOther, "does not match")
	t.Setenv(control.EnvToken, "short")
	check("short env", runCLI(t, "", "plugins", "--control", addr), exitUsage, "env "+control.EnvToken+": the token is 5 bytes")
}

// TestControlUnixFlag: --control unix:///path reaches a control API on a
// unix socket, with the token from --token-file.
func TestControlUnixFlag(t *testing.T) {
	const tok = "cli-token-0123456789abcdef"
	sockDir, err := os.MkdirTemp("", "pyc") // socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "c.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(controltest.NewBackend(), controltest.Version, nil, control.WithToken(tok))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	tokFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(control.EnvToken, "")
	if r := runCLI(t, "", "plugins", "--control", "unix://"+sock, "--token-file", tokFile); r.code != exitOK {
		t.Errorf("plugins over the socket: exit %d: %s", r.code, r.stderr)
	}
	if r := runCLI(t, "", "plugins", "--control", "unix://"+sock); r.code != exitOther {
		t.Errorf("plugins over the socket without the token: exit %d, want %d: %s", r.code, exitOther, r.stderr)
	}
}

// TestRunRefusesOpenControlWithoutToken: `run` with the control API on
// every interface and no token exits 1 (config error) naming
// control.token_file, before it listens on anything.
func TestRunRefusesOpenControlWithoutToken(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(cfg, []byte("control: 0.0.0.0:0\nlisten: {tcp: '', quic: ''}\ndata_dir: data\ncache_dir: cache\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "run", "-c", cfg)
	if r.code != exitUsage || !strings.Contains(r.stderr, "control.token_file is not set") {
		t.Errorf("run: exit %d, stderr %q; want exit %d naming control.token_file", r.code, r.stderr, exitUsage)
	}
}
