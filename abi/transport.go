package abi

import (
	"fmt"
	"slices"
	"strings"
)

// Transport plugins (SPEC.md section 13): a wire protocol as a state
// machine. The host owns every socket; the plugin gets events through
// ExportTransportEvent and answers with actions, each a host import of
// ImportModule (TransportImports). No action needs CBOR: a WAT plugin
// writes bytes on a connection with one import call.

// ExportTransportEvent: (event, id, arg, ptr, len_a, len_b, len_c i32) -> i32.
// Delivers one TransportEvent. A module that exports it, and not
// ExportHandle, is a transport plugin (see KindOf).
const ExportTransportEvent = "pycomms_transport_event"

// PluginKind is what a plugin module is, as told by its exports.
type PluginKind string

// Plugin kinds a module can be.
const (
	PluginHandler   PluginKind = "handler"
	PluginTransport PluginKind = "transport"
)

// KindOf tells a module's kind from the names of its exported functions:
// ExportHandle makes a handler, ExportTransportEvent a transport,
// ExportCodecConvert a codec; a module with more than one of them, or none,
// is no pycomms plugin, and the error says why.
func KindOf(exports []string) (PluginKind, error) {
	marks := []struct {
		export string
		kind   PluginKind
	}{{ExportHandle, PluginHandler}, {ExportTransportEvent, PluginTransport}, {ExportCodecConvert, PluginCodec}}
	var found []string
	var kind PluginKind
	for _, m := range marks {
		if slices.Contains(exports, m.export) {
			found = append(found, fmt.Sprintf("%q (%s)", m.export, m.kind))
			kind = m.kind
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("exports none of %q (handler), %q (transport), %q (codec)", ExportHandle, ExportTransportEvent, ExportCodecConvert)
	case 1:
		return kind, nil
	}
	return "", fmt.Errorf("exports %s: a plugin is one kind", strings.Join(found, " and "))
}

// TransportEvent is the first argument of ExportTransportEvent.
type TransportEvent int32

// Transport events. Their numbers are part of ABI v1 and never change.
const (
	// EventDialed: id = connection, arg = index of its dial entry. The
	// connection is open and pinned to this instance for its life.
	EventDialed TransportEvent = 1
	// EventAccepted: id = connection, arg = index of its accept entry.
	EventAccepted TransportEvent = 2
	// EventData: id = connection, bytes at ptr (len_a). The result is how
	// many of them the plugin consumed; the host keeps the rest and hands
	// them again, followed by what arrives next.
	EventData TransportEvent = 3
	// EventClosed: id = connection, arg = the Status saying why (ok: the
	// peer closed it).
	EventClosed TransportEvent = 4
	// EventMessage: a message the host routes out through this transport:
	// id = correlation id (0 for a send or an event), arg = Kind, and at
	// ptr the subject (len_a), payload (len_b) and headers (len_c), laid
	// out as for ExportHandle.
	EventMessage TransportEvent = 5
	// EventReply: the reply to a request the plugin delivered with
	// ImportDeliver: id = the plugin's correlation id, arg = Status, the
	// reply (or error text) at ptr (len_a), then the reply's headers as a
	// CBOR map (len_b; 0 when it has none, always for an error reply).
	// Added in ABI v1 without a version change: a plugin that ignores
	// len_b sees the reply as before.
	EventReply TransportEvent = 6
	// EventTimer: id = the timer the plugin set with ImportTimerSet.
	EventTimer TransportEvent = 7
)

// String returns the event's SPEC.md name. (A switch rather than a map:
// a map is built at init, which would grow every guest built with this
// package.)
func (e TransportEvent) String() string {
	switch e {
	case EventDialed:
		return "dialed"
	case EventAccepted:
		return "accepted"
	case EventData:
		return "data"
	case EventClosed:
		return "closed"
	case EventMessage:
		return "message"
	case EventReply:
		return "reply"
	case EventTimer:
		return "timer"
	}
	return fmt.Sprintf("event(%d)", int32(e))
}

// TransportEvents returns every transport event in numeric order.
func TransportEvents() []TransportEvent {
	out := make([]TransportEvent, 0, EventTimer)
	for e := EventDialed; e <= EventTimer; e++ {
		out = append(out, e)
	}
	return out
}

// Transport actions: host imports of ImportModule that only a transport
// plugin may import. Each returns a non-negative value on success and the
// negated Status on failure, like every import.
const (
	// ImportConnWrite: (conn, ptr, len i32) -> i32. Queues bytes on a
	// connection this instance owns; returns len.
	ImportConnWrite = "conn_write"
	// ImportConnOpen: (dial_index i32) -> i32. Opens one more connection to
	// a dial entry, by its index; returns the new connection id.
	ImportConnOpen = "conn_open"
	// ImportConnClose: (conn i32) -> i32. Closes a connection this
	// instance owns, after the bytes queued on it are written.
	ImportConnClose = "conn_close"
	// ImportTimerSet: (timer, ms i32) -> i32. Sets a one-shot timer (ms >
	// 0) or cancels it (ms <= 0).
	ImportTimerSet = "timer_set"
	// ImportDeliver: (kind, corr, ptr, subject_len, payload_len, headers_len i32) -> i32.
	// Delivers a message into the host; the reply to a request comes back
	// as EventReply with corr, with its headers. Grant: call, send or
	// publish, by kind.
	ImportDeliver = "deliver"
	// ImportRespond: (corr, status, ptr, len i32) -> i32. Answers the
	// request the host handed over as EventMessage with corr.
	ImportRespond = "respond"
	// ImportRespondH: (corr, status, ptr, len, headers_ptr, headers_len
	// i32) -> i32. ImportRespond that also sets the reply's headers (a
	// CBOR map, SPEC.md section 10; headers_len 0: none), which an error
	// reply drops.
	ImportRespondH = "respond_h"
)

// transportImports is every transport action, in SPEC.md order; the
// capability of ImportDeliver depends on its kind (DeliverCapability).
var transportImports = [...]Import{
	{ImportConnWrite, []string{"conn", "ptr", "len"}, ""},
	{ImportConnOpen, []string{"dial_index"}, ""},
	{ImportConnClose, []string{"conn"}, ""},
	{ImportTimerSet, []string{"timer", "ms"}, ""},
	{ImportDeliver, []string{"kind", "corr", "ptr", "subject_len", "payload_len", "headers_len"}, ""},
	{ImportRespond, []string{"corr", "status", "ptr", "len"}, ""},
	{ImportRespondH, []string{"corr", "status", "ptr", "len", "headers_ptr", "headers_len"}, ""},
}

// TransportImports returns every transport action import, in SPEC.md
// order, as a fresh copy.
func TransportImports() []Import {
	out := make([]Import, len(transportImports))
	for i, im := range transportImports {
		im.Params = slices.Clone(im.Params)
		out[i] = im
	}
	return out
}

// IsTransportImport reports whether name is a transport action import.
func IsTransportImport(name string) bool {
	for _, im := range transportImports {
		if im.Name == name {
			return true
		}
	}
	return false
}

// TransportMayImport lists the handler imports a transport plugin may
// import as well: the others (reply, result, header, call, publish, send)
// act on "the message being handled" or block the instance, which a state
// machine has neither of; ImportDeliver, ImportRespond and ImportRespondH do
// their work.
func TransportMayImport() []string {
	return []string{ImportLog, ImportConfig, ImportConfigGet}
}

// DeliverCapability is the grant ImportDeliver needs for a kind.
func DeliverCapability(k Kind) (Capability, bool) {
	switch k {
	case KindRequest:
		return CapCall, true
	case KindSend:
		return CapSend, true
	case KindEvent:
		return CapPublish, true
	}
	return "", false
}

// HeaderOrigin is the header the host adds to every message it routes out
// through a transport: its node id. A transport that carries headers over
// its medium brings it back with the message, and a host drops a message
// delivered to it with its own id there (SPEC.md section 13.2).
const HeaderOrigin = "pycomms-origin"

// HeaderSeq is the header that carries, with HeaderOrigin, an event's
// number on the host it originated on (decimal): its identity, by which a
// host that receives the event through two paths (the mesh and a
// transport, or two transports) drops the second copy (SPEC.md section
// 13.5). Requests and sends have none.
const HeaderSeq = "pycomms-seq"

// Limits of transport plugins that do not depend on configuration.
const (
	// MaxTimers is how many timers one transport instance may have set.
	MaxTimers = 64
	// MaxPendingCalls is how many requests one transport instance may have
	// delivered and not yet had the reply of.
	MaxPendingCalls = 1024
)
