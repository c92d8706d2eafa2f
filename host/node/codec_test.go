package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// codecConfig runs the WAT codec codec_upper (text/plain -> text/x-upper,
// identity <-> x-rev) and the Go echo three times: "up" takes only
// text/x-upper, "plain" takes text/plain, "raw" declares nothing.
func codecConfig() string {
	return fmt.Sprintf(`
plugins:
  - name: upper
    path: %s
    kind: codec
  - name: up
    path: builtin:echo
    services: [echo]
    topics: [greetings.>]
    grants: [log, publish]
    accepts: [text/x-upper]
  - name: plain
    path: %s
    services: [plain]
    accepts: [text/plain]
  - name: raw
    path: %s
    services: [raw]
`, wasmFixture("codec_upper.wasm"), wasmFixture("echo.wasm"), wasmFixture("echo.wasm"))
}

// wasmFixture is the absolute path of testdata/wat/NAME.
func wasmFixture(name string) string {
	p, err := filepath.Abs(repo("testdata", "wat", name))
	if err != nil {
		panic(err)
	}
	return p
}

func call(n *Node, subject, payload string, h abi.Headers) ([]byte, abi.Headers, error) {
	var rh abi.Headers
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := n.Call(ctx, &message.Message{Kind: abi.KindRequest, Subject: subject, Payload: []byte(payload),
		Headers: h, Deadline: time.Now().Add(10 * time.Second), From: "control", ReplyHeaders: &rh})
	return reply, rh, err
}

