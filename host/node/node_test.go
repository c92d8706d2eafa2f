package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pycomms-node-test-cache")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repo returns a path inside the repository.
func repo(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile installs a new plugin file the safe way: write, then rename.
func replaceFile(t *testing.T, from, to string) {
	t.Helper()
	tmp := to + ".tmp"
	copyFile(t, from, tmp)
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// startNode writes cfg (with the control API on a free loopback port and a
// private cache dir) to a temp dir and runs a node on it until the test ends.
func startNode(t testing.TB, dir, cfg string) (*Node, *control.Client, *hosttest.SyncBuffer) {
	t.Helper()
	if !strings.Contains(cfg, "cache_dir:") {
		// One cache for the package: the Go echo compiles once, not per test.
		cfg = "cache_dir: " + sharedCache + "\n" + cfg
	}
	// Never the default 0.0.0.0:7400: tests run side by side.
	if !strings.Contains(cfg, "listen:") {
		cfg = "listen: {tcp: 127.0.0.1:0, quic: 127.0.0.1:0}\n" + cfg
	}
	if !strings.Contains(cfg, "data_dir:") {
		cfg = "data_dir: " + filepath.Join(dir, "data") + "\n" + cfg
	}
	cfg = "control: 127.0.0.1:0\n" + cfg
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &hosttest.SyncBuffer{}
	n, err := New(context.Background(), Options{
		ConfigPath: path, Logger: logs.Logger(),
		WatchSettle: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, control.NewClient(n.ControlAddr()), logs
}

// eventuallyTimeout bounds the package's checks (hosttest.CheckFor).
const eventuallyTimeout = 15 * time.Second

const messagingConfig = `
plugins:
  - name: echo
    path: builtin:echo
    services: [echo]
    topics: [greetings.>]
    instances: 2
    grants: [log, publish, call, send]
    config: {prefix: "> "}
  - name: wat
    path: %s
    services: [wat]
    topics: ["greetings.*"]
  - name: caller
    path: %s
    services: [caller]
    grants: [call]
  - name: nocall
    path: %s
    services: [nocall]
  - name: publisher
    path: %s
    services: [publisher]
    grants: [publish]
`

func messagingNode(t *testing.T) (*Node, *control.Client, *hosttest.SyncBuffer) {
	dir := t.TempDir()
	abs := func(p string) string { a, _ := filepath.Abs(repo("testdata", "wat", p)); return a }
	cfg := fmt.Sprintf(messagingConfig, abs("echo.wasm"), abs("caller.wasm"), abs("caller.wasm"), abs("publisher.wasm"))
	return startNode(t, dir, cfg)
}

func TestMessaging(t *testing.T) {
	_, c, _ := messagingNode(t)
	ctx := context.Background()
	for _, tc := range []struct {
		subject, payload string
		want             string
		status           abi.Status
		contains         string
	}{
		{subject: "echo.upper", payload: "hello", want: "HELLO"},
		{subject: "echo.prefix", payload: "x", want: "> x"},
		{subject: "wat.anything", payload: "abc", want: "ABC"},
		{subject: "nosuch.thing", status: abi.StatusNoHandler, contains: `no handler for "nosuch.thing"`},
		{subject: "echo.nope", status: abi.StatusNoMethod, contains: `"echo.nope"`},
		{subject: "echo.fail", status: abi.StatusHandlerError, contains: "failed on purpose"},
		// A handler calling another service, with and without the grant.
		{subject: "echo.call", payload: "wat.x hi", want: "HI"},
		{subject: "caller.x", payload: "echo.upper", want: ""},
		{subject: "nocall.x", payload: "echo.upper", status: abi.StatusDenied, contains: `capability "call" not granted to plugin "nocall"`},
		{subject: "echo.call", payload: "nosuch.x hi", status: abi.StatusNoHandler, contains: `no handler for "nosuch.x"`},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			got, err := c.Call(ctx, tc.subject, []byte(tc.payload), nil, 5*time.Second)
			if tc.contains == "" {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if message.StatusOf(err) != tc.status || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("got %v (%v); want %v containing %q", err, message.StatusOf(err), tc.status, tc.contains)
			}
		})
	}
}

// TestCallLoop: a handler that calls itself ends at once with invalid
// naming the loop (not a timeout after the whole deadline), the error does
// not repeat its prefix per level, and the node keeps serving.
func TestCallLoop(t *testing.T) {
	_, c, logs := messagingNode(t)
	ctx := context.Background()
	_, err := c.Call(ctx, "echo.loop", []byte("x"), nil, 30*time.Second)
	if s := message.StatusOf(err); s != abi.StatusInvalid || !strings.Contains(err.Error(), `call loop: "echo.loop"`) {
		t.Fatalf("loop ended with %v (%v), want invalid naming the call loop", err, s)
	}
	if n := strings.Count(err.Error(), "echo.loop:"); n != 1 {
		t.Fatalf("the error repeats its prefix %d times: %v", n, err)
	}
	if !strings.Contains(logs.String(), "call loop refused") {
		t.Fatalf("the loop was not logged:\n%s", logs.String())
	}
	// Every instance the chain held is free again.
	got, err := c.Call(ctx, "echo.upper", []byte("still here"), nil, 5*time.Second)
	if err != nil || string(got) != "STILL HERE" {
		t.Fatalf("after the loop: %q %v", got, err)
	}
}

func TestPubSub(t *testing.T) {
	_, c, _ := messagingNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *message.Message, 16)
	subErr := make(chan error, 1)
	go func() {
		subErr <- c.Subscribe(ctx, ">", func(m *message.Message) error { got <- m; return nil })
	}()
	// Wait until the subscription is live: publish probes until one arrives.
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("subscription live", func() error {
		if _, err := c.Publish(ctx, "probe.x", []byte("p"), nil); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(100 * time.Millisecond):
			return errors.New("no probe yet")
		}
	}))
	// One publish reaches echo (greetings.>), wat (greetings.*) and us;
	// echo republishes it uppercased on echo.events.
	n, err := c.Publish(ctx, "greetings.hi", []byte("hello"), map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("receivers = %d, want 3 (echo, wat, control subscriber)", n)
	}
	want := map[string]string{"greetings.hi": "hello", "echo.events": "HELLO"}
	for len(want) > 0 {
		select {
		case m := <-got:
			if w, ok := want[m.Subject]; ok && string(m.Payload) == w {
				delete(want, m.Subject)
			}
		case <-ctx.Done():
			t.Fatalf("missing events: %v", want)
		}
	}
	// A WAT handler publishing with its grant.
	if _, err := c.Call(ctx, "publisher.x", []byte("from wat"), nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case m := <-got:
			if m.Subject == "wat.events" && string(m.Payload) == "from wat" {
				cancel()
				<-subErr
				return
			}
		case <-ctx.Done():
			t.Fatal("wat.events not received")
		}
	}
}

