// Package message defines the in-host representation of a message and the
// error type that carries an abi.Status from wherever a message fails (the
// router, a plugin, the control API) to whoever has to report it (a guest
// host-function return code, an HTTP status, a CLI exit code).
package message

import (
	"errors"
	"fmt"
	"time"

	"github.com/pycomms/pycomms-host/abi"
)

// Message is one request, one-way send or event travelling through the host.
// The router and the plugin runtime never modify a Message they did not
// create, but for the router's numbering of an event published on this
// host (Seq, see router.Router.Publish); Payload and Headers are shared
// read-only.
type Message struct {
	Kind    abi.Kind
	Subject string
	Payload []byte
	Headers abi.Headers
	// Deadline is when the sender stops waiting. Zero means no deadline
	// (only allowed for events and sends, which get the receiver's limit).
	Deadline time.Time
	// Hops counts how many handlers this message's causal chain has passed
	// through inside the host; the router refuses chains deeper than its
	// limit so that a call loop ends with a clear error, not a deadlock.
	Hops int
	// Chain identifies the synchronous call chain a request belongs to on
	// this host: a request made by a handler (the call import) carries the
	// chain of the message that handler is running; 0 means the request
	// starts a chain (it came from the control API, the mesh or a post).
	// The plugin pool uses it to tell a call loop, where every instance of
	// the target is held by the waiting chain itself, from a busy plugin.
	// It is never sent to another host.
	Chain uint64
	// From names the origin: a plugin name, "control", or "node:NAME" for
	// a message that came from another host.
	From string
	// FromNode is the id of the host the message came from over the mesh,
	// or of the host an event came from through a transport (its header
	// pycomms-origin), "" when it originated on this host. The router
	// never hands a message with a FromNode back to the mesh, so a message
	// crosses the mesh once and cannot loop between hosts.
	FromNode string
	// Seq is an event's number on the host it originated on: with that
	// host's id (FromNode, or this host for "") it is the event's
	// identity, by which a host that receives an event through two paths
	// (the mesh and a transport) drops the second copy. The router
	// numbers the events published on this host; the mesh carries it in
	// the envelope's id and a transport in the header pycomms-seq. 0: no
	// identity (an older host); such an event is never dropped as a
	// duplicate. Requests and sends have none.
	Seq uint64
	// Local marks a message addressed to this host by name (a call or send
	// with --node naming this node): the router serves it here or not at
	// all and never hands it to the mesh, as for a message with a FromNode.
	Local bool
	// ReplyHeaders, when not nil, is where the handler of a request puts
	// its reply's headers (only when it set any): the one field a callee
	// writes, through a pointer its caller supplies, before the reply is
	// returned. nil: the caller does not want them and they are dropped.
	// Whoever answers writes it on the caller's goroutine: a plugin on
	// this host as it returns, the mesh and a transport once the reply
	// has come back (an endpoint that answers from another goroutine must
	// never write it after its caller stopped waiting). The pointer is
	// never sent to another host; the mesh carries the headers in its
	// reply envelope.
	ReplyHeaders *abi.Headers
}

// Error is a failed message: a status class plus a human-readable text that
// names what failed and where.
type Error struct {
	Status abi.Status
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error with the given status.
func Errorf(status abi.Status, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf returns the status carried by err, StatusOK for nil, and
// StatusInternal for an error that carries none.
func StatusOf(err error) abi.Status {
	if err == nil {
		return abi.StatusOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return abi.StatusInternal
}
