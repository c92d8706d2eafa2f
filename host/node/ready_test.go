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
