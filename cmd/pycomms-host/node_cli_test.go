package main

// CLI commands against a real node run in-process with `run -c FILE` (real
// config, real control API on loopback, the WAT echo plugin).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// inProcessNode is a node run by execute(ctx, "run", "-c", cfg) in this
// process.
type inProcessNode struct {
	addr string // control API host:port
	cfg  string // the config file
	logs *bytes.Buffer
}

// runNodeInProcess writes cfgText (with "CONTROL" replaced by a free
// loopback address) to pycomms.yaml in a temporary directory, runs a node on
// it and waits until its control API answers. The node is stopped, and must
// exit 0, when the test ends.
func runNodeInProcess(t *testing.T, cfgText string) *inProcessNode {
	t.Helper()
	dir := t.TempDir()
	n := &inProcessNode{addr: deadAddr(t), cfg: filepath.Join(dir, "pycomms.yaml"), logs: &bytes.Buffer{}}
	if err := os.WriteFile(n.cfg, []byte(strings.ReplaceAll(cfgText, "CONTROL", n.addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"run", "-c", n.cfg}, strings.NewReader(""), &bytes.Buffer{}, n.logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("run exited %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop within 30s of its context ending")
		}
	})
	hosttest.CheckForEvery(t, 60*time.Second, 50*time.Millisecond, func() error {
		select {
		case code := <-done:
			done <- code // for the cleanup
			t.Fatalf("run exited %d before its control API answered", code)
		default:
		}
		if r := runCLI(t, "", "health", "--control", n.addr); r.code != 0 {
			return fmt.Errorf("the node's control API at %s does not answer health: exit %d: %s", n.addr, r.code, r.stderr)
		}
		return nil
	})
	return n
}

