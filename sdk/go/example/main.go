//go:build wasip1

// Command example is the smallest useful pycomms plugin written with the Go
// SDK: it serves hello.greet, replying "hello, " followed by the payload.
//
// Build it from this directory with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
// and load it with a plugins entry such as
//
//	plugins:
//	  - name: hello
//	    path: ./hello.wasm
//	    services: [hello]
package main

import (
	pycomms "github.com/pycomms/pycomms-host/sdk/go"
)

// init, not main, registers the handlers: a c-shared plugin's main never
// runs.
func init() {
	pycomms.Handle("hello.greet", greet)
}

func greet(m *pycomms.Msg) ([]byte, error) {
	name := m.Payload()
	if len(name) == 0 {
		name = []byte("world")
	}
	// The payload aliases the SDK's input buffer; appending it to a new
	// slice copies it, which is what a reply kept past the handler needs
	// (the SDK hands the reply to the host before the buffer is reused, so
	// returning the payload itself would be fine too).
	return append([]byte("hello, "), name...), nil
}

func main() {}
