package pycomms

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
)

// msgFor lays a message out as the host does (subject, payload, headers in
// one buffer) and returns the Msg the SDK builds from it.
func msgFor(kind Kind, subject, payload string, headers []byte) *Msg {
	buf := append(append([]byte(subject), payload...), headers...)
	s, p := len(subject), len(subject)+len(payload)
	return &Msg{kind: kind, subjectRaw: buf[:s:s], payload: buf[s:p:p], rawHeaders: buf[p:]}
}

func TestDispatchRequest(t *testing.T) {
	var r registry
	must(t, r.handle("echo.upper", func(m *Msg) ([]byte, error) {
		if m.Subject() != "echo.upper" || (m.Kind() != KindRequest && m.Kind() != KindSend) {
			return nil, fmt.Errorf("got %s %q", m.Kind(), m.Subject())
		}
		return bytes.ToUpper(m.Payload()), nil
	}))
	must(t, r.handle("echo.fail", func(*Msg) ([]byte, error) { return nil, errors.New("failed on purpose") }))
	must(t, r.handle("echo.inner", func(*Msg) ([]byte, error) {
		return nil, &Error{Status: abi.StatusNoMethod, Msg: "other has no method other.x"}
	}))
	must(t, r.handle("echo.call", func(*Msg) ([]byte, error) {
		return nil, fmt.Errorf("inner: %w", &Error{Status: abi.StatusTimeout, Msg: "x.y timed out"})
	}))

	for _, tc := range []struct {
		kind             Kind
		subject, payload string
		reply            string
		st               abi.Status
		text             string
	}{
		{KindRequest, "echo.upper", "hi", "HI", abi.StatusOK, ""},
		{KindSend, "echo.upper", "hi", "HI", abi.StatusOK, ""},
		{KindRequest, "echo.fail", "", "", abi.StatusHandlerError, "failed on purpose"},
		{KindRequest, "echo.call", "", "", abi.StatusTimeout, "inner: x.y timed out"},
		{KindRequest, "echo.inner", "", "", abi.StatusNoHandler, "other has no method other.x"},
		{KindRequest, "echo.nope", "", "", abi.StatusNoMethod, `pycomms: no Handle handler for request "echo.nope"`},
		{KindRequest, "echo", "", "", abi.StatusNoMethod, `no Handle handler for request "echo"`},
		{Kind(9), "echo.upper", "", "", abi.StatusInvalid, "unknown message kind 9"},
	} {
		reply, st, text := r.dispatch(msgFor(tc.kind, tc.subject, tc.payload, nil))
		if string(reply) != tc.reply || st != tc.st || !strings.Contains(text, tc.text) || (tc.text == "") != (text == "") {
			t.Errorf("%s %s: got (%q, %s, %q), want (%q, %s, %q)", tc.kind, tc.subject, reply, st, text, tc.reply, tc.st, tc.text)
		}
	}
}

func TestDispatchEvent(t *testing.T) {
	var r registry
	var seen []string
	must(t, r.subscribe("greetings.>", func(m *Msg) error {
		seen = append(seen, "all:"+m.Subject()+":"+string(m.Payload()))
		return nil
	}))
	must(t, r.subscribe("greetings.*", func(m *Msg) error {
		seen = append(seen, "one:"+m.Subject())
		return Errorf(abi.StatusBusy, "too many greetings")
	}))
	must(t, r.subscribe("greetings.hello", func(m *Msg) error {
		seen = append(seen, "hello")
		return errors.New("second failure")
	}))

	_, st, text := r.dispatch(msgFor(KindEvent, "greetings.hello", "hi", nil))
	if st != abi.StatusBusy || text != "too many greetings" {
		t.Errorf("first failure wins: got %s %q", st, text)
	}
	if want := []string{"all:greetings.hello:hi", "one:greetings.hello", "hello"}; !equal(seen, want) {
		t.Errorf("handlers ran %q, want %q (all matches, in order)", seen, want)
	}

	seen = nil
	if _, st, _ := r.dispatch(msgFor(KindEvent, "greetings.a.b", "x", nil)); st != abi.StatusOK {
		t.Errorf("greetings.a.b: status %s", st)
	}
	if want := []string{"all:greetings.a.b:x"}; !equal(seen, want) {
		t.Errorf("handlers ran %q, want %q", seen, want)
	}

	_, st, text = r.dispatch(msgFor(KindEvent, "farewells.bye", "", nil))
	if st != abi.StatusNoMethod || !strings.Contains(text, `no Subscribe handler for event "farewells.bye"`) {
		t.Errorf("unmatched event: got %s %q", st, text)
	}
	// Events never reach Handle handlers, nor requests Subscribe handlers.
	if _, st, _ := r.dispatch(msgFor(KindRequest, "greetings.hello", "", nil)); st != abi.StatusNoMethod {
		t.Errorf("request to a subscribed topic: status %s", st)
	}
}