func TestCodecConvertsForAccepts(t *testing.T) {
	n, c, logs := startNode(t, t.TempDir(), codecConfig())
	ct := func(t string) abi.Headers { return abi.Headers{"content-type": t} }

	// A message of another type is converted before the handler gets it,
	// and the handler sees the type it was handed.
	got, rh, err := call(n, "echo.headers", "", ct("text/plain; charset=us-ascii"))
	if err != nil || string(got) != "content-type=text/x-upper\n" {
		t.Fatalf("headers the handler got: %q, %v", got, err)
	}
	got, rh, err = call(n, "echo.prefix", "hello", ct("text/plain"))
	if err != nil || string(got) != "HELLO" {
		t.Fatalf("converted call: %q, %v", got, err)
	}
	// No codec goes back to text/plain: the reply keeps its type and says so.
	if rh["content-type"] != "text/x-upper" {
		t.Fatalf("reply headers %v, want content-type text/x-upper", rh)
	}
	// A type nobody converts: unsupported_type naming type, plugin, accepts.
	_, _, err = call(n, "echo.prefix", "{}", ct("application/json"))
	if message.StatusOf(err) != abi.StatusUnsupportedType || !strings.Contains(err.Error(), `content-type application/json: plugin "up" accepts text/x-upper and no codec converts application/json`) {
		t.Fatalf("unconvertible call: %v", err)
	}
	// Without content-type nothing is converted.
	if got, _, err = call(n, "echo.prefix", "hello", nil); err != nil || string(got) != "hello" {
		t.Fatalf("untyped call: %q, %v", got, err)
	}
	// A plugin without accepts gets bytes as they are, whatever the type.
	if got, _, err = call(n, "raw.x", "abc", ct("application/json")); err != nil || string(got) != "ABC" {
		t.Fatalf("call of a plugin without accepts: %q, %v", got, err)
	}

	// The encoding is decoded first (x-rev reverses), then the type.
	got, _, err = call(n, "echo.prefix", "olleh", abi.Headers{"content-type": "text/plain", "content-encoding": "x-rev"})
	if err != nil || string(got) != "HELLO" {
		t.Fatalf("decoded call: %q, %v", got, err)
	}
	_, _, err = call(n, "echo.prefix", "x", abi.Headers{"content-type": "text/x-upper", "content-encoding": "br"})
	if message.StatusOf(err) != abi.StatusUnsupportedType || !strings.Contains(err.Error(), `content-encoding "br": plugin "up" takes identity and no codec decodes "br"`) {
		t.Fatalf("undecodable call: %v", err)
	}
	// accept-encoding: the reply is encoded when a codec encodes it.
	got, rh, err = call(n, "echo.prefix", "hello", abi.Headers{"content-type": "text/plain", "accept-encoding": "gzip;q=1, x-rev"})
	if err != nil || string(got) != "OLLEH" || rh["content-encoding"] != "x-rev" || rh["content-type"] != "text/x-upper" {
		t.Fatalf("encoded reply: %q %v, %v", got, rh, err)
	}

	// accept: the reply goes to the first type a codec reaches. "plain"
	// (echo.wat, upper-cases) replies text/plain; the codec makes it
	// text/x-upper, which upper-cases again (a no-op the type shows).
	got, rh, err = call(n, "plain.x", "abc", abi.Headers{"content-type": "text/plain", "accept": "application/json, text/x-upper;q=0.5"})
	if err != nil || string(got) != "ABC" || rh["content-type"] != "text/x-upper" {
		t.Fatalf("reply converted to accept: %q %v, %v", got, rh, err)
	}
	_, _, err = call(n, "plain.x", "abc", abi.Headers{"content-type": "text/plain", "accept": "application/json"})
	if message.StatusOf(err) != abi.StatusUnsupportedType || !strings.Contains(err.Error(), `plugin "plain" replied text/plain and no codec converts it to any type of accept: application/json`) {
		t.Fatalf("reply not convertible to accept: %v", err)
	}
	if got, rh, err = call(n, "plain.x", "abc", abi.Headers{"content-type": "text/plain", "accept": "application/json, */*"}); err != nil || rh["content-type"] != "text/plain" {
		t.Fatalf("accept */*: %q %v, %v", got, rh, err)
	}

	// Events are converted per endpoint: up gets "olleh" reversed and
	// typed, and republishes it upper-cased on echo.events.
	sub, err := n.Subscribe("echo.events", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := n.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "greetings.x", Payload: []byte("olleh"),
		Headers: abi.Headers{"content-type": "text/plain", "content-encoding": "x-rev"}, From: "control"}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sub.C():
		if string(m.Payload) != "HELLO" {
			t.Fatalf("event converted for up: republished %q, want HELLO", m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event republished by up")
	}
	// One that cannot be converted is dropped, counted and logged.
	if _, err := n.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "greetings.x", Payload: []byte("{}"),
		Headers: abi.Headers{"content-type": "application/json"}, From: "control"}); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if !strings.Contains(logs.String(), "message not delivered: its payload could not be converted") {
			return fmt.Errorf("no log of the dropped event")
		}
		return nil
	})

	// The control API: 415 for unsupported_type; /v1/plugins shows the
	// accepts, the pairs and the counters.
	_, err = c.Call(context.Background(), "echo.prefix", []byte("{}"), map[string]string{"content-type": "application/json"}, 5*time.Second)
	if message.StatusOf(err) != abi.StatusUnsupportedType {
		t.Fatalf("control call: %v, want unsupported_type", err)
	}
	if got := control.HTTPStatus(abi.StatusUnsupportedType); got != 415 {
		t.Fatalf("HTTP status of unsupported_type %d, want 415", got)
	}
	infos, err := c.Plugins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]control.PluginInfo{}
	for _, i := range infos {
		byName[i.Name] = i
	}
	up, codec := byName["up"], byName["upper"]
	if strings.Join(up.Accepts, ",") != "text/x-upper" || up.Converted == 0 || up.Dropped != 1 {
		t.Errorf("up in /v1/plugins: accepts %v converted %d dropped %d", up.Accepts, up.Converted, up.Dropped)
	}
	if codec.Kind != "codec" || codec.Codec == nil || len(codec.Codec.Pairs) != 3 || codec.Codec.Pairs[0] != "type text/plain text/x-upper" || codec.Codec.Conversions == 0 {
		t.Errorf("codec in /v1/plugins: %+v %+v", codec, codec.Codec)
	}
	if byName["raw"].Accepts != nil || byName["raw"].Codec != nil {
		t.Errorf("raw in /v1/plugins: %+v", byName["raw"])
	}
}

