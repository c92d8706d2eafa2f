package message

import (
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
)

// headersDec decodes headers a plugin hands to the host: strictly, because
// a guest is not trusted to encode well. Definite lengths only, no tags, no
// duplicate keys, valid UTF-8, text to text (a byte string is refused), at
// most abi.MaxHeaders pairs.
var headersDec, _ = cbor.DecOptions{
	DupMapKey:       cbor.DupMapKeyEnforcedAPF,
	IndefLength:     cbor.IndefLengthForbidden,
	TagsMd:          cbor.TagsForbidden,
	MaxNestedLevels: 4,
	MaxMapPairs:     abi.MaxHeaders,
}.DecMode()

// DecodeHeaders decodes and checks the headers a plugin hands to the host
// (abi/SPEC.md section 10): a CBOR map of text to text with definite lengths,
// at most abi.MaxHeadersLen bytes and abi.MaxHeaders entries, every key non-empty,
// lower-case and not starting with abi.ReservedHeaderPrefix. Empty b means no
// headers (nil, nil). The error says what is wrong, for the host's log.
func DecodeHeaders(b []byte) (abi.Headers, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) > abi.MaxHeadersLen {
		return nil, fmt.Errorf("headers of %d bytes exceed %d", len(b), abi.MaxHeadersLen)
	}
	// A CBOR null or undefined would decode into a nil map without error:
	// only a map (major type 5) is headers.
	if b[0]>>5 != 5 {
		return nil, fmt.Errorf("headers are not a CBOR map (initial byte %#02x)", b[0])
	}
	var h abi.Headers
	if err := headersDec.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("headers are not a CBOR map of text to text: %w", err)
	}
	for k := range h {
		if err := checkHeaderKey(k); err != nil {
			return nil, err
		}
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

func checkHeaderKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("header key is empty")
	case strings.HasPrefix(k, abi.ReservedHeaderPrefix):
		return fmt.Errorf("header %q: keys starting with %q are set by the host", k, abi.ReservedHeaderPrefix)
	}
	for i := 0; i < len(k); i++ {
		if 'A' <= k[i] && k[i] <= 'Z' {
			return fmt.Errorf("header %q: keys are lower-case", k)
		}
	}
	return nil
}
