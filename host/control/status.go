package control

import (
	"net/http"

	"github.com/pycomms/pycomms-host/abi"
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
	case abi.StatusUnsupportedType:
		return http.StatusUnsupportedMediaType
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
