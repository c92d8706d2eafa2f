package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// meshNode starts a node in its own directory with the given extra config
// and returns it with its TCP and QUIC listen addresses (host:port).
func meshNode(t *testing.T, name, extra string) (*Node, string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("node: {name: %s}\ndata_dir: %s\nlisten: {tcp: 127.0.0.1:0, quic: 127.0.0.1:0}\n%s", name, filepath.Join(dir, "data"), extra)
	n, _, _ := startNode(t, dir, cfg)
	tcpAddr, quicAddr := n.mesh.ListenAddrs()
	return n, tcpAddr.String(), quicAddr.String()
}

func watEcho(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(repo("testdata", "wat", "echo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTrustModes checks that every trust mode admits the right hosts and
// refuses the others on both transports, and that a refused host learns no
// service.
func TestTrustModes(t *testing.T) {
	keyDir := t.TempDir()
	// Pinned ids need the id before the node starts: make the key first.
	okKey := filepath.Join(keyDir, "ok.key")
	okID := nodeIDForKey(t, okKey)
	tests := []struct {
		name       string
		server     string
		goodClient string
		badClient  string
	}{
		{"secret", "trust: {secret: first-secret-0123456789}\n", "trust: {secret: first-secret-0123456789}\n", "trust: {secret: other-secret-0123456789}\n"},
		{"nodes", "trust: {nodes: [" + okID + "]}\n", "identity: {key: " + okKey + "}\n", ""},
	}
	for _, tt := range tests {
		for _, tr := range []string{"tcp", "quic"} {
			t.Run(tt.name+"/"+tr, func(t *testing.T) {
				s, sTCP, sQUIC := meshNode(t, "s", tt.server+fmt.Sprintf("plugins:\n  - {name: upper, path: %s, services: [private]}\n", watEcho(t)))
				addr := map[string]string{"tcp": sTCP, "quic": sQUIC}[tr]
				good, _, _ := meshNode(t, "good", tt.goodClient+fmt.Sprintf("peers: [%s://%s]\n", tr, addr))
				hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("the trusted host reaches the service", func() error {
					_, err := good.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "private.x", Deadline: time.Now().Add(time.Second)})
					return err
				}))
				before := s.mesh.RefusedCount()
				bad, _, _ := meshNode(t, "bad", tt.badClient+fmt.Sprintf("peers: [%s://%s]\n", tr, addr))
				hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("the untrusted host is refused", func() error {
					if s.mesh.RefusedCount() == before {
						return fmt.Errorf("not refused yet")
					}
					return nil
				}))
				_, err := bad.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "private.x", Deadline: time.Now().Add(time.Second)})
				if message.StatusOf(err) != abi.StatusNoHandler {
					t.Fatalf("untrusted call: %v", err)
				}
				for _, p := range bad.Peers() {
					if p.State == "up" || p.Name != "" || len(p.Services) > 0 {
						t.Errorf("untrusted host sees %+v", p)
					}
				}
			})
		}
	}
}

// nodeIDForKey creates a key file and returns its node id, by starting a
// node on it with nothing to listen on.
func nodeIDForKey(t *testing.T, key string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pycomms.yaml")
	cfg := fmt.Sprintf("cache_dir: %s\ncontrol: \"\"\nlisten: {tcp: \"\", quic: \"\"}\nidentity: {key: %s}\n", sharedCache, key)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return n.ID()
}

// TestReloadAppliesPeers: peers is the one mesh key a reload applies; the
// others need a restart and say so.
func TestReloadAppliesPeers(t *testing.T) {
	_, bTCP, _ := meshNode(t, "b", "")
	a, _, _ := meshNode(t, "a", "")
	path := a.cfg.File
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(orig, []byte(fmt.Sprintf("peers: [tcp://%s]\n", bTCP))...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("a dials the peer added by the reload", func() error {
		for _, p := range a.Peers() {
			if p.Name == "b" && p.State == "up" {
				return nil
			}
		}
		return fmt.Errorf("peers %+v", a.Peers())
	}))
	bad := strings.Replace(string(orig), "quic: 127.0.0.1:0", "quic: \"\"", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("changing listen on reload: %v", err)
	}
}

// TestNodeNameClashOverControlAPI: two nodes named b join a. A call or
// send with ?node=b through a's control API is refused with status
// invalid (CLI exit code 1) listing both ids, and reaches neither plugin;
// each id still reaches its own node; GET /v1/peers shows the clash.
func TestNodeNameClashOverControlAPI(t *testing.T) {
	aDir := t.TempDir()
	a, ac, _ := startNode(t, aDir, "node: {name: a}\n")
	aTCP, _ := a.mesh.Addrs()
	plugin := fmt.Sprintf("peers: [%s]\nplugins:\n  - {name: upper, path: %s, services: [echo], instances: 1}\n", aTCP, watEcho(t))
	b1, _, _ := meshNode(t, "b", plugin)
	b2, _, _ := meshNode(t, "b", plugin)
	ctx := context.Background()
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("a learns both b and their services", func() error {
		n := 0
		for _, p := range a.Peers() {
			if p.Name == "b" && len(p.Services) == 1 {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d of 2", n)
		}
		return nil
	}))
	calls := func() [2]uint64 { return [2]uint64{b1.Plugins()[0].Calls, b2.Plugins()[0].Calls} }
	before := calls()
	_, callErr := ac.CallNode(ctx, "b", "echo.x", []byte("hi"), nil, 2*time.Second)
	sendErr := ac.SendNode(ctx, "b", "echo.x", []byte("hi"), nil)
	for what, err := range map[string]error{"call": callErr, "send": sendErr} {
		if message.StatusOf(err) != abi.StatusInvalid {
			t.Fatalf("%s --node b: status %v (%v); want invalid", what, message.StatusOf(err), err)
		}
		for _, id := range []string{b1.ID(), b2.ID()} {
			if !strings.Contains(err.Error(), id) {
				t.Errorf("%s --node b: %q does not list %s", what, err, id)
			}
		}
	}
	if got := calls(); got != before {
		t.Fatalf("a refused reference reached a plugin: calls %v -> %v", before, got)
	}
	for i, b := range []*Node{b1, b2} {
		out, err := ac.CallNode(ctx, b.ID(), "echo.x", []byte("hi"), nil, 5*time.Second)
		if err != nil || string(out) != "HI" {
			t.Fatalf("call --node %s: %q, %v", b.ID(), out, err)
		}
		if got := calls(); got[i] != before[i]+1 || got[1-i] != before[1-i] {
			t.Fatalf("call --node %s was served by the wrong node: calls %v -> %v", b.ID(), before, got)
		}
		before = calls()
	}
	peers, err := ac.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		want := map[string]string{b1.ID(): b2.ID(), b2.ID(): b1.ID()}[p.ID]
		if p.Name == "b" && (len(p.Clash) != 1 || p.Clash[0] != want) {
			t.Errorf("peers does not show the clash: %+v", p)
		}
	}
}
