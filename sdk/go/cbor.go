package pycomms

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
)

// CBOR is used only for rarely read, structured data (headers, config), as
// the ABI intends: the per-message hot path never touches it.

// decodeHeaders decodes the headers region of a message (abi.Headers).
func decodeHeaders(b []byte) (map[string]string, error) {
	var h abi.Headers
	if err := cbor.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	return h, nil
}

// configDecMode decodes a plugin config into plain Go values: nested maps as
// map[string]any (not CBOR's default map[any]any, which is awkward to use)
// and every integer as int64, so a value's Go type does not depend on its
// sign or size.
var configDecMode = sync.OnceValues(func() (cbor.DecMode, error) {
	return cbor.DecOptions{
		DefaultMapType: reflect.TypeOf(map[string]any(nil)),
		IntDec:         cbor.IntDecConvertSignedOrFail,
	}.DecMode()
})

// decodeConfig decodes the CBOR config map returned by the config import.
func decodeConfig(b []byte) (map[string]any, error) {
	dm, err := configDecMode()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := dm.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// encodeHeaders encodes the headers of an outgoing message or reply as the
// host wants them (SPEC.md section 10): keys lower-cased here, so that
// "Content-Type" works; empty keys, keys that collide once lower-cased,
// keys starting with "pycomms-" (the host's own), more than
// abi.MaxHeaders entries or more than abi.MaxHeadersLen bytes fail with
// StatusInvalid before anything is sent. No headers encode to nothing.
func encodeHeaders(op, target string, h map[string]string) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	bad := func(format string, args ...any) error {
		where := op
		if target != "" {
			where += fmt.Sprintf(" %q", target)
		}
		return &Error{Status: abi.StatusInvalid, Msg: "pycomms: " + where + ": " + fmt.Sprintf(format, args...)}
	}
	if len(h) > abi.MaxHeaders {
		return nil, bad("%d headers, more than %d", len(h), abi.MaxHeaders)
	}
	lower := h
	for k := range h {
		if k != strings.ToLower(k) {
			lower = nil
			break
		}
	}
	if lower == nil {
		lower = make(map[string]string, len(h))
		for k, v := range h {
			l := strings.ToLower(k)
			if _, dup := lower[l]; dup {
				return nil, bad("two header keys are %q once lower-cased", l)
			}
			lower[l] = v
		}
	}
	for k := range lower {
		if k == "" {
			return nil, bad("a header key is empty")
		}
		if strings.HasPrefix(k, abi.ReservedHeaderPrefix) {
			return nil, bad("header %q: keys starting with %q are set by the host", k, abi.ReservedHeaderPrefix)
		}
	}
	b, err := cbor.Marshal(lower)
	if err != nil {
		return nil, bad("headers: %v", err)
	}
	if len(b) > abi.MaxHeadersLen {
		return nil, bad("headers of %d bytes exceed %d", len(b), abi.MaxHeadersLen)
	}
	return b, nil
}
