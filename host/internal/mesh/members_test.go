package mesh

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// startChain starts n hosts named h0..h(n-1), each listing only the one
// before it as a peer over transport, each serving svcI: a chain of seeds,
// the shape in which one relay does not reach.
func startChain(t testing.TB, n int, transport string, opts ...hostOpt) []*host {
	t.Helper()
	var hosts []*host
	for i := range n {
		o := opts
		if i > 0 {
			o = append(append([]hostOpt(nil), opts...), withPeers(hosts[i-1].peer(transport)))
		}
		h := newHostTB(t, fmt.Sprintf("h%d", i), o...)
		h.serve("svc", &echoEP{prefix: h.name + ":"}, []string{fmt.Sprintf("svc%d", i)}, nil)
		hosts = append(hosts, h)
	}
	return hosts
}

// memberOf returns what h's membership says of other.
func memberOf(h, other *host) (MemberInfo, bool) {
	for _, mb := range h.mesh.Members() {
		if mb.ID == string(other.id.ID) {
			return mb, true
		}
	}
	return MemberInfo{}, false
}

// TestChainMembership: in a chain of five hosts, each listing only the one
// before it, every host learns every other with its distance, calls a
// service four links away (linking to it first), and a publish reaches a
// subscriber three links away once the link it asks for is up.
func TestChainMembership(t *testing.T) {
	hosts := startChain(t, 5, TCP)
	hosttest.CheckFor(t, 10*time.Second, func() error { return allAliveErr(hosts) })
	for i, h := range hosts {
		for j, o := range hosts {
			if i == j {
				continue
			}
			if mb, _ := memberOf(h, o); mb.Hops != max(i-j, j-i) {
				t.Errorf("%s sees %s %d links away, want %d", h.name, o.name, mb.Hops, max(i-j, j-i))
			}
		}
	}
	a, e := hosts[0], hosts[4]
	var far PeerInfo
	for _, p := range a.mesh.Peers() {
		if p.Name == "h4" {
			far = p
		}
	}
	if far.State != "member" || far.Found != FoundGossip || far.Hops != 4 || far.Addr == "" || len(far.Services) != 1 {
		t.Errorf("h0's peers entry for h4 before any message: %+v", far)
	}

	// The routing table is rebuilt just after the membership it is built
	// from changes (membership.apply unlocks, then rebuilds): in between,
	// Peers lists h4's services and a call does not find them yet.
	hosttest.CheckFor(t, 5*time.Second, func() error { return routeErr(a, "svc4.x", 0) })
	got, err := call(a, "svc4.x", "hi", 5*time.Second)
	if err != nil || got != "h4:hi" {
		t.Fatalf("h0 -> h4, four links away: %q %v", got, err)
	}
	l := a.mesh.links.get(e.id.ID)
	if l == nil || l.found != FoundGossip {
		t.Fatalf("h0 has no link to h4 after calling it (link %v)", l)
	}
	// The new link shows in membership too: h4 is now one link away.
	hosttest.CheckFor(t, 5*time.Second, func() error {
		mb, _ := memberOf(a, e)
		return holds(mb.Hops == 1, fmt.Sprintf("h0 sees h4 %d links away, want 1", mb.Hops), a)
	})

	// A send to a far node by name takes the same way.
	d := hosts[3]
	sends := &echoEP{}
	d.serve("sink", sends, []string{"sink"}, []string{"alerts.>"})
	hosttest.CheckFor(t, 5*time.Second, func() error { return routeErr(a, "sink.x", 0) })
	if err := a.mesh.SendTo(context.Background(), "h3", &message.Message{Kind: abi.KindSend, Subject: "sink.x", Payload: []byte("s")}); err != nil {
		t.Fatalf("send to h3 by name: %v", err)
	}
	hosttest.CheckFor(t, 5*time.Second, func() error {
		return holds(sends.sends.Load() == 1, fmt.Sprintf("h3 received %d sends, want 1", sends.sends.Load()), a, d)
	})

	// h0 now links to h3 directly: the publish reaches it at once.
	n := a.mesh.Publish(&message.Message{Kind: abi.KindEvent, Subject: "alerts.fire", Payload: []byte("e1")})
	hosttest.CheckFor(t, 5*time.Second, func() error {
		return holds(len(sends.got()) == 1, fmt.Sprintf("h3 received %d events, want 1", len(sends.got())), a, d)
	})
	if n != 1 {
		t.Errorf("publish reported %d hosts, want 1", n)
	}
}

