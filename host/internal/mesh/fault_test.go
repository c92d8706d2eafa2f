package mesh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// dialRaw completes a real handshake from x to h over transport and
// returns the link without starting its loops, so a test can write
// arbitrary bytes on an authenticated link.
func dialRaw(t *testing.T, x, h *host, transport string) *link {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := h.peer(transport)
	var c conn
	var err error
	if transport == TCP {
		c, err = dialTCP(ctx, p.Addr, x.mesh.self.clientTLS)
	} else {
		c, err = dialQUIC(ctx, p.Addr, x.mesh.self.clientTLS, time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	l, err := x.mesh.handshake(ctx, c, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close("test over") })
	return l
}

// TestBadFramesCloseOnlyThatLink sends malformed and oversized frames on an
// authenticated link: the receiver closes that link, counts it, and keeps
// serving its other peers.
func TestBadFramesCloseOnlyThatLink(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"unknown type", []byte{0, 0, 0, 2, 0x7f, 0}},
		{"zero length", []byte{0, 0, 0, 0}},
		{"oversized", []byte{0x7f, 0xff, 0xff, 0xff, 16}},
		{"garbage envelope", append([]byte{0, 0, 0, 4, byte(wire.FrameMsg)}, 0xff, 0xfe, 0xfd)},
		{"second hello", mustControl(t, wire.FrameHello, &wire.Hello{Min: 1, Max: 1})},
		{"spoofed origin", wire.AppendEnvelope(nil, &wire.Envelope{Version: 1, Kind: wire.KindSend, From: strings.Repeat("a", 32), Subject: "echo.x"})},
	}
	for _, tr := range transports {
		a := newHost(t, "a")
		good := newHost(t, "good", withPeers(a.peer(tr)))
		good.serve("echo", &echoEP{prefix: "g:"}, []string{"echo"}, nil)
		waitRoute(t, a, "echo.x")
		for _, tt := range tests {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				before := a.mesh.BadFrames()
				x := newHost(t, "x")
				l := dialRaw(t, x, a, tr)
				if _, err := l.out.w.Write(tt.frame); err != nil {
					t.Fatal(err)
				}
				hosttest.CheckFor(t, 5*time.Second, func() error {
					if n := a.mesh.BadFrames(); n != before+1 {
						return fmt.Errorf("a counted %d bad frames, want %d; %s", n, before+1, describeHost(a))
					}
					return nil
				})
				// a answers with an error frame naming the problem (after any
				// interest or ping it had queued), then closes.
				for range 10 {
					typ, body, err := l.rd.fr.Next()
					if err != nil {
						break
					}
					if typ == wire.FrameError {
						var ef wire.ErrorFrame
						wire.DecodeControl(body, &ef)
						t.Logf("error frame: %d %s", ef.Code, ef.Msg)
						break
					}
					if typ != wire.FrameInterest && typ != wire.FramePing && typ != wire.FramePong && typ != wire.FrameMembers {
						t.Errorf("after a bad frame a sent a %v frame", typ)
					}
				}
				if got, err := call(a, "echo.x", "still", 5*time.Second); err != nil || got != "g:still" {
					t.Fatalf("a's other link after the bad frame: %q %v", got, err)
				}
			})
		}
	}
}

