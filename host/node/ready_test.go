package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestReadyOnceEveryPeerWasDialled: a node whose configured peer has not
// answered its first dial yet (a listener that accepts and never speaks,
// so the TLS handshake waits) is not ready, and says which peer; once
// that dial fails (the listener hangs up) the node is ready, although the
// peer is down: readiness waits for the first try, not for success. A
// node without peers is ready at once. Before, health said ready as soon
// as the plugins served, with the peers not even tried.
func TestReadyOnceEveryPeerWasDialled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	hangUp := func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}
	defer hangUp()

	dir := t.TempDir()
	peer := "tcp://" + l.Addr().String()
	n, c, _ := startNode(t, dir, "peers: ["+peer+"]\nplugins: []\n")
	rd := n.Readiness()
	if rd.Ready || !slices.Contains(rd.Reasons, "peers not dialled yet: "+peer) {
		t.Fatalf("readiness with the first dial waiting: %+v", rd)
	}
	if r, err := c.Ready(context.Background()); err != nil || r.Ready || !slices.Equal(r.Reasons, rd.Reasons) {
		t.Errorf("/readyz with the first dial waiting: %+v, %v", r, err)
	}
	if h := n.Health(); h.Ready || !strings.Contains(h.NotReady, peer) {
		t.Errorf("health with the first dial waiting: %+v", h)
	}

	hangUp()
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if rd := n.Readiness(); !rd.Ready {
			return fmt.Errorf("not ready after the first dial failed: %v", rd.Reasons)
		}
		return nil
	})
	if r, err := c.Ready(context.Background()); err != nil || !r.Ready {
		t.Errorf("/readyz after the first dial: %+v, %v", r, err)
	}

	alone, _, _ := startNode(t, t.TempDir(), "plugins: []\n")
	if rd := alone.Readiness(); !rd.Ready || len(rd.Reasons) != 0 {
		t.Errorf("a node without peers: %+v", rd)
	}
}

// TestDrainTimeoutIsLive: drain_timeout is read from the applied config,
// so a reload that changes it (and nothing else) applies it.
func TestDrainTimeoutIsLive(t *testing.T) {
	dir := t.TempDir()
	n, _, _ := startNode(t, dir, "drain_timeout: 3s\nplugins: []\n")
	if d := n.DrainTimeout(); d != 3*time.Second {
		t.Fatalf("DrainTimeout = %v, want 3s", d)
	}
	path := filepath.Join(dir, "pycomms.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "drain_timeout: 3s", "drain_timeout: 7s", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := n.DrainTimeout(); d != 7*time.Second {
		t.Errorf("DrainTimeout after a reload to 7s = %v", d)
	}
	// A draining node refuses reloads: it has no use for a new config.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.Drain(ctx)
	if err := n.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "draining") {
		t.Errorf("reload while draining: %v", err)
	}
	if err := n.Drain(context.Background()); err == nil {
		t.Error("a second Drain returned nil")
	}
}

// TestRunDrains: Run, the embedder's loop, drains before it closes when
// its context ends: a call in flight then finishes, and Run returns nil.
// It closed at once before, cutting the call off with the node.
func TestRunDrains(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pycomms.yaml")
	cfg := "control: \"\"\nlisten: {tcp: \"\", quic: \"\"}\ndata_dir: " + filepath.Join(dir, "data") + "\ncache_dir: " + sharedCache + "\nplugins: []\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), Options{ConfigPath: path, Logger: (&hosttest.SyncBuffer{}).Logger()})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	if _, err := n.Serve("slow", []string{"slow"}, func(ctx context.Context, m *message.Message) ([]byte, error) {
		close(entered)
		<-release
		return []byte("done"), nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	called := make(chan error, 1)
	go func() {
		out, err := n.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "slow.x", Deadline: time.Now().Add(time.Minute)})
		if err == nil && string(out) != "done" {
			err = fmt.Errorf("reply %q", out)
		}
		called <- err
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not reach the handler")
	}
	cancel()
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if !n.Draining() {
			return fmt.Errorf("Run is not draining after its context ended")
		}
		return nil
	})
	close(release)
	if err := <-called; err != nil {
		t.Errorf("the call in flight: %v", err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}