// TestFarPublishLinksFirst: an event for a subscriber known only through
// membership is not delivered through anyone; the publisher links to the
// subscriber, and the events after that reach it.
func TestFarPublishLinksFirst(t *testing.T) {
	hosts := startChain(t, 4, TCP)
	ev := &echoEP{}
	hosts[3].serve("sub", ev, nil, []string{"news"})
	hosttest.CheckFor(t, 10*time.Second, func() error {
		for _, n := range hosts[0].mesh.routes.load().listeners {
			if n.name == "h3" {
				return nil
			}
		}
		return holds(false, "h0 does not route events to h3", hosts[0])
	})
	if n := hosts[0].mesh.Publish(&message.Message{Kind: abi.KindEvent, Subject: "news", Payload: []byte("first")}); n != 0 {
		t.Errorf("the first publish reported %d hosts before any link to the subscriber", n)
	}
	hosttest.CheckFor(t, 5*time.Second, func() error { return linkErr(hosts[0], hosts[3]) })
	hosttest.CheckFor(t, 5*time.Second, func() error {
		n := hosts[0].mesh.Publish(&message.Message{Kind: abi.KindEvent, Subject: "news", Payload: []byte("later")})
		return holds(len(ev.got()) > 0, fmt.Sprintf("no event reached h3 (the last publish went to %d hosts)", n), hosts[0], hosts[3])
	})
}

// kill stops h the way a crashed process stops: no goodbye, sockets gone.
// Over TCP the peers' reads end at once; over QUIC, where closing the UDP
// socket sends nothing, they notice only when the link goes silent for
// the dead time.
//
// A crashed process also completes no handshake that was under way: h is
// marked closing first, so that a link whose handshake finishes after the
// links below were closed is closed by up instead of living on (with its
// reader answering pings, it kept the dead host alive for its peer and,
// through that peer's record, for the whole mesh: the flake of
// TestStarNoticesDeath, whose call had h01 dialling the victim as it was
// killed). Close then has nothing left to do.
func kill(h *host) {
	h.mesh.links.shut()
	h.mesh.cancel()
	if h.mesh.ln.tcp != nil {
		h.mesh.ln.tcp.Close()
	}
	if h.mesh.ln.quicT != nil {
		h.mesh.ln.quicT.Conn.Close()
	}
	for _, l := range h.mesh.links.all() {
		if tc, ok := l.c.(*tcpConn); ok {
			tc.c.NetConn().Close()
		}
	}
}

// TestChainDeathAndLeave: a host three links away is marked lost when it
// dies (within the dead time, generous margin), a host that stops cleanly
// is marked left at once, and both are forgotten after the ttl.
func TestChainDeathAndLeave(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			hosts := startChain(t, 4, tr)
			a, c, d := hosts[0], hosts[2], hosts[3]
			hosttest.CheckFor(t, 10*time.Second, func() error { return allAliveErr(hosts) })
			a.mesh.members.mu.Lock()
			a.mesh.members.ttl = 500 * time.Millisecond
			a.mesh.members.mu.Unlock()

			start := time.Now()
			kill(d)
			dead := 2 * time.Second // newHost's DeadAfter
			hosttest.CheckFor(t, 3*dead, func() error {
				if err := memberErr(a, d, "", MemberLost); err != nil {
					return err
				}
				return noRouteErr(a, "svc3.x")
			})
			took := time.Since(start)
			t.Logf("%s: h3, three links away, lost at h0 after %v", tr, took.Round(time.Millisecond))
			if _, err := call(a, "svc3.x", "x", time.Second); message.StatusOf(err) != abi.StatusNoHandler {
				t.Errorf("call to the dead host's service: %v, want no handler", err)
			}

			start = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.mesh.Close(ctx)
			cancel()
			hosttest.CheckFor(t, 2*time.Second, func() error { return memberErr(a, c, "", MemberLeft) })
			t.Logf("%s: h2, two links away, left at h0 after %v", tr, time.Since(start).Round(time.Millisecond))
			hosttest.CheckFor(t, 5*time.Second, func() error {
				if err := memberErr(a, c, ""); err != nil {
					return err
				}
				return memberErr(a, d, "")
			})
			a.mesh.members.mu.Lock()
			for l, known := range a.mesh.members.known {
				if _, ok := known[d.id.ID]; ok {
					t.Errorf("h0's link to %s still records what it was sent of the forgotten h3", l.name)
				}
			}
			a.mesh.members.mu.Unlock()
			if got, err := call(a, "svc1.x", "still", 5*time.Second); err != nil || got != "h1:still" {
				t.Fatalf("h0 -> h1 after the others went: %q %v", got, err)
			}
		})
	}
}