func mustControl(t *testing.T, ft wire.FrameType, v any) []byte {
	b, err := wire.AppendControl(nil, ft, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVersionMismatchNamesBothVersions speaks a protocol version the host
// does not know; the refusal names both ranges.
func TestVersionMismatchNamesBothVersions(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a")
			x := newHost(t, "x")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var c conn
			var err error
			if tr == TCP {
				c, err = dialTCP(ctx, a.peer(tr).Addr, x.mesh.self.clientTLS)
			} else {
				c, err = dialQUIC(ctx, a.peer(tr).Addr, x.mesh.self.clientTLS, time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.close("done")
			r, w, err := c.openMain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(mustControl(t, wire.FrameHello, &wire.Hello{Min: 7, Max: 9, ID: string(x.mesh.ID()), Name: "x", MaxFrame: 1 << 20}))
			// The refusal is an error frame; over QUIC the connection close
			// that follows may overtake it, and carries the same text.
			typ, body, err := wire.NewReader(r, 1<<20).Next()
			var msg string
			switch {
			case err == nil && typ == wire.FrameError:
				var ef wire.ErrorFrame
				if err := wire.DecodeControl(body, &ef); err != nil {
					t.Fatal(err)
				}
				if ef.Code != wire.ErrVersion {
					t.Errorf("error code %v, want %v", ef.Code, wire.ErrVersion)
				}
				msg = ef.Msg
			case err != nil && tr == QUIC:
				msg = err.Error()
			default:
				t.Fatalf("want an error frame, got %v %v", typ, err)
			}
			if !strings.Contains(msg, fmt.Sprintf("%d..%d", wire.MinVersion, wire.MaxVersion)) || !strings.Contains(msg, "7..9") {
				t.Fatalf("refusal %q does not name both version ranges", msg)
			}
		})
	}
}

// TestCATrust runs the ca trust mode with a real CA: nodes with
// certificates it issued join, a self-signed node and one from another CA
// are refused, on both transports.
func TestCATrust(t *testing.T) {
	dir := t.TempDir()
	caPool, issue := newCA(t)
	_, otherIssue := newCA(t)
	policy := &identity.Policy{CA: caPool}
	member := func(name string, issuer func(ed25519.PublicKey) []byte) *identity.Identity {
		key := filepath.Join(dir, name+".key")
		id, err := identity.LoadOrCreate(key, "")
		if err != nil {
			t.Fatal(err)
		}
		if issuer == nil {
			return id
		}
		cert := filepath.Join(dir, name+".crt")
		os.WriteFile(cert, issuer(id.Key.Public().(ed25519.PublicKey)), 0o644)
		id, err = identity.LoadOrCreate(key, cert)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	withID := func(id *identity.Identity) hostOpt { return func(o *Options) { o.Identity = id } }
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			a := newHost(t, "a", withPolicy(policy), withID(member("a-"+tr, issue)))
			a.serve("echo", &echoEP{prefix: "a:"}, []string{"private"}, nil)
			b := newHost(t, "b", withPolicy(policy), withID(member("b-"+tr, issue)), withPeers(a.peer(tr)))
			waitRoute(t, b, "private.x")
			for _, bad := range []struct {
				name string
				id   *identity.Identity
			}{{"self-signed", member("self-"+tr, nil)}, {"other-ca", member("other-"+tr, otherIssue)}} {
				before := a.mesh.RefusedCount()
				x := newHost(t, bad.name, withPolicy(policy), withID(bad.id), withPeers(a.peer(tr)))
				hosttest.CheckFor(t, 5*time.Second, func() error {
					return holds(a.mesh.RefusedCount() > before, "a refuses "+bad.name+": refused count still "+fmt.Sprint(before), a)
				})
				if _, err := call(x, "private.x", "hi", time.Second); message.StatusOf(err) != abi.StatusNoHandler {
					t.Errorf("%s reached the service: %v", bad.name, err)
				}
			}
		})
	}
}

// newCA makes a real CA and returns its pool and a function issuing node
// certificates (PEM) for a public key.
func newCA(t *testing.T) (*x509.CertPool, func(ed25519.PublicKey) []byte) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serial := int64(2)
	return pool, func(node ed25519.PublicKey) []byte {
		serial++
		leaf := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "node"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, leaf, ca, node, priv)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
}