// TestHostileCodecThroughNode: codecs that loop, trap, overflow or emit
// garbage fail the one call with their status, and the node keeps serving.
func TestHostileCodecThroughNode(t *testing.T) {
	wat := wasmFixture("echo.wasm")
	cfg := fmt.Sprintf(`
plugins:
  - name: hostile
    path: %s
    kind: codec
    limits: {timeout: 300ms, max_reply: 4KiB}
  - name: loop
    path: %s
    services: [loop]
    accepts: [text/x-loop]
  - name: trap
    path: %s
    services: [trap]
    accepts: [text/x-trap]
  - name: big
    path: %s
    services: [big]
    accepts: [text/x-big]
  - name: json
    path: %s
    services: [json]
    accepts: [application/json]
`, wasmFixture("codec_hostile.wasm"), wat, wat, wat, wat)
	n, c, _ := startNode(t, t.TempDir(), cfg)
	ct := abi.Headers{"content-type": "text/plain"}
	for _, tc := range []struct {
		subject string
		status  abi.Status
		text    string
	}{
		{"loop.x", abi.StatusTimeout, `convert text/plain to text/x-loop (codec "hostile")`},
		{"trap.x", abi.StatusTrap, "unreachable"},
		{"big.x", abi.StatusTooLarge, "exceeds max_reply (4096 bytes)"},
		{"json.x", abi.StatusInternal, `codec "hostile" produced invalid application/json output`},
	} {
		for range 2 {
			_, _, err := call(n, tc.subject, "data", ct)
			if message.StatusOf(err) != tc.status || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("%s: %v, want %s containing %q", tc.subject, err, tc.status, tc.text)
			}
		}
		// The node and the handler serve on.
		if got, _, err := call(n, tc.subject, "ok", nil); err != nil || string(got) != "OK" {
			t.Fatalf("%s without content-type after the hostile codec: %q, %v", tc.subject, got, err)
		}
	}
	infos, err := c.Plugins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.Name != "hostile" {
			continue
		}
		want := map[string]uint64{"timeout": 2, "trap": 2, "too_large": 2, "internal": 2}
		for k, v := range want {
			if i.Codec.Failures[k] != v {
				t.Errorf("hostile failures %v, want %v", i.Codec.Failures, want)
				break
			}
		}
		if i.State != control.PluginServing {
			t.Errorf("hostile codec state %s", i.State)
		}
	}
}

// TestCodecBadPairsRefused: a codec whose pairs are invalid does not load,
// and the error names the line.
func TestCodecBadPairsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf("plugins:\n  - name: bad\n    path: %s\n    kind: codec\n", wasmFixture("codec_badpairs.wasm"))
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Validate(context.Background(), Options{ConfigPath: path})
	if err == nil || !strings.Contains(err.Error(), `line 2 "type text/plain"`) {
		t.Fatalf("validate of a codec with bad pairs: %v", err)
	}
}

