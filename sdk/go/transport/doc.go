// Package transport is the Go guest SDK for transport plugins (abi/SPEC.md
// section 13): a wire protocol written as a state machine while the host
// owns every socket. A plugin implements Handler, calls Set from an init
// function, and acts with Write, Open, Close, SetTimer, Deliver, Respond
// and RespondH (a reply with headers); a Handler that also implements
// ReplyHeadersHandler gets the headers of the replies to the requests it
// delivers. plugins/linejson is a complete example.
//
// This package exports pycomms_alloc, pycomms_abi_version and
// pycomms_transport_event; it must not be linked together with the handler
// SDK (package pycomms), which exports pycomms_handle: a plugin is one kind.
package transport

import "github.com/pycomms/pycomms-host/abi"

// Handler receives a transport plugin's events, one at a time. Byte slices
// are valid only during the call: copy what you keep.
type Handler interface {
	// Opened: conn is open, pinned to this instance; dialed says whether
	// it is one of the dial entries (index into dial) or accepted (index
	// into accept).
	Opened(conn uint32, dialed bool, index int)
	// Data returns how many bytes of b it consumed; the host keeps the
	// rest and hands it again, followed by what arrives next. A negated
	// status (-int(abi.StatusInvalid) for bytes that break the protocol)
	// makes the host close conn, counted, and Closed follows with it.
	Data(conn uint32, b []byte) int
	// Closed: conn closed, why says how (abi.StatusOK: the peer closed it).
	Closed(conn uint32, why abi.Status)
	// Message is a message the host routes out through this transport;
	// corr is non-zero for a request, to be answered with Respond (or
	// RespondH, to give the reply headers). The
	// returned status fails the request when it is not abi.StatusOK.
	Message(corr uint32, kind abi.Kind, subject string, payload, headers []byte) abi.Status
	// Reply is the answer to a request delivered with Deliver and corr,
	// without its headers: implement ReplyHeadersHandler to get them.
	Reply(corr uint32, st abi.Status, b []byte)
	// Timer is a timer set with SetTimer firing.
	Timer(id uint32)
}

// ReplyHeadersHandler is a Handler that also wants the headers of the
// replies to the requests it delivers. When the Handler given to Set
// implements it, the answer to a request delivered with Deliver and corr
// comes to ReplyH instead of Reply: headers is the reply's headers as
// their handler set them, a CBOR map of text to text (SPEC.md section
// 10), empty when the reply has none and always for an error reply (st
// other than abi.StatusOK, b its error text). A Handler without ReplyH
// keeps working as before.
type ReplyHeadersHandler interface {
	ReplyH(corr uint32, st abi.Status, b, headers []byte)
}

var (
	h  Handler
	rh ReplyHeadersHandler // h, when it wants reply headers
)

// Set installs the plugin's Handler; call it from an init function (a
// c-shared Go plugin runs init when the host calls _initialize, never main).
func Set(handler Handler) {
	h = handler
	rh, _ = handler.(ReplyHeadersHandler)
}
