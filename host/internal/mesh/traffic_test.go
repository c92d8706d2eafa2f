package mesh

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// peerTrafficOf returns h's PeerTraffic over transport, by id.
func peerTrafficOf(h *host, transport string) map[string]PeerTraffic {
	out := map[string]PeerTraffic{}
	for _, p := range h.mesh.PeerTraffic() {
		if p.Transport == transport {
			out[p.ID] = p
		}
	}
	return out
}

// notBelow returns an error naming the first counter of got that is below
// want's.
func notBelow(what string, got, want Traffic) error {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"bytes in", got.BytesIn, want.BytesIn}, {"bytes out", got.BytesOut, want.BytesOut},
		{"frames in", got.FramesIn, want.FramesIn}, {"frames out", got.FramesOut, want.FramesOut},
		{"dropped", got.Dropped, want.Dropped}, {"links up", got.LinksUp, want.LinksUp},
	} {
		if c.got < c.want {
			return fmt.Errorf("%s: %s %d, below %d", what, c.name, c.got, c.want)
		}
	}
	return nil
}

// TestPeerTraffic: with room for one peer's own figures, the first peer
// (b) gets them and the second (c) is counted under OtherPeers; together
// they are the transport's total. b's figures stay after it leaves, while
// its record is held, and go when the record is forgotten, while the
// transport's total does not go back; the freed room goes to the next
// new peer (d), and OtherPeers keeps what c carried after c is forgotten.
func TestPeerTraffic(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a")
			a.mesh.links.mu.Lock()
			a.mesh.links.peerCap = 1
			a.mesh.links.mu.Unlock()
			b := newHost(t, "b", withPeers(a.peer(tr)))
			b.serve("svc", &echoEP{prefix: "b:"}, []string{"svcb"}, nil)
			hosttest.CheckFor(t, 10*time.Second, func() error { return joinedErr(a, b) })
			c := newHost(t, "c", withPeers(a.peer(tr)))
			c.serve("svc", &echoEP{prefix: "c:"}, []string{"svcc"}, nil)
			hosttest.CheckFor(t, 10*time.Second, func() error { return joinedErr(a, c) })
			waitRoute(t, a, "svcb.x")
			waitRoute(t, a, "svcc.x")
			for i := range 10 {
				for _, to := range []string{"b", "c"} {
					if got, err := call(a, "svc"+to+".x", "x", 5*time.Second); err != nil || got != to+":x" {
						t.Fatalf("call %d to %s: %q %v", i, to, got, err)
					}
				}
			}

			// Totals read before and after the per-peer figures bound their
			// sum (pings move the bytes in between).
			before := a.mesh.Traffic()[tr]
			pt := peerTrafficOf(a, tr)
			after := a.mesh.Traffic()[tr]
			pb, pc, po := pt[string(b.id.ID)], pt[string(c.id.ID)], pt[OtherPeers]
			if pb.Name != "b" || pb.FramesIn < 10 || pb.FramesOut < 10 || pb.BytesIn == 0 || pb.BytesOut == 0 || pb.LinksUp != 1 || pb.LinksDown != 0 {
				t.Fatalf("a's figures of b: %+v; want its name, at least 10 messages each way, bytes, one link up", pb)
			}
			if pc.ID != "" {
				t.Errorf("c has figures of its own beyond the cap of 1: %+v", pc)
			}
			if po.Name != "" || po.FramesIn < 10 || po.FramesOut < 10 || po.LinksUp != 1 {
				t.Errorf("a's figures of other peers: %+v; want c's: at least 10 messages each way, one link", po)
			}
			var sum Traffic
			sum.add(pb.Traffic)
			sum.add(po.Traffic)
			if len(pt) != 2 {
				t.Errorf("a reports %d peers over %s, want 2 (b and other): %+v", len(pt), tr, pt)
			}
			if err := notBelow("sum over peers against the total read before", sum, before); err != nil {
				t.Error(err)
			}
			if err := notBelow("total read after against the sum over peers", after, sum); err != nil {
				t.Error(err)
			}

			// b leaves: a holds its record as left, and its figures with it.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.mesh.Close(ctx)
			cancel()
			hosttest.CheckFor(t, 10*time.Second, func() error {
				if a.mesh.links.get(b.id.ID) != nil {
					return fmt.Errorf("a still links to b")
				}
				return memberErr(a, b, MemberLeft)
			})
			hosttest.CheckFor(t, 10*time.Second, func() error {
				p, ok := peerTrafficOf(a, tr)[string(b.id.ID)]
				if !ok {
					return fmt.Errorf("b's figures are gone while a holds its record")
				}
				if p.LinksUp != p.LinksDown {
					return fmt.Errorf("b's links: %d up, %d down", p.LinksUp, p.LinksDown)
				}
				return notBelow("b after it left", p.Traffic, pb.Traffic)
			})
			total := a.mesh.Traffic()[tr]

			// Forgotten: b's figures go, the total keeps them.
			a.mesh.members.mu.Lock()
			a.mesh.members.ttl = 300 * time.Millisecond
			a.mesh.members.mu.Unlock()
			hosttest.CheckFor(t, 10*time.Second, func() error {
				if err := memberErr(a, b, ""); err != nil {
					return err
				}
				if p, ok := peerTrafficOf(a, tr)[string(b.id.ID)]; ok {
					return fmt.Errorf("a still reports b's figures after forgetting it: %+v", p)
				}
				return nil
			})
			if err := notBelow("the total after b was forgotten", a.mesh.Traffic()[tr], total); err != nil {
				t.Error(err)
			}

			// The room b had goes to the next new peer.
			d := newHost(t, "d", withPeers(a.peer(tr)))
			hosttest.CheckFor(t, 10*time.Second, func() error { return joinedErr(a, d) })
			if p := peerTrafficOf(a, tr)[string(d.id.ID)]; p.Name != "d" || p.LinksUp != 1 {
				t.Errorf("a's figures of d, new after b was forgotten: %+v; want its own, one link", p)
			}

			// c, under other, leaves and is forgotten: other keeps its counts.
			ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			c.mesh.Close(ctx)
			cancel()
			hosttest.CheckFor(t, 10*time.Second, func() error {
				if err := memberErr(a, c, ""); err != nil {
					return err
				}
				a.mesh.links.mu.Lock()
				defer a.mesh.links.mu.Unlock()
				if _, held := a.mesh.links.peers[c.id.ID]; held {
					return fmt.Errorf("a still holds a count for the forgotten c")
				}
				return nil
			})
			if err := notBelow("other after c was forgotten", peerTrafficOf(a, tr)[OtherPeers].Traffic, po.Traffic); err != nil {
				t.Error(err)
			}
		})
	}
}
