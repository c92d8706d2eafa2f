// Package controltest provides an in-memory control.Backend and a helper
// that serves it on a loopback port, for tests of control API clients (the
// Go client, the CLI) that must not depend on a whole node. The node's own
// Backend is tested end to end elsewhere; this one only has to behave like
// it at the API boundary: subjects are validated with host/subject, events
// are delivered through bounded per-subscription buffers and dropped (and
// counted) when a buffer is full.
package controltest

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/subject"
)

// Version is what Start's server reports on GET /v1/version.
var Version = control.VersionInfo{
	Version:    "v0.0.0-test",
	Commit:     "0123456789ab",
	GoVersion:  runtime.Version(),
	ABIMin:     abi.MinVersion,
	ABIMax:     abi.MaxVersion,
	ABIVersion: abi.Version,
}

// Backend is an in-memory control.Backend (and control.Reloader). Set its
// exported fields before serving it; they are read concurrently afterwards.
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

	mu           sync.Mutex
	subs         map[*Sub]bool
	sent         []*message.Message
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

// Call implements control.Backend.
func (b *Backend) Call(ctx context.Context, m *message.Message) ([]byte, error) {
	if err := subject.Validate(m.Subject); err != nil {
		return nil, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	if b.CallFunc != nil {
		return b.CallFunc(ctx, m)
	}
	return m.Payload, nil
}

// Send implements control.Backend.
func (b *Backend) Send(ctx context.Context, m *message.Message) error {
	if err := subject.Validate(m.Subject); err != nil {
		return &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	b.mu.Lock()
	b.sent = append(b.sent, m)
	b.mu.Unlock()
	if b.SendFunc != nil {
		return b.SendFunc(ctx, m)
	}
	return nil
}

// Publish implements control.Backend: it delivers m to every matching
// subscription whose buffer has room and counts a drop for the others.
func (b *Backend) Publish(_ context.Context, m *message.Message) (int, error) {
	if err := subject.Validate(m.Subject); err != nil {
		return 0, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for s := range b.subs {
		if !subject.Match(s.pattern, m.Subject) {
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
	if err := subject.ValidatePattern(pattern); err != nil {
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
