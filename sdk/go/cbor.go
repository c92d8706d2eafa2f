package pycomms

import (
	"reflect"
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