func TestSend(t *testing.T) {
	_, c, _ := messagingNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *message.Message, 16)
	go c.Subscribe(ctx, "echo.events", func(m *message.Message) error { got <- m; return nil })
	// echo.publish publishes "TOPIC DATA"; sent one-way, nobody waits.
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("one-way send delivered", func() error {
		if err := c.Send(ctx, "echo.publish", []byte("echo.events sent"), nil); err != nil {
			return err
		}
		select {
		case m := <-got:
			if string(m.Payload) != "sent" {
				return fmt.Errorf("payload %q", m.Payload)
			}
			return nil
		case <-time.After(200 * time.Millisecond):
			return errors.New("not yet")
		}
	}))
	if err := c.Send(ctx, "nosuch.x", nil, nil); message.StatusOf(err) != abi.StatusNoHandler {
		t.Fatalf("send to nobody: %v", err)
	}
}

func TestHotReload(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ab.wasm")
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
	_, c, _ := startNode(t, dir, "plugins:\n  - {name: ab, path: ab.wasm, services: [ab]}\n")
	ctx := context.Background()
	call := func() (string, error) {
		r, err := c.Call(ctx, "ab.x", []byte("hi"), nil, 5*time.Second)
		return string(r), err
	}
	if r, err := call(); r != "A:hi" || err != nil {
		t.Fatalf("first version: %q %v", r, err)
	}
	replaceFile(t, repo("testdata", "wat", "echo_b.wasm"), wasm)
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("new version serving", func() error {
		if r, err := call(); r != "B:hi" {
			return fmt.Errorf("%q %v", r, err)
		}
		return nil
	}))
	// A broken file is refused; the old version keeps serving and the
	// plugin list says why.
	replaceFile(t, repo("testdata", "wat", "wrongabi.wasm"), wasm)
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("refusal reported", func() error {
		ps, err := c.Plugins(ctx)
		if err != nil {
			return err
		}
		if len(ps) != 1 || !strings.Contains(ps[0].Error, "plugin ABI version 7 is not supported") {
			return fmt.Errorf("plugins: %+v", ps)
		}
		return nil
	}))
	if r, err := call(); r != "B:hi" || err != nil {
		t.Fatalf("after a broken file: %q %v", r, err)
	}
	// A fixed file clears the error.
	replaceFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("fixed version serving", func() error {
		if r, err := call(); r != "A:hi" {
			return fmt.Errorf("%q %v", r, err)
		}
		ps, _ := c.Plugins(ctx)
		if len(ps) != 1 || ps[0].Error != "" {
			return fmt.Errorf("error not cleared: %+v", ps)
		}
		return nil
	}))
}

