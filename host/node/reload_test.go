package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestReloadLosesNoCall: 8 callers call services present in every config
// while 40 config reloads (half through Node.Reload, half through the
// control API) change plugins in every way a reload can: not one call
// fails, and every reply is what the config before or after a reload in
// progress produces.
func TestReloadLosesNoCall(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), filepath.Join(dir, "a.wasm"))
	copyFile(t, repo("testdata", "wat", "echo_b.wasm"), filepath.Join(dir, "b.wasm"))
	copyFile(t, repo("testdata", "wat", "echo.wasm"), filepath.Join(dir, "e.wasm"))
	n, c, _ := startNode(t, dir, "plugins:\n"+hosttest.ReloadPlugins(dir, 0))
	path := filepath.Join(dir, "pycomms.yaml")
	head, _, _ := strings.Cut(mustRead(t, path), "plugins:")

	callers := hosttest.StartReloadCallers([]string{"echo.prefix", "a.x", "b.x", "mv.x", "echo.upper"}, func(s string) ([]byte, error) {
		return n.Call(context.Background(), &message.Message{
			Kind: abi.KindRequest, Subject: s, Payload: []byte("x"), Deadline: time.Now().Add(30 * time.Second),
		})
	})
	ctx := context.Background()
	for i := 1; i <= 40; i++ {
		if err := os.WriteFile(path, []byte(head+"plugins:\n"+hosttest.ReloadPlugins(dir, i)), 0o644); err != nil {
			t.Fatal(err)
		}
		callers.Applying(i)
		var err error
		if i%2 == 0 {
			err = n.Reload(ctx)
		} else {
			err = c.Reload(ctx)
		}
		if err != nil {
			callers.Stop()
			t.Fatalf("reload %d: %v", i, err)
		}
		callers.Done(i)
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
	}
	callers.Check(t, 40)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReloadDuringFileSwapNeverWedges: a config reload that changes a
