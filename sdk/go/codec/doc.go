// Package codec is the Go guest SDK for codec plugins (abi/SPEC.md section
// 14): a plugin that converts a payload between declared pairs of media
// types (content-type) or of content codings (content-encoding). A plugin
// calls Register from an init function with its pairs and one convert
// function; plugins/gzip is a complete example.
//
// This package exports pycomms_alloc, pycomms_abi_version,
// pycomms_codec_pairs and pycomms_codec_convert; it must not be linked
// together with the handler SDK (package pycomms, which exports
// pycomms_handle) or the transport SDK: a plugin is one kind.
package codec

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
)

// PairKind says what a Pair converts between.
type PairKind int

const (
	// Type pairs convert between media types (the content-type header),
	// such as application/json and application/cbor.
	Type PairKind = iota + 1
	// Encoding pairs convert between content codings (the
	// content-encoding header); exactly one side is "identity".
	Encoding
)

// Pair is one conversion a codec offers, From -> To.
type Pair struct {
	Kind     PairKind
	From, To string
}

// String returns the pair as one line of the pairs text, without the
// newline: "type application/json application/cbor".
func (p Pair) String() string {
	word := "type"
	if p.Kind == Encoding {
		word = "encoding"
	}
	return word + " " + p.From + " " + p.To
}

// PairsText returns the text pycomms_codec_pairs hands the host: one pair
// per line. It checks the pairs with the host's own parser
// (abi.ParseCodecPairs), so a plugin with a bad pair list fails with the
// same message the host would give.
func PairsText(pairs []Pair) (string, error) {
	var b strings.Builder
	for i, p := range pairs {
		if p.Kind != Type && p.Kind != Encoding {
			return "", fmt.Errorf("codec: pair %d: unknown kind %d (want codec.Type or codec.Encoding)", i, p.Kind)
		}
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	if _, err := abi.ParseCodecPairs([]byte(b.String())); err != nil {
		return "", fmt.Errorf("codec: %w", err)
	}
	return b.String(), nil
}

// Error is a conversion failure with the status the host reports it as.
// Convert functions return Invalid or TooLarge for the two failures a
// caller can act on; any other error fails the conversion with
// handler_error.
type Error struct {
	Status abi.Status
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Invalid is the error for input that is not valid data of the pair's
// From side; the caller sees status invalid and msg.
func Invalid(msg string) error { return &Error{Status: abi.StatusInvalid, Msg: msg} }

// TooLarge is the error for output over a limit of the codec (such as a
// decompression bomb stopped at its max_output); the caller sees status
// too_large and msg.
func TooLarge(msg string) error { return &Error{Status: abi.StatusTooLarge, Msg: msg} }

// StatusOf returns the status a convert function returning err fails
// with: StatusOK for nil, the Status of an *Error in err's chain (invalid
// or too_large), and StatusHandlerError otherwise.
func StatusOf(err error) abi.Status {
	if err == nil {
		return abi.StatusOK
	}
	var e *Error
	if errors.As(err, &e) && e.Status > abi.StatusOK && e.Status <= abi.StatusInternal {
		return e.Status
	}
	return abi.StatusHandlerError
}

// Convert converts data from one side of a pair to the other. data is
// valid only during the call; the result is copied by the host.
type Convert func(from, to string, data []byte) ([]byte, error)

var (
	regPairs   []Pair
	regConvert Convert
)

// Register installs the plugin's pairs and its convert function; call it
// from an init function (a c-shared Go plugin runs init when the host calls
// _initialize, never main). The host calls convert only with a pair from
// pairs.
func Register(pairs []Pair, convert Convert) {
	regPairs = append([]Pair(nil), pairs...)
	regConvert = convert
}
