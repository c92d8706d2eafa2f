package plugin

import (
	"context"
	"maps"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestCSDKHeaders builds sdk/c/testdata/headers.c with the C SDK
// (clang-14 and wasi-libc; skipped without them, except in CI) and runs it
// beside headers.wat: pc_call_h's headers (lower-cased by the builder)
// reach the callee and the reply's come back through pc_result_header;
// pc_send_h and pc_publish_h carry theirs; pc_reply_h's reach a Go
// caller; a builder that overflowed sends nothing (PC_TOO_LARGE) and a
// duplicate key is refused by the host (PC_INVALID).
func TestCSDKHeaders(t *testing.T) {
	sdk := filepath.Join("..", "..", "..", "sdk", "c")
	wasm := hosttest.BuildWasmC(t, sdk, filepath.Join(sdk, "testdata", "headers.c"), filepath.Join(sdk, "pycomms.c"))
	env := headersHost(t)
	s := env.s
	c, err := env.e.Load(context.Background(), Spec{Name: "ch", Wasm: wasm, Instances: 1,
		Grants: []abi.Capability{abi.CapCall, abi.CapSend, abi.CapPublish}}, env.r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	if got, err := request(c, "ch.call", "headers.r", 5*time.Second); err != nil || string(got) != "cyes" {
		t.Fatalf("ch.call: reply %q, err %v; want \"cyes\" (the callee saw x-req c, the reply had x-rep yes)", got, err)
	}
	for i, c2 := range []struct{ subject, target string }{{"ch.send", "sink.one"}, {"ch.publish", "sink.two"}} {
		if got, err := request(c, c2.subject, c2.target, 5*time.Second); err != nil || string(got) != "ok" {
			t.Fatalf("%s: reply %q, err %v", c2.subject, got, err)
		}
		if h, n := s.last(); n != i+1 || !maps.Equal(h, abi.Headers{"x-req": "c"}) {
			t.Fatalf("%s: sink got %d messages, the last with headers %v; want {x-req: c}", c2.subject, n, h)
		}
	}
	var rh abi.Headers
	got, err := c.Request(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "ch.reply",
		Deadline: time.Now().Add(5 * time.Second), ReplyHeaders: &rh})
	if err != nil || string(got) != "r" || !maps.Equal(rh, abi.Headers{"x-rep": "c"}) {
		t.Fatalf("ch.reply: reply %q, headers %v, err %v; want \"r\" with {x-rep: c}", got, rh, err)
	}
	for _, c2 := range []struct {
		subject string
		want    abi.Status
	}{{"ch.full", abi.StatusTooLarge}, {"ch.dup", abi.StatusInvalid}} {
		got, err := request(c, c2.subject, "sink.one", 5*time.Second)
		if want := strconv.Itoa(int(c2.want)); err != nil || string(got) != want {
			t.Fatalf("%s: reply %q, err %v; want %q", c2.subject, got, err, want)
		}
	}
	if _, n := s.last(); n != 2 {
		t.Fatalf("the sink got %d messages, want 2: refused headers send nothing", n)
	}
}
