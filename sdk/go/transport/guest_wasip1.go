//go:build wasip1

package transport

import (
	"unsafe"

	"github.com/pycomms/pycomms-host/abi"
)

// inbuf is what pycomms_alloc hands out: grow-only and reused, and
// referenced by a global so the GC keeps it where the host writes.
var inbuf []byte

//go:wasmexport pycomms_abi_version
func exportABIVersion() int32 { return abi.Version }

//go:wasmexport pycomms_alloc
func exportAlloc(size int32) uint32 {
	if size <= 0 {
		return 0
	}
	if int(size) > len(inbuf) {
		inbuf = make([]byte, max(int(size), 2*len(inbuf), 4096))
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inbuf))))
}

//go:wasmexport pycomms_transport_event
func exportEvent(ev, id, arg int32, ptr uint32, la, lb, lc int32) int32 {
	if h == nil {
		return -int32(abi.StatusInternal)
	}
	var a, b, c []byte
	if total := int(la) + int(lb) + int(lc); total > 0 {
		buf := inbuf[:total:total]
		a, b, c = buf[:la:la], buf[la:la+lb:la+lb], buf[la+lb:]
	}
	conn := uint32(id)
	switch abi.TransportEvent(ev) {
	case abi.EventDialed, abi.EventAccepted:
		h.Opened(conn, abi.TransportEvent(ev) == abi.EventDialed, int(arg))
	case abi.EventData:
		n := h.Data(conn, a)
		if n < 0 {
			return int32(n) // a negated status: the host closes conn
		}
		return int32(min(n, len(a)))
	case abi.EventClosed:
		h.Closed(conn, abi.Status(arg))
	case abi.EventMessage:
		if st := h.Message(conn, abi.Kind(arg), string(a), b, c); st != abi.StatusOK {
			return -int32(st)
		}
	case abi.EventReply:
		// len_b: the reply's headers (SPEC.md 13.2); an older host
		// passes 0.
		if rh != nil {
			rh.ReplyH(conn, abi.Status(arg), a, b)
		} else {
			h.Reply(conn, abi.Status(arg), a)
		}
	case abi.EventTimer:
		h.Timer(conn)
	}
	return 0
}

//go:wasmimport pycomms:host/v1 conn_write
//go:noescape
func hostConnWrite(conn int32, ptr unsafe.Pointer, n int32) int32

//go:wasmimport pycomms:host/v1 conn_open
func hostConnOpen(index int32) int32

//go:wasmimport pycomms:host/v1 conn_close
func hostConnClose(conn int32) int32

//go:wasmimport pycomms:host/v1 timer_set
func hostTimerSet(id, ms int32) int32

//go:wasmimport pycomms:host/v1 deliver
//go:noescape
func hostDeliver(kind, corr int32, ptr unsafe.Pointer, sl, pl, hl int32) int32

//go:wasmimport pycomms:host/v1 respond
//go:noescape
func hostRespond(corr, status int32, ptr unsafe.Pointer, n int32) int32

//go:wasmimport pycomms:host/v1 respond_h
//go:noescape
func hostRespondH(corr, status int32, ptr unsafe.Pointer, n int32, hptr unsafe.Pointer, hn int32) int32

//go:wasmimport pycomms:host/v1 log
//go:noescape
func hostLog(level int32, ptr unsafe.Pointer, n int32) int32

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

func status(r int32) abi.Status {
	if r < 0 {
		return abi.Status(-r)
	}
	return abi.StatusOK
}

// Write queues b on conn (one this instance owns).
func Write(conn uint32, b []byte) abi.Status {
	return status(hostConnWrite(int32(conn), ptr(b), int32(len(b))))
}

// Open opens one more connection to dial entry index; Opened follows.
func Open(index int) (uint32, abi.Status) {
	r := hostConnOpen(int32(index))
	if r < 0 {
		return 0, abi.Status(-r)
	}
	return uint32(r), abi.StatusOK
}

// Close closes conn once what is queued on it is written.
func Close(conn uint32) abi.Status { return status(hostConnClose(int32(conn))) }

// SetTimer fires Timer(id) after ms milliseconds; ms <= 0 cancels it.
func SetTimer(id uint32, ms int) abi.Status { return status(hostTimerSet(int32(id), int32(ms))) }

// Deliver hands a message into the host; for abi.KindRequest the reply
// comes back as Reply(corr, ...), or ReplyH(corr, ...) with its headers
// (ReplyHeadersHandler). headers is a CBOR map or nil.
func Deliver(kind abi.Kind, corr uint32, subject string, payload, headers []byte) abi.Status {
	buf := make([]byte, 0, len(subject)+len(payload)+len(headers))
	buf = append(append(append(buf, subject...), payload...), headers...)
	return status(hostDeliver(int32(kind), int32(corr), ptr(buf), int32(len(subject)), int32(len(payload)), int32(len(headers))))
}

// Respond answers the request Message handed over with corr.
func Respond(corr uint32, st abi.Status, b []byte) abi.Status {
	return status(hostRespond(int32(corr), int32(st), ptr(b), int32(len(b))))
}

// RespondH is Respond that also sets the reply's headers: headers is a
// CBOR map of text to text (SPEC.md section 10), nil for none. Headers the
// host refuses give abi.StatusInvalid and leave the request unanswered, so
// the plugin may Respond again; an error reply's headers are dropped. A
// plugin that never calls it does not import respond_h.
func RespondH(corr uint32, st abi.Status, b, headers []byte) abi.Status {
	return status(hostRespondH(int32(corr), int32(st), ptr(b), int32(len(b)), ptr(headers), int32(len(headers))))
}

// Log writes a line to the host log at level (needs the log grant).
func Log(level abi.Level, msg string) {
	b := []byte(msg)
	hostLog(int32(level), ptr(b), int32(len(b)))
}

//go:wasmimport pycomms:host/v1 config_get
//go:noescape
func hostConfigGet(keyPtr unsafe.Pointer, keyLen int32, ptr unsafe.Pointer, capacity int32) int32

// ConfigString returns the string form of one value of the plugin's
// config, found by its key path with "." between levels ("auth.password";
// a list is its items joined by ","), and whether it exists. Needs no
// grant.
func ConfigString(key string) (string, bool) {
	k := []byte(key)
	n := hostConfigGet(ptr(k), int32(len(k)), nil, 0)
	if n < 0 {
		return "", false
	}
	if n == 0 {
		return "", true
	}
	buf := make([]byte, n)
	if hostConfigGet(ptr(k), int32(len(k)), ptr(buf), n) != n {
		return "", false
	}
	return string(buf), true
}
