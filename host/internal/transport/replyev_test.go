package transport

import (
	"context"
	"encoding/binary"
	"io"
	"maps"
	"net"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
)

// serveHeaders loads testdata/wat/headers.wat as the handler of service
// "headers" in g's router.
func serveHeaders(t *testing.T, g *rig) {
	t.Helper()
	engine, err := plugin.NewEngine(plugin.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	// Two instances: "Oheaders.r" calls the plugin from itself.
	v, err := engine.Load(context.Background(), plugin.Spec{Name: "headers", Wasm: wat(t, "headers"), Instances: 2,
		Grants: []abi.Capability{abi.CapCall}}, g.r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if err := g.r.SetRoutes("headers", v, []string{"headers"}, nil); err != nil {
		t.Fatal(err)
	}
}

// replyFrame is one reply event as transport_callh.wat writes it.
type replyFrame struct {
	status  abi.Status
	reply   string
	headers []byte // CBOR, as the event carried it (len_b)
}

// askLine writes line on c and reads the reply frame the plugin writes
// for the request it delivered.
func askLine(t *testing.T, c net.Conn, line string) replyFrame {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	var hdr [12]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("line %q: reading the reply frame: %v", line, err)
	}
	st, la, lb := binary.LittleEndian.Uint32(hdr[0:]), binary.LittleEndian.Uint32(hdr[4:]), binary.LittleEndian.Uint32(hdr[8:])
	if la+lb > 1<<16 {
		t.Fatalf("line %q: reply frame of %d+%d bytes", line, la, lb)
	}
	b := make([]byte, la+lb)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("line %q: reading %d+%d reply bytes: %v", line, la, lb, err)
	}
	return replyFrame{status: abi.Status(st), reply: string(b[:la]), headers: b[la:]}
}

// TestDeliveredRequestReplyHeaders runs transport_callh.wat: a request
// the transport delivers into the host gets, in its reply event, the
// headers its handler (headers.wat) set with reply_h, as a CBOR map in
// len_b right after the reply; a reply without headers and an error
// reply carry none (len_b 0).
func TestDeliveredRequestReplyHeaders(t *testing.T) {
	g := start(t, "transport_callh", Config{Accept: []string{"127.0.0.1:0"}}, nil, nil)
	serveHeaders(t, g)
	c := dialTo(t, g.tr)
	waitFor(t, "the accepted connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	checkReplyEvents(t, c)
}

// checkReplyEvents asks, on c, a transport plugin that frames reply
// events as transport_callh.wat does for three requests to headers.wat,
// and checks the replies and their headers.
func checkReplyEvents(t *testing.T, c net.Conn) {
	t.Helper()
	f := askLine(t, c, "R")
	var h abi.Headers
	if err := cbor.Unmarshal(f.headers, &h); err != nil || f.status != abi.StatusOK || f.reply != "-" {
		t.Fatalf("reply event for R: status %v, reply %q, headers %x (%v); want ok, \"-\", a CBOR map", f.status, f.reply, f.headers, err)
	}
	if want := (abi.Headers{"x-rep": "yes"}); !maps.Equal(h, want) {
		t.Fatalf("reply event headers %v; want %v", h, want)
	}
	if f := askLine(t, c, "Oheaders.r"); f.status != abi.StatusOK || f.reply != "-yes" || len(f.headers) != 0 {
		t.Fatalf("reply event for a reply without headers: status %v, reply %q, headers %x; want ok, \"-yes\", none", f.status, f.reply, f.headers)
	}
	if f := askLine(t, c, "Cnone.x"); f.status != abi.StatusNoHandler || f.reply == "" || len(f.headers) != 0 {
		t.Fatalf("reply event for a failed request: status %v, text %q, headers %x; want no_handler, its text, no headers", f.status, f.reply, f.headers)
	}
}
