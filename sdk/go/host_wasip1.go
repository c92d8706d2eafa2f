//go:build wasip1

package pycomms

import (
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/pycomms/pycomms-host/abi"
)

// Host imports (module abi.ImportModule). The directives need literal names;
// sdk_directives_test.go checks them against the abi package's constants.
//
// Every import is //go:noescape: the host copies whatever it reads during
// the call and keeps no pointer, so buffers handed to it may live on the
// stack. Stack buffers are safe to pass because no Go code, and so no stack
// move or garbage collection, runs while a host function executes.

//go:wasmimport pycomms:host/v1 reply
//go:noescape
func hostReply(ptr unsafe.Pointer, n int32) int32

//go:wasmimport pycomms:host/v1 log
//go:noescape
func hostLog(level int32, ptr unsafe.Pointer, n int32) int32

//go:wasmimport pycomms:host/v1 publish
//go:noescape
func hostPublish(topicPtr unsafe.Pointer, topicLen int32, dataPtr unsafe.Pointer, dataLen int32) int32

//go:wasmimport pycomms:host/v1 send
//go:noescape
func hostSend(subjectPtr unsafe.Pointer, subjectLen int32, dataPtr unsafe.Pointer, dataLen int32) int32

//go:wasmimport pycomms:host/v1 call
//go:noescape
func hostCall(subjectPtr unsafe.Pointer, subjectLen int32, dataPtr unsafe.Pointer, dataLen int32, timeoutMillis int32) int32

