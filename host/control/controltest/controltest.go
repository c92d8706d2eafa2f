// Package controltest provides an in-memory control.Backend and a helper
// that serves it on a loopback port, for tests of control API clients (the
// Go client, the CLI) that must not depend on a whole node. The node's own
// Backend is tested end to end elsewhere; this one only has to behave like
// it at the API boundary: subjects are validated with the abi package, events
// are delivered through bounded per-subscription buffers and dropped (and
// counted) when a buffer is full. It is also a control.Mesh with canned
// peers (see Backend.PeerList); Backend.NoMesh hides that for tests of a
// node outside a mesh.
package controltest

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// Version is what Start's server reports on GET /v1/version.
var Version = control.VersionInfo{
	Version:     "v0.0.0-test",
	Commit:      "0123456789ab",
	GoVersion:   runtime.Version(),
	ABIMin:      abi.MinVersion,
	ABIMax:      abi.MaxVersion,
	ABIVersion:  abi.Version,
	ProtocolMin: wire.MinVersion,
	ProtocolMax: wire.MaxVersion,
}

// Backend is an in-memory control.Backend (and control.Reloader and
// control.Mesh). Set its exported fields before serving it; they are read
// concurrently afterwards.
type Backend struct {
	// CallFunc answers calls to valid subjects; nil echoes the payload.
	CallFunc func(ctx context.Context, m *message.Message) ([]byte, error)
	// SendFunc handles sends to valid subjects after they are recorded;
	// nil accepts them.
	SendFunc func(ctx context.Context, m *message.Message) error
	// ReloadFunc answers reloads; nil succeeds.
	ReloadFunc func(ctx context.Context) error
	// PluginList and HealthInfo are returned by Plugins and Health.
	PluginList []control.PluginInfo
	HealthInfo control.Health

	// OutsideMesh makes InMesh false: the node neither listens nor knows
	// a host, and the mesh routes answer no_handler.
	OutsideMesh bool
	// NodeID is returned by ID. CallNode and SendNode take NodeID, an id
	// prefix of at least 6 characters or HealthInfo.Node as this node.
	NodeID string
	// PeerList is returned by Peers. CallNode and SendNode reach the
	// peers in state "up" or "relayed" by id, name or id prefix of at
	// least 6 characters; any other node is abi.StatusUnreachable.
	PeerList []control.PeerInfo
	// CallNodeFunc answers calls to valid subjects on known nodes, with
	// node as the client gave it; nil answers as Call does.
	CallNodeFunc func(ctx context.Context, node string, m *message.Message) ([]byte, error)
	// SendNodeFunc handles sends to valid subjects on known nodes after
	// they are recorded; nil answers as Send does.
	SendNodeFunc func(ctx context.Context, node string, m *message.Message) error

	mu           sync.Mutex
	subs         map[*Sub]bool
	sent         []*message.Message
	sentTo       []string
	subscribed   chan string
	unsubscribed chan string
}

// NewBackend returns an empty Backend.
func NewBackend() *Backend {
	return &Backend{
		subs: map[*Sub]bool{},
		// Generous buffers: a test waits on these, and a notification
		// that nobody waits for must not block the server.
		subscribed:   make(chan string, 1024),
		unsubscribed: make(chan string, 1024),
	}
}

// Subscribed receives the pattern of every subscription once it is in
// place, so a test can publish knowing the subscriber will see it.
func (b *Backend) Subscribed() <-chan string { return b.subscribed }

// Unsubscribed receives the pattern of every subscription once it is closed.
func (b *Backend) Unsubscribed() <-chan string { return b.unsubscribed }

// Sent returns the messages received by Send so far.
func (b *Backend) Sent() []*message.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*message.Message(nil), b.sent...)
}

// SentTo returns the node of every message in Sent: the node given to
// SendNode, "" for a plain Send.
func (b *Backend) SentTo() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.sentTo...)
}

