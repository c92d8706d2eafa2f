//go:build wasip1

// Command example is the codec plugin of sdk/go/codec/README.md: it
// converts between raw bytes and their base64 text as a content coding.
package main

import (
	"encoding/base64"

	"github.com/pycomms/pycomms-host/sdk/go/codec"
)

func convert(from, to string, data []byte) ([]byte, error) {
	if to == "base64" {
		return base64.StdEncoding.AppendEncode(nil, data), nil
	}
	out, err := base64.StdEncoding.AppendDecode(nil, data)
	if err != nil {
		return nil, codec.Invalid("base64: " + err.Error())
	}
	return out, nil
}

func init() {
	codec.Register([]codec.Pair{
		{Kind: codec.Encoding, From: "identity", To: "base64"},
		{Kind: codec.Encoding, From: "base64", To: "identity"},
	}, convert)
}

func main() {}
