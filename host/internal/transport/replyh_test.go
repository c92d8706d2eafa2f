package transport

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestRespondHCarriesReplyHeaders runs transport_replyh.wat: a request
// routed out through a transport and answered with respond_h brings the
// reply's headers to a caller that asks for them; an error reply brings
// none; headers section 10 refuses get -invalid and leave the request
// unanswered, so the plugin's plain respond after them is the answer.
func TestRespondHCarriesReplyHeaders(t *testing.T) {
	g := start(t, "transport_replyh", Config{Accept: []string{"127.0.0.1:0"}}, []string{"x"}, nil)
	dialTo(t, g.tr)
	waitFor(t, "the accepted connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	callH := func(payload string) (string, abi.Headers, error) {
		var rh abi.Headers
		ctx, cancel := context.WithTimeout(context.Background(), liveness)
		defer cancel()
		out, err := g.r.Call(ctx, &message.Message{Kind: abi.KindRequest, Subject: "x.y", Payload: []byte(payload),
			Deadline: time.Now().Add(liveness), From: "test", ReplyHeaders: &rh})
		return string(out), rh, err
	}
	got, rh, err := callH("hi")
	if want := (abi.Headers{"served-by": "wat"}); err != nil || got != "hi" || !maps.Equal(rh, want) {
		t.Fatalf("call = %q, headers %v, %v; want \"hi\", %v", got, rh, err, want)
	}
	if _, rh, err := callH("fail"); message.StatusOf(err) != abi.StatusHandlerError || rh != nil {
		t.Fatalf("failing call: headers %v, err %v; want none and handler_error", rh, err)
	}
	if got, rh, err := callH("bad"); err != nil || got != "refused" || rh != nil {
		t.Fatalf("call answered with refused headers = %q, headers %v, %v; want \"refused\" (respond_h returned -invalid) and no headers", got, rh, err)
	}
	// A caller that does not ask gets the reply as before.
	if got, err := call(g.r, "x.y", "plain"); err != nil || string(got) != "plain" {
		t.Fatalf("call without ReplyHeaders = %q, %v", got, err)
	}
}