// TestNameClashRefused: a member that claims another node's name, this
// host's name, or the start of another node's id captures no message meant
// for that node. The reference is refused with status invalid listing the
// ids that match, in Target, CallTo and SendTo alike; each id still
// reaches its own node; peers shows the clash. (Before, the lowest id kept
// the name: an imposter with a lower id received every --node call.)
func TestNameClashRefused(t *testing.T) {
	a := newHost(t, "a")
	b1 := newHost(t, "b", withPeers(a.peer(TCP)))
	b2 := newHost(t, "b", withPeers(a.peer(TCP)))
	b1.serve("echo", &echoEP{prefix: "b1:"}, []string{"echo"}, nil)
	b2.serve("echo", &echoEP{prefix: "b2:"}, []string{"echo"}, nil)
	hosttest.CheckFor(t, 5*time.Second, func() error { return routeErr(a, "echo.x", 2) })
	msg := func() *message.Message {
		return &message.Message{Kind: abi.KindRequest, Subject: "echo.x", Payload: []byte("hi"), Deadline: time.Now().Add(5 * time.Second), From: "test"}
	}
	refused := func(ref string, ids ...identity.ID) {
		t.Helper()
		check := func(path string, err error) {
			t.Helper()
			if message.StatusOf(err) != abi.StatusInvalid {
				t.Fatalf("%s(%q): status %v (%v), want invalid", path, ref, message.StatusOf(err), err)
			}
			for _, id := range ids {
				if !strings.Contains(err.Error(), string(id)) {
					t.Fatalf("%s(%q): error %q does not list id %s", path, ref, err, id)
				}
			}
		}
		self, err := a.mesh.Target(ref)
		if self {
			t.Fatalf("Target(%q) resolved to this host", ref)
		}
		check("Target", err)
		out, err := a.mesh.CallTo(context.Background(), ref, msg())
		if err == nil {
			t.Fatalf("CallTo(%q) answered %q", ref, out)
		}
		check("CallTo", err)
		check("SendTo", a.mesh.SendTo(context.Background(), ref, msg()))
	}
	reaches := func(ref, want string) {
		t.Helper()
		if self, err := a.mesh.Target(ref); self || err != nil {
			t.Fatalf("Target(%q) = %v, %v", ref, self, err)
		}
		out, err := a.mesh.CallTo(context.Background(), ref, msg())
		if err != nil || string(out) != want {
			t.Fatalf("CallTo(%q) = %q, %v; want %q", ref, out, err, want)
		}
	}

	refused("b", b1.mesh.ID(), b2.mesh.ID())
	reaches(string(b1.mesh.ID()), "b1:hi")
	reaches(string(b2.mesh.ID()), "b2:hi")
	if _, seen := a.mesh.routes.clashes.Load("b"); !seen {
		t.Fatal("the clash was not logged")
	}
	for _, p := range a.mesh.Peers() {
		other := map[string]string{string(b1.mesh.ID()): string(b2.mesh.ID()), string(b2.mesh.ID()): string(b1.mesh.ID())}[p.ID]
		if p.Name == "b" && (len(p.Clash) != 1 || p.Clash[0] != other) {
			t.Errorf("peers does not show the clash: %+v", p)
		}
	}

	// A member that claims this host's own name: the name addresses
	// neither, the own id still means this host.
	imp := newHost(t, "a", withPeers(a.peer(TCP)))
	hosttest.CheckFor(t, 5*time.Second, func() error {
		return holds(a.mesh.routes.load().nodes[imp.mesh.ID()] != nil, "a learns the member that claims its name", a)
	})
	refused("a", a.mesh.ID(), imp.mesh.ID())
	if self, err := a.mesh.Target(string(a.mesh.ID())); !self || err != nil {
		t.Fatalf("Target(own id) = %v, %v", self, err)
	}
	for _, p := range a.mesh.Peers() {
		if p.ID == string(imp.mesh.ID()) && (len(p.Clash) != 1 || p.Clash[0] != string(a.mesh.ID())) {
			t.Errorf("peers does not show that %s claims this host's name: %+v", p.ID, p)
		}
	}

	// A member named after the start of b1's id, as the peers table
	// shows it: the prefix matches both, the full id only b1.
	short := string(b1.mesh.ID())[:12]
	pre := newHost(t, short, withPeers(a.peer(TCP)))
	hosttest.CheckFor(t, 5*time.Second, func() error {
		return holds(a.mesh.routes.load().nodes[pre.mesh.ID()] != nil, "a learns the member named "+short, a)
	})
	refused(short, b1.mesh.ID(), pre.mesh.ID())
	reaches(string(b1.mesh.ID()), "b1:hi")
}

