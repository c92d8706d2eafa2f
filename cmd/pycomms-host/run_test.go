package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hostnode "github.com/pycomms/pycomms-host/host/node"
	"github.com/pycomms/pycomms-host/internal/hosttest"
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
			if code != exitOK {
				t.Errorf("run exited %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop within 30s of its context ending")
		}
	}()
	hosttest.CheckForEvery(t, 15*time.Second, 50*time.Millisecond, func() error {
		if r := runCLI(t, "", "health", "--control", addr); r.code != 0 {
			return fmt.Errorf("the node's control API at %s does not answer health: exit %d: %s", addr, r.code, r.stderr)
		}
		return nil
	})
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"call", "hello.greet", "world"}, 0, "bonjour, world!\n", ""},
		{[]string{"call", "wat.x", "abc"}, 0, "ABC\n", ""},
		{[]string{"call", "nosuch.thing", "x"}, exitNoHandler, "", `no handler for "nosuch.thing"`},
		{[]string{"call", "hello.nope"}, exitNoHandler, "", `"hello.nope"`},
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
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", r.code, exitUsage, r.stderr)
	}
	for _, want := range []string{`plugins[0].limits.memory: "16XB" is not a size`, "missing.wasm", `plugins[1].name`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("cache_dir: cache\nplugins:\n  - {name: e, path: builtin:echo, services: [e]}\n"), 0o644)
	r = runCLI(t, "", "validate", "-c", good)
	if r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Fatalf("good config: %+v", r)
	}
	// No trust rule: valid, but the open mesh is called out.
	if !strings.Contains(r.stderr, "warning: trust: none configured") {
		t.Errorf("no open-mesh warning: %q", r.stderr)
	}
	trusted := filepath.Join(dir, "trusted.yaml")
	os.WriteFile(trusted, []byte("cache_dir: cache\ntrust: {secret: a-long-enough-secret}\n"), 0o644)
	if r := runCLI(t, "", "validate", "-c", trusted); r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("trusted config: %+v", r)
	}
}

func TestIDCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pycomms.yaml")
	os.WriteFile(cfg, []byte(`node: {name: node-x}
cache_dir: cache
identity: {key: keys/node.key}
plugins:
  - {name: e, path: builtin:echo, services: [e]}
`), 0o644)
	key := filepath.Join(dir, "keys", "node.key")

	// Without a key, id creates nothing: it says where the node will
	// create one and how to create it now, and exits 1.
	r := runCLI(t, "", "id", "-c", cfg)
	if r.code != exitUsage || r.stdout != "" {
		t.Errorf("id without a key: %+v, want exit %d and no output", r, exitUsage)
	}
	for _, want := range []string{"no node key at " + key, "pycomms-host run", "pycomms-host id --create"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("id without a key: stderr %q lacks %q", r.stderr, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "keys")); err == nil {
		t.Fatalf("id without --create made %s", filepath.Join(dir, "keys"))
	}
	if r := runCLI(t, "", "id", "--json", "-c", cfg); r.code != exitUsage || r.stdout != "" {
		t.Errorf("id --json without a key: %+v", r)
	}

	// --create makes the key, as `run` would; later runs read it.
	r = runCLI(t, "", "id", "--create", "-c", cfg)
	id := strings.TrimSuffix(r.stdout, "\n")
	if r.code != 0 || r.stderr != "created node key "+key+"\n" {
		t.Fatalf("id --create: %+v", r)
	}
	if err := hostnode.CheckID(id); err != nil {
		t.Errorf("id printed %q: %v", r.stdout, err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	want, err := hostnode.LoadID(key, "", true)
	if err != nil || want != id {
		t.Errorf("id %q, the key's id %q (%v)", id, want, err)
	}
	if r := runCLI(t, "", "id", "-c", cfg); r.code != 0 || r.stdout != id+"\n" || r.stderr != "" {
		t.Errorf("second id: %+v, want %q", r, id)
	}
	// --create with a key in place reads it and says nothing more.
	if r := runCLI(t, "", "id", "--create", "-c", cfg); r.code != 0 || r.stdout != id+"\n" || r.stderr != "" {
		t.Errorf("id --create with a key: %+v, want %q", r, id)
	}

	r = runCLI(t, "", "id", "--json", "-c", cfg)
	var rep idReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 ||
		rep != (idReport{ID: id, Name: "node-x", Key: key}) {
		t.Errorf("--json: %v %+v", err, r)
	}

	// An environment override applies, as for run.
	t.Setenv("PYCOMMS_NODE__NAME", "node-env")
	r = runCLI(t, "", "id", "--json", "-c", cfg)
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Name != "node-env" || rep.ID != id {
		t.Errorf("--json with PYCOMMS_NODE__NAME: %v %+v", err, r)
	}
}

func TestIDCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("identity: {key: \"\"}\n"), 0o644)
	if r := runCLI(t, "", "id", "-c", bad); r.code != exitUsage || !strings.Contains(r.stderr, "identity.key") {
		t.Errorf("invalid config: %+v", r)
	}
	if r := runCLI(t, "", "id", "-c", filepath.Join(dir, "missing.yaml")); r.code != exitUsage {
		t.Errorf("missing config: %+v", r)
	}

	// A key that others may read is refused, as run refuses it.
	key := filepath.Join(dir, "open.key")
	if _, err := hostnode.LoadID(key, "", true); err != nil {
		t.Fatal(err)
	}
	os.Chmod(key, 0o644)
	cfg := filepath.Join(dir, "open.yaml")
	os.WriteFile(cfg, []byte("cache_dir: cache\nidentity: {key: open.key}\n"), 0o644)
	r := runCLI(t, "", "id", "-c", cfg)
	if r.code != exitUsage || !strings.Contains(r.stderr, "chmod 600") || r.stdout != "" {
		t.Errorf("key readable by others: %+v", r)
	}
	if r := runCLI(t, "", "id", "extra", "-c", cfg); r.code != exitUsage {
		t.Errorf("with an argument: %+v", r)
	}
}

// TestValidateRefusesCountBomb: the 18-byte module declaring one function
// type with 2^32-1 parameters made validate die with "fatal error: out of
// memory" inside wazero; it is now refused with the section and the count.
func TestValidateRefusesCountBomb(t *testing.T) {
	dir := t.TempDir()
	bomb, _ := hex.DecodeString("0061736d0100000001080160ffffffff0f00")
	os.WriteFile(filepath.Join(dir, "bomb.wasm"), bomb, 0o644)
	cfg := filepath.Join(dir, "pycomms.yaml")
	os.WriteFile(cfg, []byte("cache_dir: cache\nplugins:\n  - {name: b, path: bomb.wasm, services: [b]}\n"), 0o644)
	r := runCLI(t, "", "validate", "-c", cfg)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", r.code, exitUsage, r.stderr)
	}
	want := `plugins[0].path: plugin "b": prepare module: type section: 4294967295 parameters in type 0 declared, more than the 1000 allowed`
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr lacks %q:\n%s", want, r.stderr)
	}
}
