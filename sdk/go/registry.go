package pycomms

import (
	"fmt"

	"github.com/pycomms/pycomms-host/abi"
)

// service is a Handle registration; it keeps the subject so that the
// handler's Msg.Subject needs no copy out of the input buffer.
type service struct {
	subject string
	h       func(*Msg) ([]byte, error)
}

// subscription is a Subscribe registration.
type subscription struct {
	pattern string
	h       func(*Msg) error
}

// registry holds a plugin's handlers. The package uses one (reg); tests
// build their own.
//
// Services are found through a small open-addressing table of indices
// instead of a Go map: compiled to Wasm, a map lookup measured about 160-260
// ns, which was most of the SDK's cost per message, while hashing a subject
// and comparing one string takes a fraction of that.
type registry struct {
	services []service
	slots    []int32 // index+1 into services, 0 when free; len is a power of two
	subs     []subscription
}

var reg registry

// Handle registers h for requests and one-way sends to exactly subject
// (for example "echo.upper"; no wildcards). For a request, the returned
// bytes are the reply; for a send, they are dropped. The SDK hands the reply
// to the host, which copies it, before the next message can arrive, so it
// may alias memory the handler reuses (a grow-only buffer, or the payload
// itself) to avoid an allocation per message. An error fails the
// message with StatusOf(err) and err.Error() as its text (no_method, which
// the host would blame on this handler's own subject, becomes no_handler).
// A panic is not recovered: it traps the instance, which the host replaces,
// and the panic and its stack trace reach the host log through stderr.
//
// Call Handle from an init function: main does not run in a c-shared
// plugin. It panics on an invalid subject, a nil h or a subject registered
// twice, so that such a plugin fails when it loads rather than later.
func Handle(subject string, h func(*Msg) ([]byte, error)) {
	if err := reg.handle(subject, h); err != nil {
		panic(err)
	}
}

// Subscribe registers h for events whose topic matches pattern, in which the
// token "*" matches any one token and a last token ">" matches one or more
// ("orders.*.created", "greetings.>"). Every matching subscription sees the
// event, in registration order; the first error becomes the event's status,
// which the host logs (nobody waits for an event). The plugin's config must
// also list the topics, since the host delivers only what the config asks
// for.
//
// Call Subscribe from an init function; it panics on an invalid pattern or a
// nil h.
func Subscribe(pattern string, h func(*Msg) error) {
	if err := reg.subscribe(pattern, h); err != nil {
		panic(err)
	}
}

func (r *registry) handle(subject string, h func(*Msg) ([]byte, error)) error {
	if err := checkSubject(subject, false); err != nil {
		return fmt.Errorf("pycomms: Handle(%q): %v", subject, err)
	}
	if h == nil {
		return fmt.Errorf("pycomms: Handle(%q): nil handler", subject)
	}
	if r.lookup([]byte(subject)) != nil {
		return fmt.Errorf("pycomms: Handle(%q): subject registered twice", subject)
	}
	r.services = append(r.services, service{subject: subject, h: h})
	// Registration happens once, in init: rebuilding the whole table keeps
	// it at most half full without any incremental bookkeeping.
	size := 8
	for size < 2*len(r.services) {
		size *= 2
	}
	r.slots = make([]int32, size)
	for i := range r.services {
		j := hashSubject([]byte(r.services[i].subject)) & uint32(size-1)
		for r.slots[j] != 0 {
			j = (j + 1) & uint32(size-1)
		}
		r.slots[j] = int32(i + 1)
	}
	return nil
}

// hashSubject is FNV-1a: short, good enough for a table kept half empty,
// and with no per-process seed to set up.
func hashSubject(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// lookup returns the service registered for exactly subject, or nil.
func (r *registry) lookup(subject []byte) *service {
	if len(r.slots) == 0 {
		return nil
	}
	mask := uint32(len(r.slots) - 1)
	for j := hashSubject(subject) & mask; ; j = (j + 1) & mask {
		i := r.slots[j]
		if i == 0 {
			return nil
		}
		// Comparing with string(subject) does not allocate.
		if s := &r.services[i-1]; s.subject == string(subject) {
			return s
		}
	}
}

func (r *registry) subscribe(pat string, h func(*Msg) error) error {
	if err := checkSubject(pat, true); err != nil {
		return fmt.Errorf("pycomms: Subscribe(%q): %v", pat, err)
	}
	if h == nil {
		return fmt.Errorf("pycomms: Subscribe(%q): nil handler", pat)
	}
	r.subs = append(r.subs, subscription{pattern: pat, h: h})
	return nil
}

// dispatch runs the handler(s) m is for. It returns the reply and StatusOK,
// or a failure status and the error text to hand to the host. Failures are
// formatted in separate functions to keep this hot path short.
func (r *registry) dispatch(m *Msg) (reply []byte, st Status, text string) {
	if m.kind != KindRequest && m.kind != KindSend {
		return r.dispatchOther(m)
	}
	s := r.lookup(m.subjectRaw)
	if s == nil {
		return nil, StatusNoMethod, r.noHandlerText("Handle", m)
	}
	m.subject = s.subject
	reply, err := s.h(m)
	if err != nil {
		return nil, handlerStatus(err), err.Error()
	}
	return reply, StatusOK, ""
}

// handlerStatus is the status a registered handler's error fails the
// message with. It is StatusOf(err), except that no_method becomes
// no_handler: the host reports no_method as "this plugin lacks the method
// of this message", which is false once a handler ran; the error must have
// come from an inner Call to a method nobody serves, which is what
// no_handler says.
func handlerStatus(err error) Status {
	if st := StatusOf(err); st != StatusNoMethod {
		return st
	}
	return StatusNoHandler
}

// dispatchOther handles events and unknown kinds.
func (r *registry) dispatchOther(m *Msg) (reply []byte, st Status, text string) {
	if m.kind != KindEvent {
		return nil, StatusInvalid, fmt.Sprintf("pycomms: unknown message kind %d", int32(m.kind))
	}
	st, matched := StatusOK, false
	for i := range r.subs {
		sub := &r.subs[i]
		if !abi.Match(sub.pattern, m.Subject()) {
			continue
		}
		matched = true
		if err := sub.h(m); err != nil && st == StatusOK {
			st, text = handlerStatus(err), err.Error()
		}
	}
	if !matched {
		return nil, StatusNoMethod, r.noHandlerText("Subscribe", m)
	}
	return nil, st, text
}

// noHandlerText explains a message nobody registered for. A plugin with no
// registrations at all most likely registered them in main, which never runs
// in a c-shared build: say so, since nothing else would.
func (r *registry) noHandlerText(fn string, m *Msg) string {
	if len(r.services) == 0 && len(r.subs) == 0 {
		return "pycomms: this plugin registered no handlers: call Handle and Subscribe from init(), since main() does not run in a -buildmode=c-shared plugin"
	}
	return fmt.Sprintf("pycomms: no %s handler for %s %q", fn, m.kind, m.Subject())
}
