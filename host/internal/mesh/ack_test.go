package mesh

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestConfirmInterestChain: in the chain a - b - c, once ConfirmInterest
// returns on a for a new subscription, b and c have confirmed it, and the
// first event c publishes reaches a through the relay b, every time.
func TestConfirmInterestChain(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := newHost(t, "c")
			b := newHost(t, "b", withPeers(c.peer(tr)))
			a := newHost(t, "a", withPeers(b.peer(tr)))
			relayed := func(h, far *host) bool {
				n := h.mesh.routes.load().nodes[far.id.ID]
				return n != nil && n.direct == nil && n.via != nil
			}
			hosttest.CheckFor(t, 10*time.Second, func() error {
				return holds(relayed(a, c) && relayed(c, a), "a and c reach each other through b", a, c)
			})
			for i := range 10 {
				topic := fmt.Sprintf("trial%d.first", i)
				sub, err := a.router.Subscribe(topic, 4)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				got := a.mesh.ConfirmInterest(ctx)
				if ctx.Err() != nil || got.Confirmed != 2 || got.Unconfirmed != 0 {
					t.Errorf("trial %d: ConfirmInterest = %v (wait ended by its context: %v), want b and c confirmed", i, got, ctx.Err())
				}
				cancel()
				n, err := c.router.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: topic, Payload: []byte("first")})
				if err != nil {
					t.Fatal(err)
				}
				select {
				case m := <-sub.C():
					if string(m.Payload) != "first" {
						t.Errorf("trial %d: got %q", i, m.Payload)
					}
				case <-time.After(3 * time.Second):
					t.Errorf("trial %d: the first event published on c after the confirmation never reached a (c delivered to %d)", i, n)
				}
				sub.Close()
			}
			if relayed(a, c) != true {
				t.Log("a and c linked directly during the trials; the later trials did not cross the relay")
			}
		})
	}
}

// rawPeer is a hand-driven peer speaking the protocol over a real link to
// h, with the version range it states in its hello: what an older (or a
// newer, silent) host looks like from h's side.
type rawPeer struct {
	t       *testing.T
	version uint16
	wmu     sync.Mutex
	w       io.Writer
	frames  chan rawFrame
	c       conn
}

type rawFrame struct {
	t    wire.FrameType
	body []byte
}

func dialVersion(t *testing.T, h *host, tr string, minV, maxV uint16) *rawPeer {
	t.Helper()
	x := newHost(t, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var c conn
	var err error
	if tr == TCP {
		c, err = dialTCP(ctx, h.peer(tr).Addr, x.mesh.self.clientTLS)
	} else {
		c, err = dialQUIC(ctx, h.peer(tr).Addr, x.mesh.self.clientTLS, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close("done") })
	r, w, err := c.openMain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, w: w, frames: make(chan rawFrame, 256), c: c}
	p.send(wire.FrameHello, &wire.Hello{Min: minV, Max: maxV, ID: string(x.mesh.ID()), Name: "x", MaxFrame: 1 << 20})
	fr := wire.NewReader(r, wire.FrameLimit(1<<20))
	typ, body, err := fr.Next()
	if err != nil || typ != wire.FrameHello {
		t.Fatalf("want %s's hello, got %v %v", h.name, typ, err)
	}
	var hello wire.Hello
	if err := wire.DecodeControl(body, &hello); err != nil {
		t.Fatal(err)
	}
	p.version = hello.Version
	go func() {
		defer close(p.frames)
		for {
			typ, body, err := fr.Next()
			if err != nil {
				return
			}
			if typ == wire.FramePing {
				// Stay alive: h closes a silent link.
				var ping wire.Ping
				wire.DecodeControl(body, &ping)
				p.send(wire.FramePong, &ping)
				continue
			}
			p.frames <- rawFrame{typ, append([]byte(nil), body...)}
		}
	}()
	return p
}

func (p *rawPeer) send(ft wire.FrameType, v any) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, err := p.w.Write(mustControl(p.t, ft, v)); err != nil {
		p.t.Errorf("raw peer: write %v: %v", ft, err)
	}
}

// next returns the next frame of type ft, skipping others, within 5s; ok
// is false if the link ended or none came.
func (p *rawPeer) next(ft wire.FrameType, v any, skipped *[]wire.FrameType) bool {
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, open := <-p.frames:
			if !open {
				return false
			}
			if f.t != ft {
				if skipped != nil {
					*skipped = append(*skipped, f.t)
				}
				continue
			}
			if v != nil {
				if err := wire.DecodeControl(f.body, v); err != nil {
					p.t.Fatalf("%v body: %v", ft, err)
				}
			}
			return true
		case <-timeout:
			return false
		}
	}
}

