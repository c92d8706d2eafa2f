package plugins

import _ "embed"

//go:generate go run ./mkwasm.go gzip

// gzipWasm is the gzip content-coding codec (kind: codec), in Go with
// sdk/go/codec; go generate builds it from gzip/main.go.
//
//go:embed gzip/gzip.wasm
var gzipWasm []byte

// jsoncborWasm is the application/json <-> application/cbor codec (kind:
// codec), in C with sdk/c/pycomms_codec.c; scripts/build-fixtures.sh
// builds it from jsoncbor/jsoncbor.c.
//
//go:embed jsoncbor/jsoncbor.wasm
var jsoncborWasm []byte

func init() {
	registerBuiltin("gzip", gzipWasm)
	registerBuiltin("json-cbor", jsoncborWasm)
}