func TestConfigReload(t *testing.T) {
	dir := t.TempDir()
	n, c, _ := startNode(t, dir, "plugins:\n  - {name: a, path: "+abs(t, "echo_a.wasm")+", services: [a]}\n")
	ctx := context.Background()
	path := filepath.Join(dir, "pycomms.yaml")
	orig, _ := os.ReadFile(path)
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Add b, move nothing.
	write(string(orig) + "  - {name: b, path: " + abs(t, "echo_b.wasm") + ", services: [b]}\n")
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Call(ctx, "b.x", []byte("1"), nil, 5*time.Second); string(r) != "B:1" || err != nil {
		t.Fatalf("new plugin: %q %v", r, err)
	}
	// A broken config is refused whole: b keeps serving.
	write(string(orig) + "  - {name: b, path: " + abs(t, "echo_b.wasm") + ", services: [b], limits: {memory: 16XB}}\n")
	err := c.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), `"16XB" is not a size`) {
		t.Fatalf("broken reload: %v", err)
	}
	if _, err := c.Call(ctx, "b.x", nil, nil, 5*time.Second); err != nil {
		t.Fatalf("b after refused reload: %v", err)
	}
	// Node-level keys need a restart.
	write("control: 127.0.0.1:1\n" + string(orig)[len("control: 127.0.0.1:0\n"):])
	if err := n.Reload(ctx); err == nil || !strings.Contains(err.Error(), "config reload not supported for control") {
		t.Fatalf("control change: %v", err)
	}
	// Remove b; a service moves from a to a new plugin c in one reload.
	write(strings.Replace(string(orig), "name: a, path: "+abs(t, "echo_a.wasm")+", services: [a]", "name: c, path: "+abs(t, "echo_b.wasm")+", services: [a]", 1))
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Call(ctx, "a.x", []byte("2"), nil, 5*time.Second); string(r) != "B:2" || err != nil {
		t.Fatalf("moved service: %q %v", r, err)
	}
	if _, err := c.Call(ctx, "b.x", nil, nil, 5*time.Second); message.StatusOf(err) != abi.StatusNoHandler {
		t.Fatalf("removed plugin still serves: %v", err)
	}
}

