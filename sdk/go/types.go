package pycomms

import "github.com/pycomms/pycomms-host/abi"

// The SDK re-exports the ABI's kinds, statuses and log levels as aliases, so
// a plugin needs a single import while the numbers stay defined in exactly
// one place (package abi).

// Kind says how a message was sent: KindRequest expects a reply, KindSend
// and KindEvent do not.
type Kind = abi.Kind

// Message kinds.
const (
	KindRequest = abi.KindRequest // request/reply: the handler's reply goes back to the caller
	KindSend    = abi.KindSend    // one-way send to a service: the reply is dropped
	KindEvent   = abi.KindEvent   // pub/sub event: delivered to Subscribe handlers
)

// Status is the result class of a handler or a host function.
type Status = abi.Status

// Statuses, with the meanings given in the ABI specification.
const (
	StatusOK           = abi.StatusOK
	StatusDenied       = abi.StatusDenied
	StatusInvalid      = abi.StatusInvalid
	StatusTooLarge     = abi.StatusTooLarge
	StatusNoHandler    = abi.StatusNoHandler
	StatusTimeout      = abi.StatusTimeout
	StatusBusy         = abi.StatusBusy
	StatusHandlerError = abi.StatusHandlerError
	StatusTrap         = abi.StatusTrap
	StatusNoMethod     = abi.StatusNoMethod
	StatusNotFound     = abi.StatusNotFound
	StatusUnreachable  = abi.StatusUnreachable
	StatusInternal     = abi.StatusInternal
	// StatusUnsupportedType: no codec converts the payload to a type the
	// handler accepts (SPEC section 14.5).
	StatusUnsupportedType = abi.StatusUnsupportedType
)

// Durable queues (SPEC section 15). A plugin enqueues with
// Call(QueueSubjectPrefix+"orders.created", ...), answered with the
// message's id once it is on disk; a plugin that consumes a queue
// (plugins[].queues in the host's config) gets each message as a send
// under that subject, with the headers below, and acknowledges it by
// returning nil.
const (
	QueueSubjectPrefix = abi.QueueSubjectPrefix
	// HeaderQueueID is the message's id in its queue (decimal), the same
	// on every delivery: the key for a handler that must not act twice.
	HeaderQueueID = abi.HeaderQueueID
	// HeaderAttempt is 1 on the first delivery, 2 on the first retry, ...
	HeaderAttempt = abi.HeaderAttempt
)

// Level is a log level for Log.
type Level = abi.Level

// Log levels.
const (
	LevelDebug = abi.LevelDebug
	LevelInfo  = abi.LevelInfo
	LevelWarn  = abi.LevelWarn
	LevelError = abi.LevelError
)
