//go:build wasip1

// Command echo is pycomms-host's bundled example handler plugin, built with
// the Go SDK. It serves the service "echo" with one method per feature of
// the ABI (replies, errors, config, headers, logging, calls, sends,
// publishing, timeouts) and subscribes to "greetings.>", so that the host's
// end-to-end tests, and users trying the host out, have a real plugin to
// exercise. See README.md for each method.
//
// Build it (from the plugins directory) with go generate; the result is
// embedded in the host as builtin:echo.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	pycomms "github.com/pycomms/pycomms-host/sdk/go"
)

// Handlers are registered in init: a c-shared Go plugin runs package init
// functions when the host calls _initialize, but never main.
func init() {
	pycomms.Handle("echo.upper", upper)
	pycomms.Handle("echo.prefix", prefix)
	pycomms.Handle("echo.fail", fail)
	pycomms.Handle("echo.call", call)
	pycomms.Handle("echo.send", send)
	pycomms.Handle("echo.publish", publish)
	pycomms.Handle("echo.callh", callH)
	pycomms.Handle("echo.sendh", sendH)
	pycomms.Handle("echo.publishh", publishH)
	pycomms.Handle("echo.replyh", replyH)
	pycomms.Handle("echo.loop", loop)
	pycomms.Handle("echo.headers", headers)
	pycomms.Handle("echo.config", config)
	pycomms.Handle("echo.log", logPayload)
	pycomms.Handle("echo.sleep", sleep)
	pycomms.Handle("echo.spin", spin)
	pycomms.Subscribe("greetings.>", greeting)
}

// main is required of a main package but never runs in a c-shared plugin.
func main() {}

// upperBuf is the reply buffer upper reuses. The SDK hands a reply to the
// host, which copies it, before the next message can arrive, so a reply may
// live in memory the plugin reuses; echo.upper, the plugin's hot-path
// example, then allocates nothing for ASCII payloads.
var upperBuf []byte