// watEchoAbs is the absolute path of the WAT echo plugin (upper-cases).
func watEchoAbs(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "wat", "echo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// postReload sends POST /v1/reload with a bare HTTP client and decodes the
// error body, if any.
func postReload(t *testing.T, addr string) (int, control.ErrorBody) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/reload", "", nil)
	if err != nil {
		t.Fatalf("POST /v1/reload: %v", err)
	}
	defer resp.Body.Close()
	var e control.ErrorBody
	if resp.StatusCode != http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("POST /v1/reload: %d, body is not an error body: %v", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, e
}

// TestReloadInvalidConfig: a reload of a config that cannot be applied
// (a value out of range, broken YAML, a missing file, a change that needs a
// restart) is refused as API.md and EXITCODES.md say: 400 invalid on the
// control API, exit 1 from `reload`, with the reason, and the running
// config keeps serving. It was 500 internal and exit 8.
func TestReloadInvalidConfig(t *testing.T) {
	good := `control: CONTROL
listen: {tcp: "", quic: ""}
data_dir: data
cache_dir: cache
plugins:
  - {name: up, path: ` + watEchoAbs(t) + `, services: [up]}
`
	n := runNodeInProcess(t, good)
	goodText, err := os.ReadFile(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	serving := func(when string) {
		t.Helper()
		if r := runCLI(t, "", "call", "up.x", "abc", "--control", n.addr); r.code != 0 || r.stdout != "ABC\n" {
			t.Errorf("%s: call up.x: %+v", when, r)
		}
	}
	for _, tc := range []struct {
		name  string
		write func() error // makes the config file bad
		want  string       // in the error text
	}{
		{"out of range", func() error {
			return os.WriteFile(n.cfg, bytes.Replace(goodText, []byte("services: [up]"), []byte("services: [up], instances: 99999"), 1), 0o644)
		}, "plugins[0].instances: 99999 is out of range"},
		{"broken YAML", func() error {
			return os.WriteFile(n.cfg, append(bytes.Clone(goodText), "  - {name: [\n"...), 0o644)
		}, "invalid YAML"},
		{"missing file", func() error { return os.Remove(n.cfg) }, "cannot read the config file"},
		{"needs a restart", func() error {
			return os.WriteFile(n.cfg, bytes.Replace(goodText, []byte("data_dir: data"), []byte("data_dir: elsewhere"), 1), 0o644)
		}, "config reload not supported for data_dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.write(); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, "", "reload", "--control", n.addr)
			if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "pycomms-host: ") ||
				!strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "the running config keeps serving") {
				t.Errorf("reload: %+v; want exit %d and an error with %q", r, exitUsage, tc.want)
			}
			code, e := postReload(t, n.addr)
			if code != http.StatusBadRequest || e.Status != "invalid" || e.Code != int(abi.StatusInvalid) || !strings.Contains(e.Error, tc.want) {
				t.Errorf("POST /v1/reload: %d %+v; want 400 invalid with %q", code, e, tc.want)
			}
			serving("after the refused reload")
			if err := os.WriteFile(n.cfg, goodText, 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A good config still applies (a new plugin), with exit 0.
	more := string(goodText) + "  - {name: up2, path: " + watEchoAbs(t) + ", services: [up2]}\n"
	if err := os.WriteFile(n.cfg, []byte(more), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "reload", "--control", n.addr); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("good reload: %+v", r)
	}
	if r := runCLI(t, "", "call", "up2.x", "def", "--control", n.addr); r.code != 0 || r.stdout != "DEF\n" {
		t.Errorf("call up2.x after the good reload: %+v", r)
	}
	serving("after the good reload")
}

// TestPeersOutsideMesh: a real node that is not part of a mesh (no
// listeners, no peers, mDNS off) answers the mesh routes as API.md and
// `peers --help` say: 404 no_handler, exit 2, and health without an id. It
// answered 200 with an empty list. A node that listens is in a mesh even
// with no peer yet.
func TestPeersOutsideMesh(t *testing.T) {
	const notMesh = "pycomms-host: this node is not part of a mesh\n"
	n := runNodeInProcess(t, `control: CONTROL
listen: {tcp: "", quic: ""}
data_dir: data
cache_dir: cache
plugins:
  - {name: up, path: `+watEchoAbs(t)+`, services: [up]}
`)
	for _, args := range [][]string{
		{"peers"},
		{"peers", "--json"},
		{"call", "--node", "anything", "up.x", "abc"},
		{"send", "--node", "anything", "up.x", "abc"},
	} {
		if r := runCLI(t, "", append(args, "--control", n.addr)...); r.code != exitNoHandler || r.stderr != notMesh || r.stdout != "" {
			t.Errorf("%v: %+v, want exit %d and %q", args, r, exitNoHandler, notMesh)
		}
	}
	resp, err := http.Get("http://" + n.addr + "/v1/peers")
	if err != nil {
		t.Fatal(err)
	}
	var e control.ErrorBody
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || e.Status != "no_handler" {
		t.Errorf("GET /v1/peers: %d %+v, want 404 no_handler", resp.StatusCode, e)
	}
	r := runCLI(t, "", "health", "--json", "--control", n.addr)
	var h map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || r.code != 0 || h["id"] != nil || h["members"] != nil {
		t.Errorf("health outside a mesh: %v %+v, want no id and no members", err, r)
	}
	// Everything else works.
	if r := runCLI(t, "", "call", "up.x", "abc", "--control", n.addr); r.code != 0 || r.stdout != "ABC\n" {
		t.Errorf("call: %+v", r)
	}

	// Listening makes a mesh node, before any peer comes.
	m := runNodeInProcess(t, `control: CONTROL
listen: {tcp: "127.0.0.1:0", quic: ""}
data_dir: data
cache_dir: cache
plugins: []
`)
	if r := runCLI(t, "", "peers", "--json", "--control", m.addr); r.code != 0 || r.stdout != "[]\n" {
		t.Errorf("peers on a listening node: %+v", r)
	}
	if r := runCLI(t, "", "health", "--json", "--control", m.addr); !strings.Contains(r.stdout, `"id":`) {
		t.Errorf("health on a listening node has no id: %+v", r)
	}
	// So does a configured peer, reached or not.
	dead := deadAddr(t)
	p := runNodeInProcess(t, `control: CONTROL
listen: {tcp: "", quic: ""}
peers: [tcp://`+dead+`]
data_dir: data
cache_dir: cache
plugins: []
`)
	if r := runCLI(t, "", "peers", "--control", p.addr); r.code != 0 || !strings.Contains(r.stdout, "tcp://"+dead) {
		t.Errorf("peers on a node with a configured peer: %+v", r)
	}
}