// signedEntry signs r with key the way a host signs its own record.
func signedEntry(t *testing.T, key ed25519.PrivateKey, r *wire.MemberRecord) wire.MemberEntry {
	t.Helper()
	b, err := wire.AppendMemberRecord(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	return wire.MemberEntry{Record: b, Sig: ed25519.Sign(key, append([]byte(wire.MemberSigContext), b...))}
}

// TestBadMemberRecords: a record that is not what its origin signed, or
// whose key is not its id, closes the link it came on as a protocol
// error, counted; the host keeps serving its other peers and holds no
// record from it.
func TestBadMemberRecords(t *testing.T) {
	a := newHost(t, "a")
	good := newHost(t, "good", withPeers(a.peer(TCP)))
	good.serve("echo", &echoEP{prefix: "g:"}, []string{"echo"}, nil)
	waitRoute(t, a, "echo.x")
	other := newHost(t, "other")
	rec := func(h *host) *wire.MemberRecord {
		return &wire.MemberRecord{ID: string(h.id.ID), Name: h.name, Key: h.id.Key.Public().(ed25519.PublicKey), Version: 1}
	}
	tests := []struct {
		name  string
		entry func(x *host) wire.MemberEntry
		want  string
	}{
		{"signature by another key", func(x *host) wire.MemberEntry {
			return signedEntry(t, other.id.Key, rec(x))
		}, "signature does not verify"},
		{"record altered after signing", func(x *host) wire.MemberEntry {
			e := signedEntry(t, x.id.Key, rec(x))
			r := rec(x)
			r.Services = []string{"stolen"}
			e.Record, _ = wire.AppendMemberRecord(nil, r)
			return e
		}, "signature does not verify"},
		{"key of another node", func(x *host) wire.MemberEntry {
			r := rec(x)
			r.Key = other.id.Key.Public().(ed25519.PublicKey)
			return signedEntry(t, other.id.Key, r)
		}, "but its key is node"},
		{"record is not CBOR", func(x *host) wire.MemberEntry {
			return wire.MemberEntry{Record: []byte{0xff}, Sig: make([]byte, 64)}
		}, "member record body"},
		{"link to a non-id", func(x *host) wire.MemberEntry {
			r := rec(x)
			r.Links = []string{"NOT-AN-ID"}
			return signedEntry(t, x.id.Key, r)
		}, "which is not a node id"},
		{"links out of order", func(x *host) wire.MemberEntry {
			r := rec(x)
			r.Links = []string{string(other.id.ID), string(other.id.ID)}
			return signedEntry(t, x.id.Key, r)
		}, "links not sorted or repeated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.mesh.BadFrames()
			x := newHost(t, "x")
			l := dialRaw(t, x, a, TCP)
			if _, err := l.out.w.Write(mustControl(t, wire.FrameMembers, &wire.Members{Entries: []wire.MemberEntry{tt.entry(x)}})); err != nil {
				t.Fatal(err)
			}
			hosttest.CheckFor(t, 5*time.Second, func() error {
				if n := a.mesh.BadFrames(); n != before+1 {
					return fmt.Errorf("a counted %d bad frames, want %d; %s", n, before+1, describeHost(a))
				}
				return nil
			})
			var msg string
			for range 20 {
				typ, body, err := l.rd.fr.Next()
				if err != nil {
					break
				}
				if typ == wire.FrameError {
					var ef wire.ErrorFrame
					wire.DecodeControl(body, &ef)
					msg = ef.Msg
					break
				}
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error frame %q, want it to contain %q", msg, tt.want)
			}
			if _, ok := memberOf(a, x); ok {
				t.Error("a holds a record from the refused entry")
			}
			if got, err := call(a, "echo.x", "still", 5*time.Second); err != nil || got != "g:still" {
				t.Fatalf("a's other link after the bad frame: %q %v", got, err)
			}
		})
	}
}

// TestOwnRecordFromEarlierRun: when the mesh still holds a record of this
// node from an earlier run with a higher version (a clock that went back,
// say), the node outdoes it instead of being shadowed by it.
func TestOwnRecordFromEarlierRun(t *testing.T) {
	a := newHost(t, "a")
	x := newHost(t, "x")
	l := dialRaw(t, x, a, TCP)
	old := &wire.MemberRecord{ID: string(a.id.ID), Name: "a", Key: a.id.Key.Public().(ed25519.PublicKey),
		Version: uint64(time.Now().Add(time.Hour).UnixNano()), Left: true}
	if _, err := l.out.w.Write(mustControl(t, wire.FrameMembers, &wire.Members{Entries: []wire.MemberEntry{signedEntry(t, a.id.Key, old)}})); err != nil {
		t.Fatal(err)
	}
	// a answers on the same link with its own record, outdoing the old one.
	for range 20 {
		typ, body, err := l.rd.fr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if typ != wire.FrameMembers {
			continue
		}
		var f wire.Members
		if err := wire.DecodeControl(body, &f); err != nil {
			t.Fatal(err)
		}
		for _, e := range f.Entries {
			r, err := openEntry(&e)
			if err != nil {
				t.Fatal(err)
			}
			if identity.ID(r.ID) == a.id.ID && r.Version > old.Version {
				if r.Left {
					t.Fatal("a took over the old record's leave")
				}
				return
			}
		}
	}
	t.Fatal("a never sent a record outdoing the one from its earlier run")
}