// TestStuckPeerBoundsMemory: a peer that stops reading cannot make the
// sender queue more than its send buffer: events beyond it are dropped and
// counted, calls fail at their deadline, and the link is closed once a
// write has been blocked for the dead time.
func TestStuckPeerBoundsMemory(t *testing.T) {
	a := newHost(t, "a", func(o *Options) { o.SendBuffer = 256 << 10 })
	x := newHost(t, "x")
	l := dialRaw(t, x, a, TCP) // x never reads: its read loop never runs
	hosttest.CheckFor(t, 5*time.Second, func() error { return holds(len(a.mesh.links.all()) == 1, "a holds one link", a) })
	// x subscribes (as far as a knows) by advertising an interest.
	x.mesh.local = x.router
	if _, err := x.router.Subscribe("flood.>", 1); err != nil {
		t.Fatal(err)
	}
	l.enqueueControl(wire.FrameInterest, &wire.Interest{Seq: 1, Topics: []string{"flood.>"}, Services: []string{"stuck"}})
	go l.out.writeLoop()
	hosttest.CheckFor(t, 5*time.Second, func() error { return listenersErr(a, 1) })
	// A call to the stuck peer fails at its deadline.
	start := time.Now()
	_, err := call(a, "stuck.x", "hi", 300*time.Millisecond)
	if s := message.StatusOf(err); s != abi.StatusTimeout && s != abi.StatusBusy {
		t.Fatalf("call to a stuck peer: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("call to a stuck peer returned after %v", el)
	}
	// A flood of events neither blocks the publisher nor grows the queue
	// beyond the send buffer: the excess is dropped and counted.
	al := a.mesh.links.all()
	if len(al) != 1 {
		t.Fatalf("%d links", len(al))
	}
	sl := al[0]
	payload := make([]byte, 64<<10)
	start = time.Now()
	maxQueued := 0
	for range 2000 {
		a.router.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "flood.x", Payload: payload})
		maxQueued = max(maxQueued, sl.out.queued())
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("publishing to a stuck peer took %v", el)
	}
	if limit := 256<<10 + wire.FrameLimit(64<<10); maxQueued > limit {
		t.Errorf("%d bytes queued for a stuck peer, limit %d", maxQueued, limit)
	}
	if sl.dropped.Load() == 0 {
		t.Error("no event was dropped")
	}
	t.Logf("published 2000 × 64 KiB in %v; at most %d bytes queued; %d dropped", time.Since(start).Round(time.Millisecond), maxQueued, sl.dropped.Load())
	// An event with a deadline waits for room until then, and is dropped
	// when none comes. (The kernel's socket buffers, which grow, may take
	// a few megabytes more first.)
	for i := 0; ; i++ {
		start = time.Now()
		k, _ := a.router.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "flood.x", Payload: payload,
			Deadline: time.Now().Add(300 * time.Millisecond)})
		el := time.Since(start)
		if k == 0 {
			if el < 250*time.Millisecond || el > 5*time.Second {
				t.Errorf("an event with a 300ms deadline to a stuck peer was dropped after %v; want about 300ms", el)
			}
			break
		}
		if i == 400 {
			t.Fatalf("400 events of 64 KiB with a deadline went out to a peer that reads nothing")
		}
	}
	// The ping loop closes the link once a write has been stuck too long
	// (dead time 2s in these tests).
	hosttest.CheckFor(t, 15*time.Second, func() error { return holds(len(a.mesh.links.all()) == 0, "a closes the stuck link", a) })
}

// TestDiscoveredCandidates: a host reported by discovery is dialled and
// shows how it was found; one that answers with another id is refused.
func TestDiscoveredCandidates(t *testing.T) {
	a := newHost(t, "a")
	b := newHost(t, "b")
	port := func(h *host, tr string) int {
		_, p, _ := net.SplitHostPort(h.peer(tr).Addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	lo := []net.IP{net.IPv4(127, 0, 0, 1)}
	// A candidate that claims to be someone else is not linked.
	impostor := newHost(t, "impostor")
	a.mesh.Discovered(Candidate{ID: impostor.mesh.ID(), Name: "impostor", Addrs: lo, TCPPort: port(b, TCP), Source: FoundMDNS})
	// Both report each other, as mDNS would.
	a.mesh.Discovered(Candidate{ID: b.mesh.ID(), Name: "b", Addrs: lo, TCPPort: port(b, TCP), QUICPort: port(b, QUIC), Source: FoundMDNS})
	b.mesh.Discovered(Candidate{ID: a.mesh.ID(), Name: "a", Addrs: lo, TCPPort: port(a, TCP), QUICPort: port(a, QUIC), Source: FoundMDNS})
	hosttest.CheckFor(t, 10*time.Second, func() error { return joinedErr(a, b) })
	for _, h := range []*host{a, b} {
		for _, p := range h.mesh.Peers() {
			if p.State == "up" && p.Found != FoundMDNS && p.Found != FoundInbound {
				t.Errorf("%s sees %s found %q", h.name, p.Name, p.Found)
			}
		}
	}
	// The lower id dialled: its side says mdns.
	low, high := a, b
	if b.mesh.ID() < a.mesh.ID() {
		low, high = b, a
	}
	if l := low.mesh.links.get(high.mesh.ID()); l == nil || l.found != FoundMDNS || !l.dialed {
		t.Errorf("the lower id's link: %+v", l)
	}
	time.Sleep(200 * time.Millisecond)
	if a.mesh.links.get(impostor.mesh.ID()) != nil {
		t.Error("a linked to a host that answered with another id")
	}
}