func TestDispatchWithoutRegistrations(t *testing.T) {
	var r registry
	_, st, text := r.dispatch(msgFor(KindRequest, "hello.greet", "", nil))
	if st != abi.StatusNoMethod || !strings.Contains(text, "init()") {
		t.Errorf("got %s %q, want no_method pointing at init()", st, text)
	}
}

func TestRegistrationErrors(t *testing.T) {
	var r registry
	h := func(*Msg) ([]byte, error) { return nil, nil }
	must(t, r.handle("a.b", h))
	for _, err := range []error{
		r.handle("a.b", h),
		r.handle("a.*", h),
		r.handle("", h),
		r.handle("a.c", nil),
		r.subscribe("a.>.b", func(*Msg) error { return nil }),
		r.subscribe("a.b", nil),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "pycomms: ") {
			t.Errorf("got %v, want a pycomms: error", err)
		}
	}
}

func TestDispatchRequestDoesNotAllocate(t *testing.T) {
	var r registry
	reply := []byte("ok")
	must(t, r.handle("svc.m", func(m *Msg) ([]byte, error) { _ = m.Subject(); return reply, nil }))
	m := msgFor(KindRequest, "svc.m", "payload", nil)
	allocs := testing.AllocsPerRun(100, func() {
		m.subject = ""
		if _, st, _ := r.dispatch(m); st != abi.StatusOK {
			t.Fatal(st)
		}
		if m.Headers() != nil {
			t.Fatal("headers on a message without any")
		}
	})
	if allocs != 0 {
		t.Errorf("dispatching a request allocates %v times", allocs)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestServiceTable(t *testing.T) {
	// Enough services to grow the table several times and force probing.
	var r registry
	const n = 300
	for i := range n {
		subject := fmt.Sprintf("svc%d.m%d", i%7, i)
		must(t, r.handle(subject, func(*Msg) ([]byte, error) { return []byte(subject), nil }))
	}
	if len(r.slots) < 2*n || len(r.slots)&(len(r.slots)-1) != 0 {
		t.Fatalf("table of %d slots for %d services", len(r.slots), n)
	}
	for i := range n {
		subject := fmt.Sprintf("svc%d.m%d", i%7, i)
		s := r.lookup([]byte(subject))
		if s == nil || s.subject != subject {
			t.Fatalf("lookup(%q) = %v", subject, s)
		}
		if reply, _ := s.h(nil); string(reply) != subject {
			t.Fatalf("lookup(%q) found the handler of %q", subject, reply)
		}
	}
	for _, miss := range []string{"svc0.m1", "svc1", "", "svc0.m0.x", "svc0.m3000"} {
		if s := r.lookup([]byte(miss)); s != nil {
			t.Errorf("lookup(%q) = %q, want nil", miss, s.subject)
		}
	}
	var empty registry
	if empty.lookup([]byte("a.b")) != nil {
		t.Error("lookup in an empty registry found something")
	}
}
