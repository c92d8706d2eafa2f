package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
)

// callTimeout is the deadline of every request and the plugin time limit
// of the far host (the parameters).
const callTimeout = 10 * time.Second

// Names on the far host: the WAT echo serves echoService; a second copy of
// it subscribes to eventTopic (events get no reply, so it only counts).
const (
	echoService  = "echo"
	echoSubject  = "echo.upper"
	eventTopic   = "bench.>"
	eventSubject = "bench.tick"
	subPlugin    = "sub"
	// goService is served on the far host by a plain Go function
	// (node.Serve) that upper-cases, like NATS's responder: the same path
	// without Wasm.
	goService = "goecho"
	goSubject = "goecho.upper"
)

// Pair is two pycomms hosts in this process, linked over one transport on
// loopback: Near calls and publishes, Far serves the WAT echo (8 instances,
// queue 65536, 10 s limit) and runs a second copy subscribed to bench.>.
// Both are built with node.New from a config file, as a user runs them.
type Pair struct {
	Near, Far *node.Node
	dir       string
}

// StartPair starts the two hosts linked over transport ("tcp", which is TLS,
// or "quic"), with echoWasm the path of the WAT echo module, and waits
// until a call from Near reaches Far's echo and an event reaches Far's
// subscriber.
func StartPair(transport, echoWasm string) (_ *Pair, err error) {
	dir, err := os.MkdirTemp("", "pycomms-compare-")
	if err != nil {
		return nil, fmt.Errorf("compare: temp dir: %w", err)
	}
	p := &Pair{dir: dir}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	port, err := freePort(transport)
	if err != nil {
		return nil, err
	}
	listen := fmt.Sprintf(`{tcp: "127.0.0.1:%d", quic: ""}`, port)
	if transport == "quic" {
		listen = fmt.Sprintf(`{tcp: "", quic: "127.0.0.1:%d"}`, port)
	}
	far := fmt.Sprintf(`listen: %s
plugins:
  - {name: echo, path: %q, services: [%s], instances: 8, queue: 65536, watch: false, limits: {timeout: 10s}}
  - {name: %s, path: %q, topics: [%q], instances: 8, queue: 65536, watch: false, limits: {timeout: 10s}}
`, listen, echoWasm, echoService, subPlugin, echoWasm, eventTopic)
	if p.Far, err = p.start("far", far); err != nil {
		return nil, err
	}
	if _, err = p.Far.Serve(goService, []string{goService}, goUpper); err != nil {
		return nil, fmt.Errorf("compare: far: %w", err)
	}
	near := fmt.Sprintf("listen: {tcp: \"\", quic: \"\"}\npeers: [\"%s://127.0.0.1:%d\"]\n", transport, port)
	if p.Near, err = p.start("near", near); err != nil {
		return nil, err
	}
	if err := p.ready(); err != nil {
		return nil, err
	}
	return p, nil
}

// start writes a config for host name (its own cache and data directories,
// no control API, a shared cluster secret) and starts the node.
func (p *Pair) start(name, extra string) (*node.Node, error) {
	d := filepath.Join(p.dir, name)
	cfg := fmt.Sprintf(`node: {name: %s}
control: {listen: ""}
cache_dir: %q
data_dir: %q
log: {level: error}
trust: {secret: compare-benchmark-cluster-secret}
%s`, name, filepath.Join(d, "cache"), filepath.Join(d, "data"), extra)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("compare: %s: %w", name, err)
	}
	path := filepath.Join(d, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("compare: %s: %w", name, err)
	}
	n, err := node.New(context.Background(), node.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("compare: host %s: %w", name, err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		return nil, fmt.Errorf("compare: host %s: %w", name, err)
	}
	return n, nil
}

// ready polls until a call from Near is answered by Far and an event
// published on Near has a subscriber, for at most 20 s.
func (p *Pair) ready() error {
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		last = p.Call([]byte("ready"))
		if last == nil {
			k, err := p.Near.Publish(context.Background(), p.event([]byte("ready"), time.Time{}))
			if err == nil && k > 0 {
				return nil
			}
			last = fmt.Errorf("publish reached %d subscribers: %v", k, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("compare: hosts not linked after 20s: %w", last)
}

// goUpper is the plain Go responder: it upper-cases, as the WAT echo and
// NATS's responder do.
func goUpper(_ context.Context, m *message.Message) ([]byte, error) {
	return bytes.ToUpper(m.Payload), nil
}

// Call makes one request from Near to Far's WAT echo and checks the
// reply's length.
func (p *Pair) Call(payload []byte) error { return p.call(echoSubject, payload) }

// CallGo makes one request from Near to Far's plain Go responder.
func (p *Pair) CallGo(payload []byte) error { return p.call(goSubject, payload) }

func (p *Pair) call(subject string, payload []byte) error {
	out, err := p.Near.Call(context.Background(), &message.Message{
		Kind: abi.KindRequest, Subject: subject, Payload: payload,
		Deadline: time.Now().Add(callTimeout), From: "compare",
	})
	if err != nil {
		return fmt.Errorf("compare: call %s: %w", subject, err)
	}
	if len(out) != len(payload) {
		return fmt.Errorf("compare: reply of %d bytes, want %d", len(out), len(payload))
	}
	return nil
}

func (p *Pair) event(payload []byte, deadline time.Time) *message.Message {
	return &message.Message{Kind: abi.KindEvent, Subject: eventSubject, Payload: payload, From: "compare", Deadline: deadline}
}

// Publish publishes one event on Near, waiting for room on the link until
// deadline; it reports false when the event reached no subscriber (the
// link's send buffer stayed full, so it was dropped: events are at most
// once).
func (p *Pair) Publish(payload []byte, deadline time.Time) (bool, error) {
	k, err := p.Near.Publish(context.Background(), p.event(payload, deadline))
	return k > 0, err
}

// Received counts the events Far's subscriber plugin has handled.
func (p *Pair) Received() uint64 {
	for _, pi := range p.Far.Plugins() {
		if pi.Name == subPlugin {
			return pi.Calls
		}
	}
	return 0
}

// Close stops both hosts and removes their directories.
func (p *Pair) Close() {
	for _, n := range []*node.Node{p.Near, p.Far} {
		if n != nil {
			n.Close()
		}
	}
	os.RemoveAll(p.dir)
}

// freePort returns a port that was free on 127.0.0.1 for TCP ("tcp") or
// UDP ("quic") a moment ago: the mesh config needs the number before the
// far host starts, and the public API does not report a bound port 0.
func freePort(transport string) (int, error) {
	if transport == "quic" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("compare: free UDP port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	if transport != "tcp" {
		return 0, errors.New("compare: transport must be tcp or quic, not " + transport)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("compare: free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
