package plugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/plugins"
)

// sink is a plain-Go endpoint that keeps the headers of what is posted
// to it, standing for whoever receives a plugin's sends and events.
type sink struct {
	mu  sync.Mutex
	got []abi.Headers
}

func (s *sink) Request(context.Context, *message.Message) ([]byte, error) { return nil, nil }

func (s *sink) Post(m *message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, m.Headers)
	return nil
}

func (s *sink) last() (abi.Headers, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return nil, 0
	}
	return s.got[len(s.got)-1], len(s.got)
}

// lockedBuffer is a log destination several instances write to at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// headersEnv is headers.wat serving "headers" in a real router, with a
// sink serving "sink" and subscribed to "sink.>".
type headersEnv struct {
	v    *Version
	s    *sink
	logs *lockedBuffer
	e    *Engine
	r    *router.Router
}

func headersHost(t *testing.T) *headersEnv {
	t.Helper()
	logs := &lockedBuffer{}
	e, err := NewEngine(EngineOptions{WatchdogTick: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	r := router.New(router.Options{Logger: slog.New(slog.DiscardHandler)})
	s := &sink{}
	if err := r.SetRoutes("sink", s, []string{"sink"}, []string{"sink.>"}); err != nil {
		t.Fatal(err)
	}
	v, err := e.Load(context.Background(), Spec{Name: "headers", Wasm: fixture(t, "headers.wasm"), Instances: 2,
		Grants: []abi.Capability{abi.CapCall, abi.CapSend, abi.CapPublish}}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if err := r.SetRoutes("headers", v, []string{"headers"}, nil); err != nil {
		t.Fatal(err)
	}
	return &headersEnv{v: v, s: s, logs: logs, e: e, r: r}
}

func code(t *testing.T, reply []byte) int32 {
	t.Helper()
	if len(reply) != 4 {
		t.Fatalf("reply %q is not a 4-byte return code", reply)
	}
	return int32(binary.LittleEndian.Uint32(reply))
}

// TestCallCarriesHeadersBothWays: call_h's headers reach the handler it
// calls (header), and the headers that handler set with reply_h come
// back to the caller (result_header, result_headers). The old call
// carries none but still sees the reply's.
func TestCallCarriesHeadersBothWays(t *testing.T) {
	v := headersHost(t).v
	cases := []struct{ payload, want string }{
		{"Cheaders.r", "1yes"}, // body "1" is the callee's x-req, "yes" the reply's x-rep
		{"Oheaders.r", "-yes"}, // call without headers: the callee saw none
	}
	for _, c := range cases {
		got, err := request(v, "headers.x", c.payload, 5*time.Second)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: reply %q, err %v; want %q", c.payload, got, err, c.want)
		}
	}
	got, err := request(v, "headers.x", "Aheaders.r", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var h abi.Headers
	if err := cbor.Unmarshal(got, &h); err != nil || !maps.Equal(h, abi.Headers{"x-rep": "yes"}) {
		t.Fatalf("result_headers gave %x (%v, err %v), want {x-rep: yes}", got, h, err)
	}
}

// TestReplyHeadersReachAGoCaller: a caller that supplies ReplyHeaders gets
// what the handler set with reply_h; one that does not loses nothing else.
func TestReplyHeadersReachAGoCaller(t *testing.T) {
	v := headersHost(t).v
	var h abi.Headers
	m := &message.Message{Kind: abi.KindRequest, Subject: "headers.r", Payload: []byte("R"),
		Headers: abi.Headers{"x-req": "7"}, Deadline: time.Now().Add(5 * time.Second), ReplyHeaders: &h}
	got, err := v.Request(context.Background(), m)
	if err != nil || string(got) != "7" || !maps.Equal(h, abi.Headers{"x-rep": "yes"}) {
		t.Fatalf("reply %q, headers %v, err %v; want \"7\" with {x-rep: yes}", got, h, err)
	}
	if got, err := request(v, "headers.r", "R", 5*time.Second); err != nil || string(got) != "-" {
		t.Fatalf("without ReplyHeaders: reply %q, err %v; want \"-\"", got, err)
	}
}

// TestSendAndPublishCarryHeaders: send_h and publish_h deliver their
// headers with the message.
func TestSendAndPublishCarryHeaders(t *testing.T) {
	env := headersHost(t)
	v, s := env.v, env.s
	for i, payload := range []string{"Ssink.one", "Psink.two"} {
		got, err := request(v, "headers.x", payload, 5*time.Second)
		if err != nil || code(t, got) != 0 {
			t.Fatalf("%s: reply %x, err %v; want return code 0", payload, got, err)
		}
		// The router hands a send or event to the sink's Post before the
		// import returns, so it is there already.
		h, n := s.last()
		if n != i+1 || !maps.Equal(h, abi.Headers{"x-req": "1"}) {
			t.Fatalf("%s: sink got %d messages, the last with headers %v; want %d, with {x-req: 1}", payload, n, h, i+1)
		}
	}
}

// TestBadHeadersAreRefused: headers a guest hands over that are not a
// CBOR map of lower-case text keys to text are refused with -invalid,
// named in the log, nothing is sent, and the instance keeps serving.
func TestBadHeadersAreRefused(t *testing.T) {
	env := headersHost(t)
	v, s, logs := env.v, env.s, env.logs
	for _, c := range []struct{ payload, log string }{
		{"Bsink.one", "call_h"},
		{"Usink.one", "keys are lower-case"},
		{"H", "reply_h"},
	} {
		got, err := request(v, "headers.x", c.payload, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", c.payload, err)
		}
		if rc := code(t, got); rc != -int32(abi.StatusInvalid) {
			t.Errorf("%s: return code %d, want %d (invalid)", c.payload, rc, -int32(abi.StatusInvalid))
		}
		if !strings.Contains(logs.String(), c.log) {
			t.Errorf("%s: the log does not say %q:\n%s", c.payload, c.log, logs.String())
		}
	}
	if _, n := s.last(); n != 0 {
		t.Errorf("the sink got %d messages; refused headers must send nothing", n)
	}
	if c := v.counts(); c.restarts != 0 {
		t.Errorf("%d instance restarts after refused headers, want 0", c.restarts)
	}
	if got, err := request(v, "headers.x", "Cheaders.r", 5*time.Second); err != nil || string(got) != "1yes" {
		t.Fatalf("after refused headers: reply %q, err %v; want \"1yes\"", got, err)
	}
}

// TestHeadersOutOfBoundsTrap: a headers range outside linear memory is an
// ABI violation like any other out-of-bounds pointer.
func TestHeadersOutOfBoundsTrap(t *testing.T) {
	v := headersHost(t).v
	_, err := request(v, "headers.x", "Xsink.one", 5*time.Second)
	if message.StatusOf(err) != abi.StatusTrap || !strings.Contains(err.Error(), "call_h headers") {
		t.Fatalf("err %v (status %v), want trap naming call_h headers", err, message.StatusOf(err))
	}
}

// TestGoSDKHeaders: the Go SDK's CallWith, SendWith, PublishWith and
// Msg.SetReplyHeader through the bundled echo plugin: a call's headers
// reach the handler it calls, that handler's reply headers come back
// through CallWith and up to the first caller, and sends and events carry
// their headers. Headers the host would refuse fail in the SDK first.
func TestGoSDKHeaders(t *testing.T) {
	wasm, ok := plugins.Builtin("echo")
	if !ok {
		t.Fatal("no builtin echo")
	}
	e := newEngine(t)
	r := router.New(router.Options{Logger: slog.New(slog.DiscardHandler)})
	s := &sink{}
	if err := r.SetRoutes("sink", s, []string{"sink"}, []string{"sink.>"}); err != nil {
		t.Fatal(err)
	}
	v, err := e.Load(context.Background(), Spec{Name: "echo", Wasm: wasm, Instances: 2,
		Grants: []abi.Capability{abi.CapCall, abi.CapSend, abi.CapPublish}}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if err := r.SetRoutes("echo", v, []string{"echo"}, nil); err != nil {
		t.Fatal(err)
	}
	req := func(subject, payload string, h abi.Headers) ([]byte, abi.Headers, error) {
		var rh abi.Headers
		got, err := v.Request(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: subject,
			Payload: []byte(payload), Headers: h, Deadline: time.Now().Add(10 * time.Second), ReplyHeaders: &rh})
		return got, rh, err
	}

	got, rh, err := req("echo.callh", "echo.replyh hi", abi.Headers{"x-a": "1"})
	if want := (abi.Headers{"x-a": "1", "replied": "yes"}); err != nil || string(got) != "hi" || !maps.Equal(rh, want) {
		t.Fatalf("echo.callh: reply %q, headers %v, err %v; want \"hi\" with %v", got, rh, err, want)
	}
	// The old call import carries no headers and brings none back.
	if got, rh, err := req("echo.call", "echo.replyh hi", abi.Headers{"x-a": "1"}); err != nil || string(got) != "hi" || rh != nil {
		t.Fatalf("echo.call: reply %q, headers %v, err %v; want \"hi\" without headers", got, rh, err)
	}
	for i, c := range []struct{ subject, payload string }{{"echo.sendh", "sink.one x"}, {"echo.publishh", "sink.two x"}} {
		if got, _, err := req(c.subject, c.payload, abi.Headers{"x-b": "2"}); err != nil || string(got) != "ok" {
			t.Fatalf("%s: reply %q, err %v", c.subject, got, err)
		}
		if h, n := s.last(); n != i+1 || !maps.Equal(h, abi.Headers{"x-b": "2"}) {
			t.Fatalf("%s: sink got %d messages, the last with headers %v; want {x-b: 2}", c.subject, n, h)
		}
	}
	_, _, err = req("echo.sendh", "sink.one x", abi.Headers{abi.HeaderOrigin: "n1"})
	if message.StatusOf(err) != abi.StatusInvalid || !strings.Contains(err.Error(), "set by the host") {
		t.Fatalf("a reserved header: err %v, want invalid saying it is set by the host", err)
	}
	if _, n := s.last(); n != 2 {
		t.Fatalf("the sink got %d messages, want 2: refused headers send nothing", n)
	}
}