// TestTransportAccepts: a transport that declares accepts gets what is
// routed out through it converted, as a handler does.
func TestTransportAccepts(t *testing.T) {
	dir := t.TempDir()
	n, c, _ := startNode(t, dir, fmt.Sprintf(`
plugins:
  - name: upper
    path: %s
    kind: codec
  - name: wire
    path: %s
    kind: transport
    services: [wire]
    accept: [tcp://127.0.0.1:0]
    accepts: [text/x-upper]
`, wasmFixture("codec_upper.wasm"), wasmFixture("transport_echo.wasm")))
	info := transportInfo(t, c)
	if strings.Join(info.Accepts, ",") != "text/x-upper" {
		t.Fatalf("transport accepts in /v1/plugins: %v", info.Accepts)
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(info.Transport.Listening[0], "tcp://"), eventuallyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(eventuallyTimeout))
	// The transport knows the connection once it has seen bytes from it.
	conn.Write([]byte("hi\n"))
	if _, err := io.ReadFull(conn, make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		got, _, err = call(n, "wire.x", "out", abi.Headers{"content-type": "text/plain"})
		return err
	})
	buf := make([]byte, 3)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "OUT" || string(got) != "OUT" {
		t.Fatalf("peer read %q (%v), caller got %q; want OUT converted for the transport", buf, err, got)
	}
	if _, _, err := call(n, "wire.x", "{}", abi.Headers{"content-type": "application/json"}); message.StatusOf(err) != abi.StatusUnsupportedType {
		t.Fatalf("unconvertible call through the transport: %v", err)
	}
}

// TestCodecReload: a config reload that adds a codec, changes a plugin's
// accepts or removes them takes effect at once, and a new codec file
// (hot reload) brings its pairs into the registry.
func TestCodecReload(t *testing.T) {
	dir := t.TempDir()
	codecFile := filepath.Join(dir, "codec.wasm")
	copyFile(t, wasmFixture("codec_badpairs.wasm"), codecFile)
	head := "control: 127.0.0.1:0\nlisten: {tcp: 127.0.0.1:0, quic: 127.0.0.1:0}\ncache_dir: " + sharedCache + "\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	handler := "plugins:\n  - {name: h, path: " + wasmFixture("echo_a.wasm") + ", services: [h], accepts: [text/x-upper]}\n"
	withCodec := handler + "  - {name: upper, path: " + wasmFixture("codec_upper.wasm") + ", kind: codec}\n"
	path := filepath.Join(dir, "pycomms.yaml")
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(head+cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(handler)
	logs := &hosttest.SyncBuffer{}
	n, err := New(context.Background(), Options{ConfigPath: path, Logger: logs.Logger(), WatchSettle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx := context.Background()
	plain := abi.Headers{"content-type": "text/plain"}

	if _, _, err := call(n, "h.x", "abc", plain); message.StatusOf(err) != abi.StatusUnsupportedType {
		t.Fatalf("no codec yet: %v", err)
	}
	write(withCodec)
	if err := n.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, err := call(n, "h.x", "abc", plain); err != nil || string(got) != "A:ABC" {
		t.Fatalf("after a reload that added the codec: %q, %v", got, err)
	}
	// accepts removed: bytes as they are, whatever the type.
	write(strings.Replace(withCodec, ", accepts: [text/x-upper]", "", 1))
	if err := n.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, err := call(n, "h.x", "abc", plain); err != nil || string(got) != "A:abc" {
		t.Fatalf("after a reload that removed accepts: %q, %v", got, err)
	}
	// A codec file with broken pairs is refused by the reload, naming the
	// line; a good one loads, and a hot reload of the file brings the new
	// version's pairs into the registry.
	write(handler + "  - {name: upper, path: " + codecFile + ", kind: codec}\n")
	if err := n.Reload(ctx); err == nil || !strings.Contains(err.Error(), `line 2 "type text/plain"`) {
		t.Fatalf("reload to a codec with bad pairs: %v, want refused naming line 2", err)
	}
	write(handler + "  - {name: upper, path: " + codecFile + ", kind: codec}\n")
	replaceFile(t, wasmFixture("codec_upper.wasm"), codecFile)
	if err := n.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, err := call(n, "h.x", "abc", plain); err != nil || string(got) != "A:ABC" {
		t.Fatalf("codec from a file: %q, %v", got, err)
	}
	replaceFile(t, wasmFixture("codec_hostile.wasm"), codecFile)
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		_, _, err := call(n, "h.x", "abc", plain)
		if message.StatusOf(err) != abi.StatusUnsupportedType {
			return fmt.Errorf("after the codec file changed to one without text/plain -> text/x-upper: %v", err)
		}
		return nil
	})
}