// upper replies with the payload in upper case.
func upper(m *pycomms.Msg) ([]byte, error) {
	p := m.Payload()
	out := upperBuf[:0]
	for _, c := range p {
		if c >= utf8.RuneSelf {
			return bytes.ToUpper(p), nil // Unicode case mapping
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out = append(out, c)
	}
	upperBuf = out
	return out, nil
}

// prefix replies with the config value "prefix" followed by the payload
// (just the payload when the config has no prefix).
func prefix(m *pycomms.Msg) ([]byte, error) {
	p, _ := pycomms.ConfigString("prefix")
	return append([]byte(p), m.Payload()...), nil
}

// fail always fails with an application error (status handler_error).
func fail(*pycomms.Msg) ([]byte, error) {
	return nil, errors.New("failed on purpose")
}

// call takes "SUBJECT DATA", calls SUBJECT with DATA and replies with its
// reply. A failed call's error is returned as is, so its status (timeout,
// no_handler, denied, ...) reaches this message's caller.
func call(m *pycomms.Msg) ([]byte, error) {
	subject, data, err := splitTarget(m)
	if err != nil {
		return nil, err
	}
	return pycomms.Call(subject, data, 0)
}

// send takes "SUBJECT DATA" and sends DATA one way to SUBJECT.
func send(m *pycomms.Msg) ([]byte, error) {
	subject, data, err := splitTarget(m)
	if err != nil {
		return nil, err
	}
	if err := pycomms.Send(subject, data); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// publish takes "TOPIC DATA" and publishes DATA on TOPIC.
func publish(m *pycomms.Msg) ([]byte, error) {
	topic, data, err := splitTarget(m)
	if err != nil {
		return nil, err
	}
	if err := pycomms.Publish(topic, data); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// callH is call with headers: the message's headers go with the call,
// and the reply's headers come back as this reply's headers.
func callH(m *pycomms.Msg) ([]byte, error) {
	subject, data, err := splitTarget(m)
	if err != nil {
		return nil, err
	}
	reply, rh, err := pycomms.CallWith(subject, data, m.Headers(), 0)
	if err != nil {
		return nil, err
	}
	for k, v := range rh {
		m.SetReplyHeader(k, v)
	}
	return reply, nil
}

// sendH is send with the message's headers.
func sendH(m *pycomms.Msg) ([]byte, error) {
	subject, data, err := splitTarget(m)
	if err != nil {
		return nil, err
	}
	if err := pycomms.SendWith(subject, data, m.Headers()); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// publishH is publish with the message's headers.
func publishH(m *pycomms.Msg) ([]byte, error) {
	topic, data, err := splitTarget(m)
	if err != nil {
		return nil, err
	}
	if err := pycomms.PublishWith(topic, data, m.Headers()); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// replyH replies with the payload, and with the message's headers plus
// "replied: yes" as the reply's headers.
func replyH(m *pycomms.Msg) ([]byte, error) {
	for k, v := range m.Headers() {
		m.SetReplyHeader(k, v)
	}
	m.SetReplyHeader("replied", "yes")
	return m.Payload(), nil
}

// splitTarget splits a payload "TARGET DATA" at its first space; DATA may
// be empty.
func splitTarget(m *pycomms.Msg) (target string, data []byte, err error) {
	t, d, _ := bytes.Cut(m.Payload(), []byte(" "))
	if len(t) == 0 {
		return "", nil, pycomms.Errorf(pycomms.StatusInvalid, "%s: payload must be \"TARGET DATA\", got %q", m.Subject(), m.Payload())
	}
	return string(t), d, nil
}

// loop calls itself: the host's hop limit or the shrinking deadline must
// end the chain with an error, never a deadlock.
func loop(m *pycomms.Msg) ([]byte, error) {
	return pycomms.Call("echo.loop", m.Payload(), 0)
}

// headers replies with the message's headers as sorted "key=value\n" lines.
// With a payload, it replies with just that header's line (read through the
// host's header lookup, without decoding the map), or fails with not_found.
func headers(m *pycomms.Msg) ([]byte, error) {
	if key := string(m.Payload()); key != "" {
		v, ok := m.Header(key)
		if !ok {
			return nil, pycomms.Errorf(pycomms.StatusNotFound, "no header %q", key)
		}
		return []byte(key + "=" + v + "\n"), nil
	}
	h := m.Headers()
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + h[k] + "\n")
	}
	return []byte(b.String()), nil
}

// config replies with the plugin's config as sorted "key=value\n" lines
// (values in Go's %v form), read through Config.
func config(*pycomms.Msg) ([]byte, error) {
	c, err := pycomms.Config()
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v\n", k, c[k])
	}
	return []byte(b.String()), nil
}

// logPayload logs the payload at info level and replies "ok"; a refused
// log grant fails the message with status denied.
func logPayload(m *pycomms.Msg) ([]byte, error) {
	if err := pycomms.Log(pycomms.LevelInfo, string(m.Payload())); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// sleep sleeps for the Go duration in the payload ("250ms") and replies
// "slept": a handler that outlives its deadline, for timeout tests.
func sleep(m *pycomms.Msg) ([]byte, error) {
	d, err := time.ParseDuration(string(m.Payload()))
	if err != nil {
		return nil, pycomms.Errorf(pycomms.StatusInvalid, "echo.sleep: %v", err)
	}
	time.Sleep(d)
	return []byte("slept"), nil
}

// spin never returns and never calls the host: only the host's deadline
// enforcement can stop it.
func spin(*pycomms.Msg) ([]byte, error) {
	for n := uint64(0); ; n++ {
		spinSink = n
	}
}

// spinSink gives spin's loop an effect the compiler must keep.
var spinSink uint64

// greeting re-publishes every event under greetings.> on "echo.events",
// upper-cased, and logs it.
func greeting(m *pycomms.Msg) error {
	up := bytes.ToUpper(m.Payload())
	pycomms.LogInfo(fmt.Sprintf("greeting on %s: %s", m.Subject(), up))
	return pycomms.Publish("echo.events", up)
}