// Call implements control.Backend.
func (b *Backend) Call(ctx context.Context, m *message.Message) ([]byte, error) {
	if err := abi.ValidateSubject(m.Subject); err != nil {
		return nil, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	if b.CallFunc != nil {
		return b.CallFunc(ctx, m)
	}
	return m.Payload, nil
}

// Send implements control.Backend.
func (b *Backend) Send(ctx context.Context, m *message.Message) error {
	if err := abi.ValidateSubject(m.Subject); err != nil {
		return &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	b.record("", m)
	if b.SendFunc != nil {
		return b.SendFunc(ctx, m)
	}
	return nil
}

func (b *Backend) record(node string, m *message.Message) {
	b.mu.Lock()
	b.sent = append(b.sent, m)
	b.sentTo = append(b.sentTo, node)
	b.mu.Unlock()
}

// InMesh implements control.Mesh.
func (b *Backend) InMesh() bool { return !b.OutsideMesh }

// ID implements control.Mesh.
func (b *Backend) ID() string { return b.NodeID }

// Peers implements control.Mesh.
func (b *Backend) Peers() []control.PeerInfo { return b.PeerList }

// CallNode implements control.Mesh.
func (b *Backend) CallNode(ctx context.Context, node string, m *message.Message) ([]byte, error) {
	if err := abi.ValidateSubject(m.Subject); err != nil {
		return nil, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	if err := b.resolve(node); err != nil {
		return nil, err
	}
	if b.CallNodeFunc != nil {
		return b.CallNodeFunc(ctx, node, m)
	}
	return b.Call(ctx, m)
}

// SendNode implements control.Mesh.
func (b *Backend) SendNode(ctx context.Context, node string, m *message.Message) error {
	if err := abi.ValidateSubject(m.Subject); err != nil {
		return &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	if err := b.resolve(node); err != nil {
		return err
	}
	b.record(node, m)
	if b.SendNodeFunc != nil {
		return b.SendNodeFunc(ctx, node, m)
	}
	if b.SendFunc != nil {
		return b.SendFunc(ctx, m)
	}
	return nil
}

// resolve checks that ref names this node or a reachable peer, as a mesh
// node does: an exact id, or else a name or an id prefix of at least 6
// characters that matches exactly one node; a reference that matches
// several (a name two nodes claim) is invalid and lists their ids.
func (b *Backend) resolve(ref string) error {
	if ref != "" && ref == b.NodeID {
		return nil
	}
	names := []string{b.HealthInfo.Node}
	var match []string
	add := func(id, name string) {
		if (ref == name || len(ref) >= 6 && strings.HasPrefix(id, ref)) && !slices.Contains(match, id) {
			match = append(match, id)
		}
	}
	add(b.NodeID, b.HealthInfo.Node)
	for _, p := range b.PeerList {
		if p.State != control.PeerUp && p.State != control.PeerRelayed {
			continue
		}
		if ref == p.ID {
			return nil
		}
		names = append(names, p.Name)
		add(p.ID, p.Name)
	}
	switch len(match) {
	case 0:
		return message.Errorf(abi.StatusUnreachable, "no node %q in the mesh (known: %v)", ref, names)
	case 1:
		return nil
	}
	slices.Sort(match)
	return message.Errorf(abi.StatusInvalid, "node %q is ambiguous: it matches the name or id of %d nodes (%s)", ref, len(match), strings.Join(match, ", "))
}

// Publish implements control.Backend: it delivers m to every matching
// subscription whose buffer has room and counts a drop for the others.
func (b *Backend) Publish(_ context.Context, m *message.Message) (int, error) {
	if err := abi.ValidateSubject(m.Subject); err != nil {
		return 0, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for s := range b.subs {
		if !abi.Match(s.pattern, m.Subject) {
			continue
		}
		select {
		case s.ch <- m:
			n++
		default:
			s.dropped.Add(1)
		}
	}
	return n, nil
}

// Subscribe implements control.Backend.
func (b *Backend) Subscribe(pattern string, buffer int) (control.Subscription, error) {
	if err := abi.ValidatePattern(pattern); err != nil {
		return nil, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	s := &Sub{b: b, pattern: pattern, ch: make(chan *message.Message, buffer)}
	b.mu.Lock()
	b.subs[s] = true
	b.mu.Unlock()
	notify(b.subscribed, pattern)
	return s, nil
}

// CloseSubscriptions ends every subscription from the node's side, as a
// node does when it shuts down.
func (b *Backend) CloseSubscriptions() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.closeLocked()
	}
}

// Plugins implements control.Backend.
func (b *Backend) Plugins() []control.PluginInfo { return b.PluginList }

// Health implements control.Backend.
func (b *Backend) Health() control.Health { return b.HealthInfo }

// Reload implements control.Reloader.
func (b *Backend) Reload(ctx context.Context) error {
	if b.ReloadFunc != nil {
		return b.ReloadFunc(ctx)
	}
	return nil
}

// NoMesh returns b as a Backend (and Reloader) that is not a control.Mesh,
// like a node outside a mesh.
func (b *Backend) NoMesh() control.Backend { return noMesh{b} }

// noMesh hides the Mesh methods of a Backend.
type noMesh struct{ b *Backend }

func (n noMesh) Call(ctx context.Context, m *message.Message) ([]byte, error) {
	return n.b.Call(ctx, m)
}
func (n noMesh) Send(ctx context.Context, m *message.Message) error { return n.b.Send(ctx, m) }
func (n noMesh) Publish(ctx context.Context, m *message.Message) (int, error) {
	return n.b.Publish(ctx, m)
}
func (n noMesh) Subscribe(p string, size int) (control.Subscription, error) {
	return n.b.Subscribe(p, size)
}
func (n noMesh) Plugins() []control.PluginInfo    { return n.b.Plugins() }
func (n noMesh) Health() control.Health           { return n.b.Health() }
func (n noMesh) Reload(ctx context.Context) error { return n.b.Reload(ctx) }

var (
	_ control.Backend  = (*Backend)(nil)
	_ control.Reloader = (*Backend)(nil)
	_ control.Mesh     = (*Backend)(nil)
	_ control.Reloader = noMesh{}
)

// Sub is a Backend subscription.
type Sub struct {
	b       *Backend
	pattern string
	ch      chan *message.Message
	dropped atomic.Uint64
	closed  bool // guarded by b.mu
}

// C implements control.Subscription.
func (s *Sub) C() <-chan *message.Message { return s.ch }

// Dropped implements control.Subscription.
func (s *Sub) Dropped() uint64 { return s.dropped.Load() }

// Close implements control.Subscription.
func (s *Sub) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.closeLocked()
}

// closeLocked closes the channel under b.mu, the lock Publish sends under,
// so a send never meets a closed channel.
func (s *Sub) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	delete(s.b.subs, s)
	close(s.ch)
	notify(s.b.unsubscribed, s.pattern)
}

func notify(ch chan string, v string) {
	select {
	case ch <- v:
	default:
	}
}

// Start serves b on a fresh 127.0.0.1 port until the test ends and returns
// the server and its address. Server logs go to the test's output.
func Start(tb testing.TB, b control.Backend, opts ...control.Option) (*control.Server, string) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("controltest: listen: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := control.NewServer(b, Version, logger, opts...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("controltest: shutdown: %v", err)
		}
		if err := <-served; err != nil {
			tb.Errorf("controltest: serve: %v", err)
		}
	})
	return srv, l.Addr().String()
}
