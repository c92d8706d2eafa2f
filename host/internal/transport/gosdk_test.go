package transport

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestGoTransportRespondH builds testdata/goreplyh with the Go transport
// SDK and runs it: transport.RespondH gives a routed request's reply
// headers (here the request's own) that reach the caller.
func TestGoTransportRespondH(t *testing.T) {
	g := startWasm(t, buildGoTransport(t, "goreplyh"), Config{Accept: []string{"127.0.0.1:0"}}, []string{"g"}, nil)
	dialTo(t, g.tr)
	waitFor(t, "the accepted connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	var rh abi.Headers
	reply, err := g.r.Call(t.Context(), &message.Message{Kind: abi.KindRequest, Subject: "g.x", Payload: []byte("go"),
		Headers: abi.Headers{"trace-id": "9"}, Deadline: time.Now().Add(liveness), From: "test", ReplyHeaders: &rh})
	if want := (abi.Headers{"trace-id": "9"}); err != nil || string(reply) != "go" || !maps.Equal(rh, want) {
		t.Fatalf("request through the Go transport: %q, headers %v, %v; want \"go\", %v", reply, rh, err, want)
	}
}

// buildGoTransport builds testdata/DIR with the Go transport SDK and
// returns the module; it skips with -short.
func buildGoTransport(t *testing.T, dir string) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	out := filepath.Join(t.TempDir(), dir+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./testdata/"+dir)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// TestGoTransportReplyHeaders builds testdata/gocallh, which implements
// transport.ReplyHeadersHandler: a request it delivers into the host
// comes back to ReplyH with the headers its handler (headers.wat) set,
// and with none for a reply without them or an error reply.
func TestGoTransportReplyHeaders(t *testing.T) {
	g := startWasm(t, buildGoTransport(t, "gocallh"), Config{Accept: []string{"127.0.0.1:0"}}, nil, nil)
	serveHeaders(t, g)
	c := dialTo(t, g.tr)
	waitFor(t, "the accepted connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	checkReplyEvents(t, c)
}
