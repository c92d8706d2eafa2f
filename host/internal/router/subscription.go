package router

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Subscription is a local subscriber to a topic pattern, as used by the
// control API's `sub`. Matching events are buffered in C; when the buffer is
// full the newest event is dropped and counted, so a slow reader never slows
// a publisher down.
type Subscription struct {
	r       *Router
	pattern string
	ch      chan *message.Message
	dropped atomic.Uint64

	// mu makes Close safe against a concurrent Publish: publishers hold the
	// read side while they send, so C is never closed under a send.
	mu     sync.RWMutex
	closed bool
}

// Subscribe registers a local subscriber for the topic pattern with room for
// buffer undelivered events (at least 1). Invalid arguments return a
// *message.Error with abi.StatusInvalid.
func (r *Router) Subscribe(pattern string, buffer int) (*Subscription, error) {
	if err := abi.ValidatePattern(pattern); err != nil {
		return nil, &message.Error{Status: abi.StatusInvalid, Msg: "subscribe: " + err.Error()}
	}
	if buffer < 1 {
		return nil, message.Errorf(abi.StatusInvalid, "subscribe %q: buffer must be at least 1, got %d", pattern, buffer)
	}
	s := &Subscription{r: r, pattern: pattern, ch: make(chan *message.Message, buffer)}
	r.mu.Lock()
	defer r.changed()
	defer r.mu.Unlock()
	next := append(slices.Clone(*r.subs.Load()), s)
	r.subs.Store(&next)
	r.log.Debug("subscribed", "pattern", pattern, "buffer", buffer)
	return s, nil
}

// Pattern returns the topic pattern the subscription was made with.
func (s *Subscription) Pattern() string { return s.pattern }

// C returns the channel matching events arrive on. It is closed by Close,
// after which the events still buffered can be read.
func (s *Subscription) C() <-chan *message.Message { return s.ch }

// Dropped returns how many matching events were dropped because the buffer
// was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close stops delivery and closes C. It is idempotent and safe to call
// concurrently with Publish and with itself.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.ch)
	s.mu.Unlock()

	r := s.r
	r.mu.Lock()
	defer r.changed()
	defer r.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(*r.subs.Load()), func(x *Subscription) bool { return x == s })
	r.subs.Store(&next)
	r.log.Debug("unsubscribed", "pattern", s.pattern)
}

// outcome is what happened to one event offered to a subscription.
type outcome int

const (
	delivered outcome = iota
	full              // dropped: buffer full
	gone              // the subscription was closed; neither delivered nor dropped
)

// deliver offers m without blocking.
func (s *Subscription) deliver(m *message.Message) outcome {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return gone
	}
	select {
	case s.ch <- m:
		return delivered
	default:
		s.dropped.Add(1)
		return full
	}
}