//go:wasmimport pycomms:host/v1 result
//go:noescape
func hostResult(ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport pycomms:host/v1 config
//go:noescape
func hostConfig(ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport pycomms:host/v1 config_get
//go:noescape
func hostConfigGet(keyPtr unsafe.Pointer, keyLen int32, ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport pycomms:host/v1 header
//go:noescape
func hostHeader(keyPtr unsafe.Pointer, keyLen int32, ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport pycomms:host/v1 publish_h
//go:noescape
func hostPublishH(topicPtr unsafe.Pointer, topicLen int32, dataPtr unsafe.Pointer, dataLen int32, headersPtr unsafe.Pointer, headersLen int32) int32

//go:wasmimport pycomms:host/v1 send_h
//go:noescape
func hostSendH(subjectPtr unsafe.Pointer, subjectLen int32, dataPtr unsafe.Pointer, dataLen int32, headersPtr unsafe.Pointer, headersLen int32) int32

//go:wasmimport pycomms:host/v1 call_h
//go:noescape
func hostCallH(subjectPtr unsafe.Pointer, subjectLen int32, dataPtr unsafe.Pointer, dataLen int32, headersPtr unsafe.Pointer, headersLen int32, timeoutMillis int32) int32

//go:wasmimport pycomms:host/v1 result_header
//go:noescape
func hostResultHeader(keyPtr unsafe.Pointer, keyLen int32, ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport pycomms:host/v1 result_headers
//go:noescape
func hostResultHeaders(ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport pycomms:host/v1 reply_h
//go:noescape
func hostReplyH(ptr unsafe.Pointer, n int32, headersPtr unsafe.Pointer, headersLen int32) int32

// bytesPtr and strPtr give the address of the data of b or s for a host
// call; nil for an empty one, which the host accepts with length 0.
func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
func strPtr(s string) unsafe.Pointer   { return unsafe.Pointer(unsafe.StringData(s)) }

// tooLong reports a byte string whose length does not fit an i32 length.
func tooLong(op, target string, n int) error {
	if n <= math.MaxInt32 {
		return nil
	}
	return &Error{Status: abi.StatusTooLarge, Msg: fmt.Sprintf("pycomms: %s %q: %d bytes do not fit the ABI's 32-bit lengths", op, target, n)}
}

// Publish publishes data as an event on topic (a subject without
// wildcards). It returns once the host has accepted the event, not when
// subscribers have seen it. Needs the "publish" grant.
func Publish(topic string, data []byte) error {
	if err := tooLong(abi.ImportPublish, topic, len(data)); err != nil {
		return err
	}
	if r := hostPublish(strPtr(topic), int32(len(topic)), bytesPtr(data), int32(len(data))); r < 0 {
		return hostError(abi.ImportPublish, topic, abi.Status(-r), "")
	}
	return nil
}

// PublishWith is Publish with headers (keys are lower-cased; see
// encodeHeaders for what the host refuses). A plugin that uses it needs a
// host that provides publish_h.
func PublishWith(topic string, data []byte, headers map[string]string) error {
	h, err := encodeHeaders(abi.ImportPublishH, topic, headers)
	if err != nil {
		return err
	}
	if err := tooLong(abi.ImportPublishH, topic, len(data)); err != nil {
		return err
	}
	if r := hostPublishH(strPtr(topic), int32(len(topic)), bytesPtr(data), int32(len(data)), bytesPtr(h), int32(len(h))); r < 0 {
		return hostError(abi.ImportPublishH, topic, abi.Status(-r), "")
	}
	return nil
}

// Send sends data one way to whichever handler serves subject, without
// waiting for it to be handled. Needs the "send" grant.
func Send(subject string, data []byte) error {
	if err := tooLong(abi.ImportSend, subject, len(data)); err != nil {
		return err
	}
	if r := hostSend(strPtr(subject), int32(len(subject)), bytesPtr(data), int32(len(data))); r < 0 {
		return hostError(abi.ImportSend, subject, abi.Status(-r), "")
	}
	return nil
}

// SendWith is Send with headers, as PublishWith.
func SendWith(subject string, data []byte, headers map[string]string) error {
	h, err := encodeHeaders(abi.ImportSendH, subject, headers)
	if err != nil {
		return err
	}
	if err := tooLong(abi.ImportSendH, subject, len(data)); err != nil {
		return err
	}
	if r := hostSendH(strPtr(subject), int32(len(subject)), bytesPtr(data), int32(len(data)), bytesPtr(h), int32(len(h))); r < 0 {
		return hostError(abi.ImportSendH, subject, abi.Status(-r), "")
	}
	return nil
}

// callMu pairs each call import with the result import that reads its
// outcome. Host calls never yield, but the allocation between the two can
// let another goroutine of the same handler run its own Call in between.
var callMu sync.Mutex

// Call sends a request to subject and waits for the reply. A timeout of 0
// (or less) lets the call use whatever time the message being handled has
// left; the host never grants more than that anyway. On failure the error
// is an *Error carrying the status (for example StatusTimeout, or
// StatusHandlerError when the other handler failed) and the host's text;
// returning it from a handler passes that status on to this message's
// caller. The reply is a fresh slice the caller owns. Needs the "call" grant.
func Call(subject string, data []byte, timeout time.Duration) ([]byte, error) {
	if err := tooLong(abi.ImportCall, subject, len(data)); err != nil {
		return nil, err
	}
	ms := timeoutMillis(timeout)

	callMu.Lock()
	defer callMu.Unlock()
	n := hostCall(strPtr(subject), int32(len(subject)), bytesPtr(data), int32(len(data)), ms)
	return callResult(abi.ImportCall, subject, n)
}

// CallWith is Call with headers on the request (as PublishWith), and it
// also returns the reply's headers: those the called handler set (with
// Msg.SetReplyHeader in this SDK), nil when it set none or the call
// failed. A plugin that uses it needs a host that provides call_h.
func CallWith(subject string, data []byte, headers map[string]string, timeout time.Duration) (reply []byte, replyHeaders map[string]string, err error) {
	h, err := encodeHeaders(abi.ImportCallH, subject, headers)
	if err != nil {
		return nil, nil, err
	}
	if err := tooLong(abi.ImportCallH, subject, len(data)); err != nil {
		return nil, nil, err
	}
	ms := timeoutMillis(timeout)

	callMu.Lock()
	defer callMu.Unlock()
	n := hostCallH(strPtr(subject), int32(len(subject)), bytesPtr(data), int32(len(data)), bytesPtr(h), int32(len(h)), ms)
	reply, err = callResult(abi.ImportCallH, subject, n)
	if err != nil {
		return nil, nil, err
	}
	if size := hostResultHeaders(nil, 0); size > 0 {
		buf := make([]byte, size)
		if got := hostResultHeaders(bytesPtr(buf), size); got != size {
			return nil, nil, &Error{Status: abi.StatusInternal, Msg: fmt.Sprintf("pycomms: %s %q: the reply's headers changed size from %d to %d bytes", abi.ImportCallH, subject, size, got)}
		}
		if replyHeaders, err = decodeHeaders(buf); err != nil {
			return nil, nil, &Error{Status: abi.StatusInternal, Msg: fmt.Sprintf("pycomms: %s %q: reply headers: %v", abi.ImportCallH, subject, err)}
		}
	}
	return reply, replyHeaders, nil
}

// callResult reads the outcome of the call import op that returned n,
// with callMu held.
func callResult(op, subject string, n int32) ([]byte, error) {
	if n == -int32(abi.StatusDenied) {
		// A refused import does nothing, so result would still hold the
		// outcome of an earlier call: do not read it.
		return nil, hostError(op, subject, abi.StatusDenied, "")
	}
	size := n
	if n < 0 {
		size = max(hostResult(nil, 0), 0) // length of the error text
	}
	buf := make([]byte, size)
	if size > 0 {
		if got := hostResult(bytesPtr(buf), size); got != size {
			return nil, &Error{Status: abi.StatusInternal, Msg: fmt.Sprintf("pycomms: %s %q: the host's result changed size from %d to %d bytes", op, subject, size, got)}
		}
	}
	if n < 0 {
		return nil, hostError(op, subject, abi.Status(-n), string(buf))
	}
	return buf, nil
}

// timeoutMillis converts a Call timeout to the import's milliseconds: 0 for
// "the remaining budget", at least 1 for any positive timeout (so a short
// one does not turn into "no limit of its own"), at most MaxInt32.
func timeoutMillis(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return int32(min(ms, math.MaxInt32))
}

// Log writes msg to the host log at level, tagged with the plugin's name.
// Needs the "log" grant, which a plugin has unless its config lists grants
// without it.
func Log(level Level, msg string) error {
	if r := hostLog(int32(level), strPtr(msg), int32(min(len(msg), math.MaxInt32))); r < 0 {
		return hostError(abi.ImportLog, "", abi.Status(-r), "")
	}
	return nil
}

// LogDebug logs msg at LevelDebug, ignoring failures (see Log).
func LogDebug(msg string) { _ = Log(LevelDebug, msg) }

// LogInfo logs msg at LevelInfo, ignoring failures (see Log).
func LogInfo(msg string) { _ = Log(LevelInfo, msg) }

// LogWarn logs msg at LevelWarn, ignoring failures (see Log).
func LogWarn(msg string) { _ = Log(LevelWarn, msg) }

// LogError logs msg at LevelError, ignoring failures (see Log). (The name is
// not Error because Error is the SDK's error type.)
func LogError(msg string) { _ = Log(LevelError, msg) }

// Config returns the plugin's config (the `config` map of its entry in the
// host's config file), decoded from CBOR: nested maps are map[string]any,
// integers int64, lists []any. It is empty when the plugin has no config.
// Each call asks the host and decodes afresh; ConfigString is cheaper for a
// single value. Needs no grant.
func Config() (map[string]any, error) {
	n := hostConfig(nil, 0)
	if n < 0 {
		return nil, hostError(abi.ImportConfig, "", abi.Status(-n), "")
	}
	if n == 0 {
		return map[string]any{}, nil
	}
	buf := make([]byte, n)
	if got := hostConfig(bytesPtr(buf), n); got != n {
		return nil, &Error{Status: abi.StatusInternal, Msg: fmt.Sprintf("pycomms: config: the host's config changed size from %d to %d bytes", n, got)}
	}
	m, err := decodeConfig(buf)
	if err != nil {
		return nil, &Error{Status: abi.StatusInternal, Msg: "pycomms: config: " + err.Error()}
	}
	return m, nil
}

// ConfigString returns the string form of one config value, found by its
// key path with "." between levels ("db.host"), and whether it exists. It
// costs one host call and no CBOR decoding. Needs no grant.
func ConfigString(key string) (string, bool) {
	return readValue(false, key)
}

// Header returns the value of one header and whether the message has it.
// A message without headers answers at once; otherwise the host looks the
// key up (one host call), unless Headers has already decoded the map.
func (m *Msg) Header(key string) (string, bool) {
	if !m.hasHeaders() {
		return "", false
	}
	if m.headersDecoded {
		v, ok := m.headers[key]
		return v, ok
	}
	return readValue(true, key)
}

// smallValue is the stack buffer readValue tries first: most config values
// and headers fit, so they cost one host call and one string allocation.
const smallValue = 128

// readValue reads a value through the header or config_get import, which
// both return the value's full length, copying it only when it fits.
func readValue(header bool, key string) (string, bool) {
	lookup := func(p unsafe.Pointer, capacity int32) int32 {
		if header {
			return hostHeader(strPtr(key), int32(len(key)), p, capacity)
		}
		return hostConfigGet(strPtr(key), int32(len(key)), p, capacity)
	}
	var small [smallValue]byte
	n := lookup(unsafe.Pointer(&small[0]), smallValue)
	if n < 0 {
		return "", false
	}
	if n <= smallValue {
		return string(small[:n]), true
	}
	buf := make([]byte, n)
	if lookup(bytesPtr(buf), n) != n {
		return "", false
	}
	// buf is not used again, so the string can take it over without a copy.
	return unsafe.String(unsafe.SliceData(buf), len(buf)), true
}
