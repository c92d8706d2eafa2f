package transport

import (
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"

	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestCTransport builds sdk/c/testdata/transport_lines.c with the C SDK's
// transport half (clang-14 and wasi-libc; skipped without them, except in
// CI) and runs it: lines come back, a partial one waits, a routed request
// is written and answered.
func TestCTransport(t *testing.T) {
	sdk := filepath.Join("..", "..", "..", "sdk", "c")
	wasm := hosttest.BuildWasmC(t, sdk, filepath.Join(sdk, "testdata", "transport_lines.c"), filepath.Join(sdk, "pycomms_transport.c"))
	engine, err := plugin.NewEngine(plugin.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	if k, err := plugin.KindOf(t.Context(), wasm); err != nil || k != "transport" {
		t.Fatalf("the C transport's kind: %q, %v", k, err)
	}
	g := startWasm(t, wasm, Config{Accept: []string{"127.0.0.1:0"}}, []string{"c"}, nil)
	c := dialTo(t, g.tr)
	waitFor(t, "the connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	c.Write([]byte("ab\ncd"))
	if got := readN(t, c, 3); got != "ab\n" {
		t.Fatalf("read %q", got)
	}
	c.Write([]byte("\n"))
	if got := readN(t, c, 3); got != "cd\n" {
		t.Fatalf("read %q, want the kept partial line", got)
	}
	reply, err := call(g.r, "c.x", "out")
	if err != nil || string(reply) != "out" {
		t.Fatalf("request through the C transport: %q, %v", reply, err)
	}
	if got := readN(t, c, 3); got != "out" {
		t.Fatalf("peer read %q", got)
	}
	// pct_respond_h: the reply carries the request's headers back.
	var rh abi.Headers
	reply, err = g.r.Call(t.Context(), &message.Message{Kind: abi.KindRequest, Subject: "c.h", Payload: []byte("hdr"),
		Headers: abi.Headers{"trace-id": "7"}, Deadline: time.Now().Add(liveness), From: "test", ReplyHeaders: &rh})
	if err != nil || string(reply) != "hdr" || !maps.Equal(rh, abi.Headers{"trace-id": "7"}) {
		t.Fatalf("request with headers through the C transport: %q, headers %v, %v; want \"hdr\", {trace-id: 7}", reply, rh, err)
	}
	if got := readN(t, c, 3); got != "hdr" {
		t.Fatalf("peer read %q", got)
	}
}

// TestCTransportReplyHeaders builds sdk/c/testdata/transport_callh.c: a
// request it delivers into the host comes back to its reply_h callback
// with the headers its handler (headers.wat) set, and with none for a
// reply without them or an error reply.
func TestCTransportReplyHeaders(t *testing.T) {
	sdk := filepath.Join("..", "..", "..", "sdk", "c")
	wasm := hosttest.BuildWasmC(t, sdk, filepath.Join(sdk, "testdata", "transport_callh.c"), filepath.Join(sdk, "pycomms_transport.c"))
	g := startWasm(t, wasm, Config{Accept: []string{"127.0.0.1:0"}}, nil, nil)
	serveHeaders(t, g)
	c := dialTo(t, g.tr)
	waitFor(t, "the accepted connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	checkReplyEvents(t, c)
}
