//go:build linux

package main

// Reload tests with a real `pycomms-host run` process (see
// mesh_process_test.go for how hosts are started): config reloads by
// SIGHUP and by `pycomms-host reload` under load, and file swaps racing
// config reloads.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

func copyFixture(t *testing.T, name, to string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "wat", name))
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil { // a rename, as a user should install a plugin
		t.Fatal(err)
	}
}

// waitGeneration polls health until the node has applied config
// generation gen.
func waitGeneration(t *testing.T, c *control.Client, gen uint64) {
	t.Helper()
	procEventually(t, procRouteTimeout, fmt.Sprintf("config generation %d applied", gen), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h, err := c.Health(ctx)
		if err != nil {
			return err
		}
		if h.ConfigGeneration != gen {
			return fmt.Errorf("generation %d", h.ConfigGeneration)
		}
		return nil
	})
}

// TestProcessReloadLosesNoCall: 8 callers on the control API for the whole
// run, 40 config reloads alternating SIGHUP and `pycomms-host reload`: no
// call fails and every reply is what the config before or after a reload
// in progress produces (callers only use services present in every
// config).
func TestProcessReloadLosesNoCall(t *testing.T) {
	dir := t.TempDir()
	copyFixture(t, "echo_a.wasm", filepath.Join(dir, "a.wasm"))
	copyFixture(t, "echo_b.wasm", filepath.Join(dir, "b.wasm"))
	copyFixture(t, "echo.wasm", filepath.Join(dir, "e.wasm"))
	h := startProcCluster(t, cluster.Options{Names: []string{"reload"}, Plugins: map[string]string{"reload": hosttest.ReloadPlugins(dir, 0)}}).Host("reload")
	c := h.Client
	waitGeneration(t, c, 1)

	callers := hosttest.StartReloadCallers([]string{"echo.prefix", "a.x", "b.x", "mv.x"}, func(s string) ([]byte, error) {
		return c.Call(context.Background(), s, []byte("x"), nil, 30*time.Second)
	})
	for i := 1; i <= 40; i++ {
		h.SetPlugins(hosttest.ReloadPlugins(dir, i))
		if err := h.WriteConfig(); err != nil {
			callers.Stop()
			t.Fatal(err)
		}
		callers.Applying(i)
		if i%2 == 1 {
			if err := h.Signal(syscall.SIGHUP); err != nil {
				callers.Stop()
				t.Fatal(err)
			}
			waitGeneration(t, c, uint64(i+1))
		} else {
			if r := hostCLI(t, h, "reload"); r.code != 0 {
				callers.Stop()
				t.Fatalf("reload %d: %+v", i, r)
			}
			waitGeneration(t, c, uint64(i+1)) // `reload` returns once applied
		}
		callers.Done(i)
		time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
	}
	callers.Check(t, 40)
	// Counters never went backwards: every call reached a plugin, and
	// none of them failed.
	var total uint64
	for _, name := range []string{"echo", "wa", "wb"} {
		p := cliPlugin(t, h, name)
		if p.Errors != 0 || p.State != control.PluginServing {
			t.Errorf("plugin %s: %+v", name, p)
		}
		total += p.Calls
	}
	if total < uint64(callers.Calls()) {
		t.Errorf("plugins counted %d calls, the callers made %d: counters were lost in a reload", total, callers.Calls())
	}
}

