package control

import (
	"net/http"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// HTTPStatus is the HTTP status code the control API answers with for a
// failure of the given status. Several statuses share a code (404 for
// no_handler, no_method and not_found; 502 for trap and unreachable), which
// is why clients must read the "status" field of the error body instead.
func HTTPStatus(s abi.Status) int {
	switch s {
	case abi.StatusOK:
		return http.StatusOK
	case abi.StatusInvalid:
		return http.StatusBadRequest
	case abi.StatusDenied:
		return http.StatusForbidden
	case abi.StatusNoHandler, abi.StatusNoMethod, abi.StatusNotFound:
		return http.StatusNotFound
	case abi.StatusTooLarge:
		return http.StatusRequestEntityTooLarge
	case abi.StatusHandlerError:
		// 422, not 5xx: the handler ran and rejected the request, which is
		// an application answer, unlike a trap.
		return http.StatusUnprocessableEntity
	case abi.StatusTrap, abi.StatusUnreachable:
		// The thing behind the API (a plugin, or the node that serves the
		// subject) failed: the gateway-failure code fits both.
		return http.StatusBadGateway
	case abi.StatusBusy:
		return http.StatusServiceUnavailable
	case abi.StatusTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Exit codes of the pycomms-host CLI, one per failure class. The table in
// cmd/pycomms-host/EXITCODES.md documents them; a test keeps both in step.
const (
	ExitOK          = 0 // success
	ExitUsage       = 1 // bad command line, invalid config, invalid or too large request
	ExitNoHandler   = 2 // nobody serves the subject, or not that method
	ExitTimeout     = 3 // the deadline passed
	ExitPluginError = 4 // the handler returned an application error
	ExitPluginTrap  = 5 // the plugin trapped, was killed or broke the ABI
	ExitBusy        = 6 // a bounded queue on the node is full
	ExitUnreachable = 7 // the node (or the node serving the subject) cannot be reached
	ExitOther       = 8 // anything else: denied, internal errors, local I/O failures
	// ExitListen is `run` failing to listen on one of its addresses
	// (control, listen.tcp, listen.quic): in use, or not this host's.
	// Not a config error: the same config may work once the address is
	// free, so a supervisor may retry it.
	ExitListen = 9
	// ExitInterrupted follows the shell convention 128+SIGINT for a command
	// cut short by SIGINT or SIGTERM; `sub` exits ExitOK on interrupt
	// instead, because interrupting is how it is meant to end.
	ExitInterrupted = 130
)

// ExitCodeFor returns the CLI exit code for a failure of the given status.
func ExitCodeFor(s abi.Status) int {
	switch s {
	case abi.StatusOK:
		return ExitOK
	case abi.StatusInvalid, abi.StatusTooLarge:
		// The request as given can never succeed: the user has to change
		// the command line, the payload or the config, as for a usage error.
		return ExitUsage
	case abi.StatusNoHandler, abi.StatusNoMethod:
		return ExitNoHandler
	case abi.StatusTimeout:
		return ExitTimeout
	case abi.StatusHandlerError:
		return ExitPluginError
	case abi.StatusTrap:
		return ExitPluginTrap
	case abi.StatusBusy:
		return ExitBusy
	case abi.StatusUnreachable:
		return ExitUnreachable
	}
	return ExitOther
}

// ExitCode returns the CLI exit code for err: ExitOK for nil, the code of
// its status for a *message.Error (see ExitCodeFor), ExitOther otherwise.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	return ExitCodeFor(message.StatusOf(err))
}