// TestFarMemberThatCannotBeDialled: a message for a member this host
// cannot link to (its listener is gone, say a firewall) fails as
// unreachable once the dialling gives up, naming why, instead of waiting
// for its deadline; the next one within the redial gap fails at once.
func TestFarMemberThatCannotBeDialled(t *testing.T) {
	hosts := startChain(t, 4, TCP, func(o *Options) { o.ListenQUIC = "" })
	a, d := hosts[0], hosts[3]
	hosttest.CheckFor(t, 10*time.Second, func() error { return allAliveErr(hosts) })
	// The route follows the membership a moment later (TestChainMembership).
	hosttest.CheckFor(t, 5*time.Second, func() error { return routeErr(a, "svc3.x", 0) })
	d.mesh.ln.tcp.Close()
	for range 2 {
		start := time.Now()
		_, err := call(a, "svc3.x", "x", 10*time.Second)
		if message.StatusOf(err) != abi.StatusUnreachable || !strings.Contains(err.Error(), "cannot link to it") {
			t.Fatalf("call to a member whose listener is gone: %v, want unreachable naming the failed link", err)
		}
		t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if a.mesh.links.get(d.id.ID) != nil {
		t.Fatal("a linked to d although d listens nowhere")
	}
}

// TestFarMemberWithoutAddress: a live member whose records carry no
// address this host can dial (only an unspecified listen host, no
// reach) fails a message at once, saying so.
func TestFarMemberWithoutAddress(t *testing.T) {
	a := newHost(t, "a")
	x := newHost(t, "x")
	y := newHost(t, "y")
	ghost := newHost(t, "ghost")
	y.mesh.Close(context.Background())
	ghost.mesh.Close(context.Background())
	l := dialRaw(t, x, a, TCP)
	// a - x - y - ghost: ghost is three links from a, so no relay.
	rec := func(h *host, links ...*host) wire.MemberEntry {
		var ids []string
		for _, o := range links {
			ids = append(ids, string(o.id.ID))
		}
		slices.Sort(ids)
		r := &wire.MemberRecord{ID: string(h.id.ID), Name: h.name, Key: h.id.Key.Public().(ed25519.PublicKey), Version: 1, Links: ids}
		if h == ghost {
			r.Listen, r.Services = []string{"tcp://0.0.0.0:7400"}, []string{"ghostsvc"}
		}
		return signedEntry(t, h.id.Key, r)
	}
	f := &wire.Members{Entries: []wire.MemberEntry{rec(x, a, y), rec(y, x, ghost), rec(ghost, y)}}
	if _, err := l.out.w.Write(mustControl(t, wire.FrameMembers, f)); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, 5*time.Second, func() error {
		mb, _ := memberOf(a, ghost)
		if err := memberErr(a, ghost, MemberAlive); err != nil || mb.Hops != 3 {
			return fmt.Errorf("a holds ghost %d links away, want a live member 3 away: %v", mb.Hops, err)
		}
		return nil
	})
	_, err := call(a, "ghostsvc.x", "x", 10*time.Second)
	if message.StatusOf(err) != abi.StatusUnreachable || !strings.Contains(err.Error(), "no address to link to it is known") {
		t.Fatalf("call to a member with no address: %v", err)
	}
}

// TestRelayedEventsInOrder: events to a subscriber two links away go
// through the relay in publish order; publishing alone does not make the
// publisher link to it.
func TestRelayedEventsInOrder(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			hosts := startChain(t, 3, tr)
			a, c := hosts[0], hosts[2]
			sub := &echoEP{}
			c.serve("sub", sub, nil, []string{"news.>"})
			hosttest.CheckFor(t, 10*time.Second, func() error {
				for _, n := range a.mesh.routes.load().listeners {
					if n.id == c.id.ID && n.via != nil {
						return nil
					}
				}
				return holds(false, "a does not reach c's topic through b", a)
			})
			var want []string
			for i := range 50 {
				want = append(want, fmt.Sprint(i))
				if n := a.mesh.Publish(&message.Message{Kind: abi.KindEvent, Subject: "news.x", Payload: []byte(want[i])}); n != 1 {
					t.Fatalf("publish %d reached %d hosts, want 1", i, n)
				}
			}
			hosttest.CheckFor(t, 5*time.Second, func() error {
				return holds(len(sub.got()) == 50, fmt.Sprintf("c got %d of 50 events", len(sub.got())), a, c)
			})
			if got := sub.got(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("events through the relay out of order: %v", got)
			}
			if a.mesh.links.get(c.id.ID) != nil {
				t.Error("publishing to a relayed subscriber made a link to it")
			}
		})
	}
}
