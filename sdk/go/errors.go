package pycomms

import (
	"errors"
	"fmt"

	"github.com/pycomms/pycomms-host/abi"
)

// Error is an error with an ABI status. Host functions return *Error, and a
// handler that returns one (directly or wrapped with %w) fails with its
// Status instead of StatusHandlerError, so that, for example, a timeout of an
// inner Call reaches the original caller as a timeout.
type Error struct {
	Status abi.Status // the status the failure is reported as
	Msg    string     // human-readable text; the caller sees it as the error message

	// wrapped keeps the %w operand of Errorf so errors.Is/As see through it.
	wrapped error
}

// Error returns Msg, or a text naming the status when Msg is empty.
func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return "pycomms: " + e.Status.String()
}

// Unwrap returns the error wrapped by Errorf's %w verb, if any.
func (e *Error) Unwrap() error { return e.wrapped }

// Errorf returns an *Error with the given status and a message formatted as
// fmt.Errorf does (including %w wrapping). Return it from a handler to fail
// the message with a status other than handler_error.
func Errorf(status abi.Status, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Status: status, Msg: err.Error(), wrapped: errors.Unwrap(err)}
}

// StatusOf returns the status a handler returning err fails with: StatusOK
// for nil, the Status of the first *Error in err's chain that carries a
// failure status, and StatusHandlerError otherwise.
func StatusOf(err error) abi.Status {
	if err == nil {
		return abi.StatusOK
	}
	for e := err; e != nil; {
		var pe *Error
		if !errors.As(e, &pe) {
			break
		}
		if validFailure(pe.Status) {
			return pe.Status
		}
		// An *Error with StatusOK or an unknown status cannot describe a
		// failure; keep looking further down the chain.
		e = pe.wrapped
	}
	return abi.StatusHandlerError
}

// validFailure reports whether st is a status a handler may fail with.
func validFailure(st abi.Status) bool {
	return st > abi.StatusOK && st <= abi.MaxStatus
}

// hostError builds the error for a host function that returned the negated
// status st. A refused capability gets the text the ABI promises (naming the
// capability); otherwise text is the host's own message when it gave one.
func hostError(op string, target string, st abi.Status, text string) *Error {
	if st == abi.StatusDenied {
		if c, _ := abi.ImportCapability(op); c != "" {
			return &Error{Status: st, Msg: fmt.Sprintf("pycomms: capability %q not granted to this plugin", string(c))}
		}
	}
	if text != "" {
		return &Error{Status: st, Msg: text}
	}
	if target != "" {
		return &Error{Status: st, Msg: fmt.Sprintf("pycomms: %s %q: %s", op, target, st)}
	}
	return &Error{Status: st, Msg: fmt.Sprintf("pycomms: %s: %s", op, st)}
}