// plugin while its file is being replaced used to deadlock the node
// (Reload held the node lock and waited for the watcher, whose callback
// waited for the same lock). 100 rounds of file swap + config change +
// reload, with random gaps shorter than the watcher's settle time; the
// node answers health after each round and closes at the end.
func TestReloadDuringFileSwapNeverWedges(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ab.wasm")
	wasm2 := filepath.Join(dir, "ab2.wasm")
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm2)
	const settle = 50 * time.Millisecond
	cfg := func(i int) string {
		p := wasm
		if i%10 >= 5 { // now and then the plugin moves to another file
			p = wasm2
		}
		return fmt.Sprintf("control: 127.0.0.1:0\ncache_dir: %s\nlisten: {tcp: 127.0.0.1:0, quic: 127.0.0.1:0}\ndata_dir: %s\n"+
			"plugins:\n  - {name: ab, path: %q, services: [ab], instances: %d, limits: {timeout: %dms}}\n",
			sharedCache, filepath.Join(dir, "data"), p, 1+i%2, 1000+i)
	}
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg(0)), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler), WatchSettle: settle})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	wedged := false
	t.Cleanup(func() {
		if !wedged {
			n.Close()
		}
	})
	// within runs f with a bound: a wedged node must fail the test, not
	// hang it.
	within := func(what string, f func()) {
		t.Helper()
		ch := make(chan struct{})
		go func() { f(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			wedged = true
			t.Fatalf("%s did not return within 30s: the node is wedged", what)
		}
	}
	c := control.NewClient(n.ControlAddr())
	gap := func() { time.Sleep(time.Duration(rand.Int64N(int64(settle)))) }
	for i := 1; i <= 100; i++ {
		from := repo("testdata", "wat", "echo_a.wasm")
		if i%2 == 1 {
			from = repo("testdata", "wat", "echo_b.wasm")
		}
		target := wasm
		if i%10 >= 5 {
			target = wasm2
		}
		replaceFile(t, from, target)
		gap()
		if err := os.WriteFile(path, []byte(cfg(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		within(fmt.Sprintf("round %d: reload", i), func() {
			if err := n.Reload(context.Background()); err != nil {
				t.Errorf("round %d: reload: %v", i, err)
			}
		})
		gap()
		within(fmt.Sprintf("round %d: health", i), func() {
			if _, err := c.Health(context.Background()); err != nil {
				t.Errorf("round %d: health: %v", i, err)
			}
		})
	}
	// Whatever the order of the last file change and the last reload, the
	// last file (echo_a, round 100) ends up serving.
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("the last file serves", func() error {
		r, err := c.Call(context.Background(), "ab.x", []byte("hi"), nil, 5*time.Second)
		if string(r) != "A:hi" {
			return fmt.Errorf("%q %v", r, err)
		}
		return nil
	}))
	within("close", func() { n.Close() })
	wedged = true // closed already
}

// TestCountersSurviveReloads: calls and errors never go down across file
// swaps and config reloads, and errors never exceed calls.
func TestCountersSurviveReloads(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ab.wasm")
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
	loop := abs(t, "loop.wasm")
	cfg := func(instances int) string {
		return fmt.Sprintf("plugins:\n  - {name: ab, path: ab.wasm, services: [ab], instances: %d}\n"+
			"  - {name: lp, path: %q, services: [lp], instances: 1, queue: 1, limits: {timeout: 300ms}}\n", instances, loop)
	}
	n, c, _ := startNode(t, dir, cfg(2))
	ctx := context.Background()
	path := filepath.Join(dir, "pycomms.yaml")
	head, _, _ := strings.Cut(mustRead(t, path), "plugins:")
	var last map[string]control.PluginInfo
	check := func(when string) {
		t.Helper()
		ps, err := c.Plugins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := map[string]control.PluginInfo{}
		for _, p := range ps {
			now[p.Name] = p
			if p.Errors > p.Calls {
				t.Fatalf("%s: plugin %s has %d errors for %d calls", when, p.Name, p.Errors, p.Calls)
			}
			if l, ok := last[p.Name]; ok && (p.Calls < l.Calls || p.Errors < l.Errors) {
				t.Fatalf("%s: plugin %s counters went down: calls %d -> %d, errors %d -> %d", when, p.Name, l.Calls, p.Calls, l.Errors, p.Errors)
			}
		}
		last = now
	}
	callAB := func(want string) {
		t.Helper()
		for range 10 {
			if r, err := c.Call(ctx, "ab.x", []byte("x"), nil, 5*time.Second); string(r) != want || err != nil {
				t.Fatalf("ab: %q %v, want %q", r, err, want)
			}
		}
	}
	callAB("A:x")
	// Four calls at once on one instance with room for one waiting: two
	// are refused busy (errors that are calls too), all fail.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Call(ctx, "lp.x", nil, nil, 5*time.Second) }()
	}
	wg.Wait()
	check("after the calls")
	if last["ab"].Calls != 10 || last["lp"].Calls != 4 || last["lp"].Errors != 4 {
		t.Fatalf("counters: %+v", last)
	}
	replaceFile(t, repo("testdata", "wat", "echo_b.wasm"), wasm)
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("new file serving", func() error {
		if r, _ := c.Call(ctx, "ab.x", []byte("x"), nil, 5*time.Second); string(r) != "B:x" {
			return fmt.Errorf("%q", r)
		}
		return nil
	}))
	check("after the file swap")
	callAB("B:x")
	if err := os.WriteFile(path, []byte(head+cfg(3)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the config reload")
	callAB("B:x")
	check("after more calls")
	if last["ab"].Calls < 30 || last["ab"].Instances != 3 {
		t.Fatalf("ab after a file swap, a config reload and 30 calls: %+v", last["ab"])
	}
}

// TestRefusedReloadKeepsServingState: the state stays "serving" when a new
// file is refused (error says why), and putting back the file that serves
// clears the error.
func TestRefusedReloadKeepsServingState(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ab.wasm")
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
	_, c, _ := startNode(t, dir, "plugins:\n  - {name: ab, path: ab.wasm, services: [ab], limits: {max_module: 1KiB}}\n")
	ctx := context.Background()
	plugin := func() control.PluginInfo {
		ps, err := c.Plugins(ctx)
		if err != nil || len(ps) != 1 {
			t.Fatalf("plugins: %+v %v", ps, err)
		}
		return ps[0]
	}
	for _, bad := range []struct{ name, file, want string }{
		{"wrong ABI", "wrongabi.wasm", "plugin ABI version 7 is not supported"},
		{"over max_module", "", "more than limits.max_module"},
	} {
		if bad.file != "" {
			replaceFile(t, repo("testdata", "wat", bad.file), wasm)
		} else {
			tmp := filepath.Join(dir, "big")
			if err := os.WriteFile(tmp, append([]byte("\x00asm\x01\x00\x00\x00"), make([]byte, 2000)...), 0o644); err != nil {
				t.Fatal(err)
			}
			replaceFile(t, tmp, wasm)
		}
		hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe(bad.name+" refused", func() error {
			if p := plugin(); !strings.Contains(p.Error, bad.want) {
				return fmt.Errorf("%+v", p)
			}
			return nil
		}))
		if p := plugin(); p.State != "serving" {
			t.Fatalf("%s: state %q, want serving (the old version serves)", bad.name, p.State)
		}
		replaceFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
		hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe(bad.name+": error cleared by the serving file", func() error {
			if p := plugin(); p.Error != "" || p.State != "serving" {
				return fmt.Errorf("%+v", p)
			}
			return nil
		}))
	}
}