// TestConfirmInterestPeerVersions: a peer that speaks only version 1 links
// at version 1, gets the record and interest but no ack, is not waited for,
// and is cut off with protocol if it sends an ack frame; a peer at version
// 2 is waited for until it acks, and is answered with acks itself.
func TestConfirmInterestPeerVersions(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr+"/version 1", func(t *testing.T) {
			a := newHost(t, "a")
			x := dialVersion(t, a, tr, 1, 1)
			if x.version != 1 {
				t.Fatalf("a chose version %d with a peer speaking 1..1", x.version)
			}
			// a's first interest (it serves nothing yet) says a finished
			// bringing the link up.
			if !x.next(wire.FrameInterest, nil, nil) {
				t.Fatal("no interest from a after the handshake")
			}
			sub, err := a.router.Subscribe("news.>", 1)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := a.mesh.ConfirmInterest(ctx)
			if ctx.Err() != nil || got.Confirmed != 0 || got.Unconfirmed != 1 {
				t.Fatalf("ConfirmInterest = %v (ended by its context: %v); want 0 confirmed, 1 not, without waiting", got, ctx.Err())
			}
			var in wire.Interest
			var skipped []wire.FrameType
			for x.next(wire.FrameInterest, &in, &skipped) && len(in.Topics) == 0 {
			}
			if len(in.Topics) != 1 || in.Topics[0] != "news.>" {
				t.Fatalf("the old peer got interest %+v", in)
			}
			for _, ft := range skipped {
				if ft == wire.FrameAck {
					t.Fatal("a sent an ack frame on a version 1 link")
				}
			}
			x.send(wire.FrameInterest, &wire.Interest{Seq: 3, Topics: []string{"x.>"}})
			x.send(wire.FrameAck, &wire.Ack{Interest: 1})
			var ef wire.ErrorFrame
			skipped = nil
			if !x.next(wire.FrameError, &ef, &skipped) || ef.Code != wire.ErrProtocol {
				t.Fatalf("an ack on a version 1 link: got %+v, want a protocol error", ef)
			}
			for _, ft := range skipped {
				if ft == wire.FrameAck {
					t.Error("a acked an interest on a version 1 link")
				}
			}
		})
		t.Run(tr+"/version 2", func(t *testing.T) {
			a := newHost(t, "a")
			x := dialVersion(t, a, tr, 1, 2)
			if x.version != 2 {
				t.Fatalf("a chose version %d with a peer speaking 1..2", x.version)
			}
			// a's first interest (it serves nothing yet) says a finished
			// bringing the link up.
			if !x.next(wire.FrameInterest, nil, nil) {
				t.Fatal("no interest from a after the handshake")
			}
			sub, err := a.router.Subscribe("news.>", 1)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			// x does not answer: a waits as long as it is allowed to.
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			got := a.mesh.ConfirmInterest(ctx)
			cancel()
			if ctx.Err() == nil || got.Confirmed != 0 || got.Unconfirmed != 1 {
				t.Fatalf("ConfirmInterest with a silent version 2 peer = %v (ended by its context: %v); want it to wait to the end, 0 confirmed", got, ctx.Err())
			}
			// The record comes before the interest that needs it.
			var in wire.Interest
			var before []wire.FrameType
			for x.next(wire.FrameInterest, &in, &before) && len(in.Topics) == 0 {
			}
			if len(in.Topics) != 1 {
				t.Fatalf("x got interest %+v", in)
			}
			if len(before) == 0 || before[len(before)-1] != wire.FrameMembers {
				t.Errorf("frames before the interest: %v; want a's record (members) right before it", before)
			}
			x.send(wire.FrameAck, &wire.Ack{Interest: in.Seq})
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if got := a.mesh.ConfirmInterest(ctx); ctx.Err() != nil || got.Confirmed != 1 || got.Unconfirmed != 0 {
				t.Fatalf("ConfirmInterest after x's ack = %v (%v), want 1 confirmed", got, ctx.Err())
			}
			// a acks x's frames: a barrier, and an interest (a has no other
			// peer to pass x's record on to).
			x.send(wire.FrameMembers, &wire.Members{Ack: 77})
			var ack wire.Ack
			if !x.next(wire.FrameAck, &ack, nil) || ack.Members != 77 || ack.Interest != 0 {
				t.Fatalf("a's answer to a barrier: %+v", ack)
			}
			x.send(wire.FrameInterest, &wire.Interest{Seq: 5, Topics: []string{"x.>"}})
			ack = wire.Ack{}
			if !x.next(wire.FrameAck, &ack, nil) || ack.Interest != 5 || len(ack.Nodes) != 0 {
				t.Fatalf("a's answer to an interest: %+v", ack)
			}
			hosttest.CheckFor(t, 5*time.Second, func() error { return listenersErr(a, 1) })
		})
	}
}
