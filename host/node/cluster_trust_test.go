package node_test

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
	"github.com/pycomms/pycomms-host/host/node"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// eventually bounds a route or a link appearing on a loaded machine.
const eventually = 15 * time.Second

// TestTrustModes checks that every trust mode admits the right hosts and
// refuses the others on both transports, and that a refused host learns no
// service.
func TestTrustModes(t *testing.T) {
	keyDir := t.TempDir()
	// Pinned ids need the id before the node starts: make the key first.
	okKey := filepath.Join(keyDir, "ok.key")
	okID := nodeIDForKey(t, okKey)
	// The value of each host's trust: key ("" for none) and more config.
	tests := []struct {
		name                          string
		server, goodClient, badClient string
		goodExtra                     string
	}{
		{"secret", "{secret: first-secret-0123456789}", "{secret: first-secret-0123456789}", "{secret: other-secret-0123456789}", ""},
		{"nodes", "{nodes: [" + okID + "]}", "", "", "identity: {key: " + okKey + "}\n"},
	}
	for _, tt := range tests {
		for _, tr := range []string{"tcp", "quic"} {
			t.Run(tt.name+"/"+tr, func(t *testing.T) {
				cl := cluster.New(t, cluster.Options{Names: []string{"s", "good", "bad"}, Topology: cluster.None,
					Trust: map[string]string{"s": tt.server, "good": tt.goodClient, "bad": tt.badClient},
					Extra: map[string]string{"good": tt.goodExtra},
					Plugins: map[string]string{"s": fmt.Sprintf("  - {name: upper, path: %s, services: [private]}\n",
						cluster.TestdataPath("wat", "echo.wasm"))}})
				sh, goodh, badh := cl.Host("s"), cl.Host("good"), cl.Host("bad")
				if err := sh.Start(); err != nil {
					t.Fatal(err)
				}
				goodh.SetPeers(sh.PeerURL(tr))
				if err := goodh.Start(); err != nil {
					t.Fatal(err)
				}
				s, good := sh.Node(), goodh.Node()
				hosttest.CheckFor(t, eventually, hosttest.Describe("the trusted host reaches the service", func() error {
					_, err := good.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "private.x", Deadline: time.Now().Add(time.Second)})
					return err
				}))
				before := node.RefusedCount(s)
				badh.SetPeers(sh.PeerURL(tr))
				if err := badh.Start(); err != nil {
					t.Fatal(err)
				}
				bad := badh.Node()
				hosttest.CheckFor(t, eventually, hosttest.Describe("the untrusted host is refused", func() error {
					if node.RefusedCount(s) == before {
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
	cfg := fmt.Sprintf("cache_dir: %s\ncontrol: \"\"\nlisten: {tcp: \"\", quic: \"\"}\nidentity: {key: %s}\n", filepath.Join(dir, "cache"), key)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), node.Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return n.ID()
}

// TestReloadAppliesPeers: peers is the one mesh key a reload applies; the
// others need a restart and say so.
func TestReloadAppliesPeers(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Names: []string{"b", "a"}, Topology: cluster.None})
	b, ah := cl.Host("b"), cl.Host("a")
	a := ah.Node()
	ah.SetPeers(b.PeerURL("tcp"))
	if err := ah.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	if err := ah.Reload(); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, eventually, hosttest.Describe("a dials the peer added by the reload", func() error {
		for _, p := range a.Peers() {
			if p.Name == "b" && p.State == "up" {
				return nil
			}
		}
		return fmt.Errorf("peers %+v", a.Peers())
	}))
	// The first config (no peers) with listen.quic changed.
	ah.SetPeers()
	if err := ah.RewriteConfig(func(s string) string {
		return strings.Replace(s, `quic: "127.0.0.1:0"`, `quic: ""`, 1)
	}); err != nil {
		t.Fatal(err)
	}
	if err := ah.Reload(); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("changing listen on reload: %v", err)
	}
}

// TestNodeNameClashOverControlAPI: two nodes named b join a. A call or
// send with ?node=b through a's control API is refused with status
// invalid (CLI exit code 1) listing both ids, and reaches neither plugin;
// each id still reaches its own node; GET /v1/peers shows the clash.
func TestNodeNameClashOverControlAPI(t *testing.T) {
	cl := cluster.New(t, cluster.Options{Names: []string{"a", "b", "b"}, Topology: cluster.None,
		Plugins: map[string]string{"b": fmt.Sprintf("  - {name: upper, path: %s, services: [echo], instances: 1}\n",
			cluster.TestdataPath("wat", "echo.wasm"))}})
	ah := cl.HostAt(0)
	if err := ah.Start(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		bh := cl.HostAt(i)
		bh.SetPeers(ah.PeerURL("tcp"))
		if err := bh.Start(); err != nil {
			t.Fatal(err)
		}
	}
	a, ac, b1, b2 := ah.Node(), ah.Client, cl.HostAt(1).Node(), cl.HostAt(2).Node()
	ctx := context.Background()
	hosttest.CheckFor(t, eventually, hosttest.Describe("a learns both b and their services", func() error {
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
	for i, b := range []*node.Node{b1, b2} {
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