// TestBrokenPluginDoesNotStopStart: a plugin that cannot load leaves the
// node starting without it: state failed with its error, no routes, the
// node not ready; a config reload does not trip over it, and the plugin
// is loaded when its file changes. With Strict the start is refused as
// before.
func TestBrokenPluginDoesNotStopStart(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "br.wasm")
	copyFile(t, repo("testdata", "wat", "wrongabi.wasm"), wasm)
	cfg := func(okInstances int) string {
		return fmt.Sprintf("plugins:\n  - {name: ok, path: %q, services: [ok], instances: %d}\n  - {name: br, path: br.wasm, services: [br]}\n",
			abs(t, "echo_a.wasm"), okInstances)
	}
	n, c, logs := startNode(t, dir, cfg(1))
	ctx := context.Background()
	byName := func() map[string]control.PluginInfo {
		ps, err := c.Plugins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]control.PluginInfo{}
		for _, p := range ps {
			out[p.Name] = p
		}
		return out
	}
	ps := byName()
	if p := ps["br"]; p.State != control.PluginFailed || !strings.Contains(p.Error, "plugin ABI version 7 is not supported") {
		t.Fatalf("broken plugin: %+v", p)
	}
	if p := ps["ok"]; p.State != control.PluginServing {
		t.Fatalf("good plugin: %+v", p)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Ready || h.NotReady != "plugins failed: br" {
		t.Fatalf("health with a failed plugin: %+v %v", h, err)
	}
	if !strings.Contains(logs.String(), "plugin failed to load; the node starts without it") {
		t.Fatalf("the failure is not logged:\n%s", logs.String())
	}
	if r, err := c.Call(ctx, "ok.x", []byte("x"), nil, 5*time.Second); string(r) != "A:x" || err != nil {
		t.Fatalf("good plugin: %q %v", r, err)
	}
	if _, err := c.Call(ctx, "br.x", nil, nil, 5*time.Second); message.StatusOf(err) != abi.StatusNoHandler {
		t.Fatalf("failed plugin has routes: %v", err)
	}
	// A reload that changes another plugin is not refused because of it.
	path := filepath.Join(dir, "pycomms.yaml")
	head, _, _ := strings.Cut(mustRead(t, path), "plugins:")
	if err := os.WriteFile(path, []byte(head+cfg(2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(ctx); err != nil {
		t.Fatalf("reload with a failed plugin: %v", err)
	}
	if h, _ := c.Health(ctx); h.ConfigGeneration != 2 || h.Ready {
		t.Fatalf("after the reload: %+v", h)
	}
	// The fixed file is loaded by the watcher.
	replaceFile(t, repo("testdata", "wat", "echo_b.wasm"), wasm)
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("fixed plugin serving", func() error {
		r, err := c.Call(ctx, "br.x", []byte("x"), nil, 5*time.Second)
		if string(r) != "B:x" {
			return fmt.Errorf("%q %v", r, err)
		}
		return nil
	}))
	if p := byName()["br"]; p.State != control.PluginServing || p.Error != "" || p.Calls == 0 {
		t.Fatalf("fixed plugin: %+v", p)
	}
	if h, _ := c.Health(ctx); !h.Ready || h.NotReady != "" {
		t.Fatalf("health once every plugin serves: %+v", h)
	}

	// Strict: the start is refused, naming the plugin and its key.
	copyFile(t, repo("testdata", "wat", "wrongabi.wasm"), wasm)
	_, err = New(ctx, Options{ConfigPath: path, Strict: true, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), `plugins[1].path: plugin "br": plugin ABI version 7 is not supported`) {
		t.Fatalf("strict start: %v", err)
	}
}

// TestHealthReportsConfigGeneration: the generation and digest change when
// a reload applies, and only then.
func TestHealthReportsConfigGeneration(t *testing.T) {
	dir := t.TempDir()
	n, c, _ := startNode(t, dir, "plugins:\n  - {name: a, path: "+abs(t, "echo_a.wasm")+", services: [a]}\n")
	ctx := context.Background()
	h0, err := c.Health(ctx)
	if err != nil || h0.ConfigGeneration != 1 || len(h0.ConfigDigest) != 12 || !h0.Ready {
		t.Fatalf("first health: %+v %v", h0, err)
	}
	if err := n.Reload(ctx); err != nil { // nothing changed
		t.Fatal(err)
	}
	if h, _ := c.Health(ctx); h.ConfigGeneration != 1 || h.ConfigDigest != h0.ConfigDigest {
		t.Fatalf("a reload that changes nothing: %+v", h)
	}
	path := filepath.Join(dir, "pycomms.yaml")
	orig := mustRead(t, path)
	os.WriteFile(path, []byte(strings.Replace(orig, "services: [a]", "services: [a], instances: 3", 1)), 0o644)
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	h1, _ := c.Health(ctx)
	if h1.ConfigGeneration != 2 || h1.ConfigDigest == h0.ConfigDigest {
		t.Fatalf("after an applied reload: %+v (before %+v)", h1, h0)
	}
	os.WriteFile(path, []byte(strings.Replace(orig, "services: [a]", "services: [a], instances: 0", 1)), 0o644)
	if err := c.Reload(ctx); err == nil {
		t.Fatal("an invalid config was applied")
	}
	if h, _ := c.Health(ctx); h.ConfigGeneration != 2 || h.ConfigDigest != h1.ConfigDigest {
		t.Fatalf("after a refused reload: %+v", h)
	}
}
