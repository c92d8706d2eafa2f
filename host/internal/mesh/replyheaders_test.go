package mesh

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// headerEP answers like a handler that sets its reply's headers
// (reply_h): "served-by" names its host and "echo" repeats the request's
// header "trace". It fails a payload "fail" after setting them, as a
// handler may, so that the test sees an error reply carry none.
type headerEP struct {
	name string
	// inline makes it a router.TryRequester, so that a peer's request runs
	// on the link's reader (inline.go) rather than on a worker.
	inline bool
}

func (e *headerEP) Request(_ context.Context, m *message.Message) ([]byte, error) {
	if m.ReplyHeaders != nil {
		*m.ReplyHeaders = abi.Headers{"served-by": e.name, "echo": m.Headers["trace"]}
	}
	if string(m.Payload) == "fail" {
		return nil, message.Errorf(abi.StatusHandlerError, "%s refuses", e.name)
	}
	return append([]byte(e.name+":"), m.Payload...), nil
}

func (e *headerEP) Post(*message.Message) error { return nil }

// tryHeaderEP is headerEP that can always start at once.
type tryHeaderEP struct{ headerEP }

func (e *tryHeaderEP) TryRequest(ctx context.Context, m *message.Message) ([]byte, bool, error) {
	out, err := e.Request(ctx, m)
	return out, true, err
}

// callH calls subj on h asking for the reply's headers.
func callH(h *host, subj, payload, trace string) (string, abi.Headers, error) {
	var rh abi.Headers
	out, err := h.router.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: subj,
		Payload: []byte(payload), Headers: abi.Headers{"trace": trace}, Deadline: time.Now().Add(5 * time.Second),
		From: "test", ReplyHeaders: &rh})
	return string(out), rh, err
}

// TestReplyHeadersCrossTheMesh: a request served on another host brings
// back the headers its handler set, whether the peer ran it on the link's
// reader or on a worker, over TCP and QUIC; an error reply brings none; a
// caller that does not ask gets its reply as before; and the headers one
// caller got stay its own when later replies reuse the link's envelopes.
func TestReplyHeadersCrossTheMesh(t *testing.T) {
	for _, tr := range transports {
		for _, inline := range []bool{true, false} {
			name := tr + "/workers"
			if inline {
				name = tr + "/inline"
			}
			t.Run(name, func(t *testing.T) {
				a := newHost(t, "a")
				b := newHost(t, "b", withPeers(a.peer(tr)))
				var ep interface {
					Request(context.Context, *message.Message) ([]byte, error)
					Post(*message.Message) error
				} = &headerEP{name: "b"}
				if inline {
					ep = &tryHeaderEP{headerEP{name: "b"}}
				}
				b.serve("hdr", ep, []string{"hdr"}, nil)
				waitRoute(t, a, "hdr.x")

				got, rh, err := callH(a, "hdr.x", "hi", "t1")
				want := abi.Headers{"served-by": "b", "echo": "t1"}
				if err != nil || got != "b:hi" || !maps.Equal(rh, want) {
					t.Fatalf("call = %q, headers %v, %v; want \"b:hi\", %v", got, rh, err, want)
				}
				got2, rh2, err := callH(a, "hdr.x", "again", "t2")
				if err != nil || got2 != "b:again" || rh2["echo"] != "t2" {
					t.Fatalf("second call = %q, headers %v, %v; want echo t2", got2, rh2, err)
				}
				if !maps.Equal(rh, want) {
					t.Fatalf("the first reply's headers changed after a second reply: %v, want %v", rh, want)
				}
				if _, rh, err := callH(a, "hdr.x", "fail", "t3"); message.StatusOf(err) != abi.StatusHandlerError || rh != nil {
					t.Fatalf("failing call: headers %v, err %v; want none and handler_error", rh, err)
				}
				if got, err := call(a, "hdr.x", "plain", 5*time.Second); err != nil || got != "b:plain" {
					t.Fatalf("call without ReplyHeaders = %q, %v", got, err)
				}
			})
		}
	}
}

// TestReplyHeadersThroughARelay: a request relayed by b to c brings c's
// reply headers back to a. The request is addressed to c on a's link to
// b, so it takes the relay path however the hosts link up later.
func TestReplyHeadersThroughARelay(t *testing.T) {
	c := newHost(t, "c")
	b := newHost(t, "b", withPeers(c.peer(TCP)))
	a := newHost(t, "a", withPeers(b.peer(TCP)))
	c.serve("hdr", &headerEP{name: "c"}, []string{"hdr"}, nil)
	waitRoute(t, a, "hdr.x")
	var l *link
	hosttest.CheckFor(t, 5*time.Second, func() error {
		l = a.mesh.links.get(b.id.ID)
		return holds(l != nil, "a has a link to b", a)
	})
	before := b.mesh.inbound.relayed.Load()
	for _, tc := range []struct {
		payload string
		status  uint16
		headers map[string]string
	}{
		{"hi", 0, map[string]string{"served-by": "c", "echo": "r1"}},
		{"fail", uint16(abi.StatusHandlerError), nil},
	} {
		e := wire.Envelope{Version: l.version, Kind: wire.KindRequest, From: string(a.id.ID), To: string(c.id.ID),
			Subject: "hdr.x", Headers: map[string]string{"trace": "r1"}, Payload: []byte(tc.payload), Deadline: uint64((5 * time.Second).Microseconds())}
		r, err := l.request(context.Background(), &e, time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatalf("%s: request through b: %v", tc.payload, err)
		}
		if r.Status != tc.status || !maps.Equal(r.Headers, tc.headers) {
			t.Errorf("%s: reply status %d (%s), headers %v; want status %d, headers %v", tc.payload, r.Status, r.Error, r.Headers, tc.status, tc.headers)
		}
		done(r)
	}
	if n := b.mesh.inbound.relayed.Load() - before; n != 2 {
		t.Fatalf("b relayed %d messages, want 2", n)
	}
}