// TestProcessReloadStorm: 100 rounds of plugin file swap + config change
// of the same plugin + SIGHUP, with random gaps shorter than the watcher's
// settle time (250ms): the node answers health after every round, applies
// the last config and serves the last file at the end, and stops on
// SIGTERM.
func TestProcessReloadStorm(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ab.wasm")
	copyFixture(t, "echo_a.wasm", wasm)
	plugins := func(i int) string {
		return fmt.Sprintf("  - {name: ab, path: %q, services: [ab], instances: %d, limits: {timeout: %dms}}\n", wasm, 1+i%2, 1000+i)
	}
	h := startProcCluster(t, cluster.Options{Names: []string{"storm"}, Plugins: map[string]string{"storm": plugins(0)}}).Host("storm")
	c := h.Client
	const settle = 250 * time.Millisecond
	gap := func() { time.Sleep(time.Duration(rand.Int64N(int64(settle)))) }
	for i := 1; i <= 100; i++ {
		fixture := "echo_a.wasm"
		if i%2 == 1 {
			fixture = "echo_b.wasm"
		}
		copyFixture(t, fixture, wasm)
		gap()
		h.SetPlugins(plugins(i))
		if err := h.WriteConfig(); err != nil {
			t.Fatal(err)
		}
		if err := h.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		gap()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := c.Health(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: health: %v", i, err)
		}
	}
	// SIGHUPs that arrive while a reload runs are one pending reload (the
	// signal channel holds one), which reads the file as it is then: the
	// storm ends with the last config applied, in at most 100 reloads.
	// It has been applied when one more reload, made and waited for
	// through the control API, changes nothing.
	procEventually(t, procRouteTimeout, "the last config is applied", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		before, err := c.Health(ctx)
		if err != nil {
			return err
		}
		if err := h.Reload(); err != nil {
			return err
		}
		after, err := c.Health(ctx)
		if err != nil {
			return err
		}
		if after.ConfigGeneration != before.ConfigGeneration {
			return fmt.Errorf("a reload after the storm applied a new config (generation %d -> %d)", before.ConfigGeneration, after.ConfigGeneration)
		}
		if g := after.ConfigGeneration; g < 2 || g > 101 {
			return fmt.Errorf("generation %d after 100 reloads of changed configs, want 2..101", g)
		}
		return nil
	})
	procEventually(t, procRouteTimeout, "the last file (echo_a) serves", callOK(t, h, "ab.x", "hi", "A:hi"))
	if err := h.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Exited():
		if code, err := h.ExitCode(); err != nil || code != 0 {
			t.Fatalf("exit code %d (%v) after SIGTERM", code, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not stop within 30s of SIGTERM")
	}
}

// TestProcessBrokenPluginStart: `run` starts with a plugin that cannot
// load (state failed, not ready) and loads it when its file is fixed;
// `run --strict` refuses to start with exit 1.
func TestProcessBrokenPluginStart(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "br.wasm")
	copyFixture(t, "wrongabi.wasm", wasm)
	h := procCluster(t, cluster.Options{Names: []string{"broken"}, Plugins: map[string]string{"broken": fmt.Sprintf("  - {name: br, path: %q, services: [br]}\n", wasm)}}).Host("broken")
	if err := h.WriteConfig(); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "", "run", "--strict", "-c", h.ConfigPath())
	if r.code != 1 || !strings.Contains(r.stderr, `plugin "br": plugin ABI version 7 is not supported`) {
		t.Fatalf("run --strict: %+v", r)
	}

	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	c := h.Client
	hl, err := c.Health(context.Background())
	if err != nil || hl.Ready || hl.NotReady != "plugins failed: br" {
		t.Fatalf("health: %+v %v", hl, err)
	}
	if r := hostCLI(t, h, "health"); r.code != exitNotReady || !strings.Contains(r.stdout, "no, plugins failed: br") {
		t.Fatalf("health: %+v", r)
	}
	if p := cliPlugin(t, h, "br"); p.State != control.PluginFailed || !strings.Contains(p.Error, "plugin ABI version 7") {
		t.Fatalf("plugin: %+v", p)
	}
	if r := hostCLI(t, h, "call", "br.x", "x"); r.code != exitNoHandler {
		t.Fatalf("call to a failed plugin: %+v", r)
	}
	copyFixture(t, "echo_a.wasm", wasm)
	procEventually(t, procRouteTimeout, "fixed plugin serves", callOK(t, h, "br.x", "x", "A:x"))
	if hl, _ := c.Health(context.Background()); !hl.Ready {
		t.Fatalf("health after the fix: %+v", hl)
	}
}