func abs(t *testing.T, fixture string) string {
	a, err := filepath.Abs(repo("testdata", "wat", fixture))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestValidateReportsEverything(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, repo("testdata", "wat", "notwasm.wasm"), filepath.Join(dir, "notwasm.wasm"))
	copyFile(t, repo("testdata", "wat", "wrongabi.wasm"), filepath.Join(dir, "wrongabi.wasm"))
	path := filepath.Join(dir, "pycomms.yaml")
	os.WriteFile(path, []byte(`cache_dir: cache
plugins:
  - {name: a, path: notwasm.wasm, services: [a]}
  - {name: b, path: wrongabi.wasm, services: [b]}
  - {name: c, path: builtin:echo, services: [c]}
`), 0o644)
	err := Validate(context.Background(), Options{ConfigPath: path})
	var ce *config.Errors
	if !errors.As(err, &ce) || len(ce.List) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	for i, want := range []string{
		`pycomms.yaml:3:21: plugins[0].path: plugin "a": not a WebAssembly module`,
		`pycomms.yaml:4:21: plugins[1].path: plugin "b": plugin ABI version 7 is not supported: this host accepts 1..1`,
	} {
		if got := ce.List[i].Error(); !strings.Contains(got, want) {
			t.Errorf("error %d: %q does not contain %q", i, got, want)
		}
	}
}

// TestWarmStartUsesCache: the second start of a node with the Go echo plugin
// finds its compiled module on disk and writes nothing new.
func TestWarmStartUsesCache(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	cfg := "cache_dir: " + cache + "\nplugins:\n  - {name: echo, path: builtin:echo, services: [echo]}\n"
	snapshot := func() map[string]time.Time {
		files := map[string]time.Time{}
		filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				files[p] = fi.ModTime()
			}
			return nil
		})
		return files
	}
	n, _, _ := startNode(t, t.TempDir(), cfg)
	n.Close()
	first := snapshot()
	if len(first) == 0 {
		t.Fatal("first start wrote nothing to the cache")
	}
	n2, c, _ := startNode(t, t.TempDir(), cfg)
	second := snapshot()
	if fmt.Sprint(first) != fmt.Sprint(second) {
		t.Fatalf("second start changed the cache:\nfirst:  %v\nsecond: %v", first, second)
	}
	if r, err := c.Call(context.Background(), "echo.upper", []byte("warm"), nil, 5*time.Second); string(r) != "WARM" || err != nil {
		t.Fatalf("warm node: %q %v", r, err)
	}
	n2.Close()
}

// paramsBomb is 18 bytes: one function type declaring 2^32-1 parameters.
// Before package fuel bounded counts, wazero allocated from that count and
// the node died with "fatal error: out of memory" on the hot reload.
const paramsBomb = "0061736d0100000001080160ffffffff0f00"

func TestHotReloadRefusesHostileModules(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ab.wasm")
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
	_, c, _ := startNode(t, dir, "plugins:\n  - {name: ab, path: ab.wasm, services: [ab], limits: {max_module: 1KiB}}\n")
	ctx := context.Background()
	serving := func() {
		t.Helper()
		if r, err := c.Call(ctx, "ab.x", []byte("hi"), nil, 5*time.Second); string(r) != "A:hi" || err != nil {
			t.Fatalf("old version not serving: %q %v", r, err)
		}
	}
	refused := func(want string) {
		t.Helper()
		hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("refusal reported", func() error {
			ps, err := c.Plugins(ctx)
			if err != nil {
				return err
			}
			if len(ps) != 1 || !strings.Contains(ps[0].Error, want) {
				return fmt.Errorf("plugins: %+v", ps)
			}
			return nil
		}))
		serving()
	}
	serving()
	bomb, _ := hex.DecodeString(paramsBomb)
	tmp := filepath.Join(dir, "bomb.wasm")
	os.WriteFile(tmp, bomb, 0o644)
	replaceFile(t, tmp, wasm)
	refused("type section: 4294967295 parameters in type 0 declared, more than the 1000 allowed")

	big := append(bytes.Clone(bomb[:8]), make([]byte, 2000)...) // header + 2000 bytes: past 1KiB
	os.WriteFile(tmp, big, 0o644)
	replaceFile(t, tmp, wasm)
	refused("module is 2008 bytes, more than limits.max_module (1024 bytes)")

	// A sparse 1 TiB file costs no disk; read whole (as the watcher did
	// before it checked the size) it kills the process with "out of memory".
	huge, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := huge.Truncate(1 << 40); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	huge.Close()
	if err := os.Rename(tmp, wasm); err != nil {
		t.Fatal(err)
	}
	refused("module is 1099511627776 bytes, more than limits.max_module (1024 bytes)")
}
