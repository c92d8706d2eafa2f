package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
)

// TestRunEndToEnd runs a real node with `run -c` in-process (real config,
// real plugins: the C example and the WAT echo) and drives it with the CLI.
func TestRunEndToEnd(t *testing.T) {
	dir := t.TempDir()
	addr := deadAddr(t)
	abs := func(p string) string { a, _ := filepath.Abs(filepath.Join("..", "..", p)); return a }
	cfg := filepath.Join(dir, "pycomms.yaml")
	os.WriteFile(cfg, []byte(`control: `+addr+`
cache_dir: cache
plugins:
  - name: hello
    path: `+abs("plugins/hello-c/hello.wasm")+`
    services: [hello]
    topics: ["greetings.>"]
    config: {greeting: bonjour}
  - name: wat
    path: `+abs("testdata/wat/echo.wasm")+`
    services: [wat]
`), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- execute(ctx, []string{"run", "-c", cfg}, strings.NewReader(""), &bytes.Buffer{}, &logs)
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != control.ExitOK {
				t.Errorf("run exited %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop within 30s of its context ending")
		}
	}()
	up := false
	for i := 0; i < 300 && !up; i++ {
		up = runCLI(t, "", "health", "--control", addr).code == 0
		if !up {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !up {
		t.Fatalf("node never answered health")
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"call", "hello.greet", "world"}, 0, "bonjour, world!\n", ""},
		{[]string{"call", "wat.x", "abc"}, 0, "ABC\n", ""},
		{[]string{"call", "nosuch.thing", "x"}, control.ExitNoHandler, "", `no handler for "nosuch.thing"`},
		{[]string{"call", "hello.nope"}, control.ExitNoHandler, "", `"hello.nope"`},
		{[]string{"pub", "greetings.x", "hi", "--json"}, 0, `{"receivers":1}` + "\n", ""},
	} {
		r := runCLI(t, "", append(tc.args, "--control", addr)...)
		if r.code != tc.code || (tc.stdout != "" && r.stdout != tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	r := runCLI(t, "", "plugins", "--control", addr)
	if !strings.Contains(r.stdout, "hello") || !strings.Contains(r.stdout, "wat") {
		t.Errorf("plugins: %q", r.stdout)
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte(`plugins:
  - name: a
    path: missing.wasm
    limits: {memory: 16XB}
  - name: a
    path: builtin:echo
`), 0o644)
	r := runCLI(t, "", "validate", "-c", cfg)
	if r.code != control.ExitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", r.code, control.ExitUsage, r.stderr)
	}
	for _, want := range []string{`plugins[0].limits.memory: "16XB" is not a size`, "missing.wasm", `plugins[1].name`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("cache_dir: cache\nplugins:\n  - {name: e, path: builtin:echo, services: [e]}\n"), 0o644)
	if r := runCLI(t, "", "validate", "-c", good); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Fatalf("good config: %+v", r)
	}
}
