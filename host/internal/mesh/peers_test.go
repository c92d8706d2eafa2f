package mesh

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestPeersShowsRedialNotUp: when the link to a configured peer is gone
// and the host redials it (the new connection hangs), peers shows the
// peer connecting with why the link ended, never up.
func TestPeersShowsRedialNotUp(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			b := newHost(t, "b")
			bPeer, _, kill, _ := proxyTo(t, tr, b)
			a := newHost(t, "a", withPeers(bPeer))
			hosttest.CheckFor(t, 10*time.Second, func() error { return linkErr(a, b) })
			view := func() (PeerInfo, bool) {
				for _, p := range a.mesh.Peers() {
					if p.Config == bPeer.URL() {
						return p, true
					}
				}
				return PeerInfo{}, false
			}
			if p, ok := view(); !ok || p.State != "up" {
				t.Fatalf("a's view of b before the fault: %+v", p)
			}
			l := a.mesh.links.get(b.mesh.ID())
			kill()
			// TCP sees the close at once; a frozen QUIC link is closed within
			// the dead time (2s in these tests).
			select {
			case <-l.done:
			case <-time.After(3 * 2 * time.Second):
				t.Fatal("a did not notice the link to b end")
			}
			// The redial hangs in its handshake (10s): the view must not say up
			// meanwhile.
			var p PeerInfo
			for range 5 {
				var ok bool
				p, ok = view()
				if !ok {
					t.Fatal("a no longer lists its configured peer b")
				}
				if p.State == "up" {
					t.Fatalf("a shows b up while its link is gone: %+v", p)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if p.State != "connecting" && p.State != "retrying" {
				t.Errorf("a shows b %q, want connecting or retrying", p.State)
			}
			if p.Error == "" || !strings.Contains(p.Error, "closed") && !strings.Contains(p.Error, "no frame") && !strings.Contains(p.Error, "probe") {
				t.Errorf("a's view of b does not say why the link ended: %q", p.Error)
			}
			t.Logf("a's view of b while redialling: state %s, error %q", p.State, p.Error)
		})
	}
}

// TestSetPeersBeforeStart: removing a configured peer before Start (its
// dialer never ran) neither panics nor leaves it listed.
func TestSetPeersBeforeStart(t *testing.T) {
	id, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "node.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Identity: id, Name: "a", Local: router.New(router.Options{}),
		Peers: []Peer{{Transport: TCP, Addr: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	m.SetPeers(nil)
	if n := len(m.dialers.list()); n != 0 {
		t.Fatalf("%d dialers after SetPeers(nil)", n)
	}
	m.Close(context.Background())
}
