//go:build wasip1

// Command example is the transport plugin of sdk/go/transport/README.md:
// it echoes whole lines back on the connection they came from.
package main

import (
	"bytes"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/sdk/go/transport"
)

type lines struct{}

func (lines) Opened(conn uint32, dialed bool, index int) {}
func (lines) Closed(conn uint32, why abi.Status)         {}
func (lines) Timer(id uint32)                            {}
func (lines) Reply(corr uint32, st abi.Status, b []byte) {}
func (lines) Message(corr uint32, kind abi.Kind, subject string, payload, headers []byte) abi.Status {
	return abi.StatusNoHandler
}

// Data echoes whole lines; a partial line stays with the host.
func (lines) Data(conn uint32, b []byte) int {
	n := bytes.LastIndexByte(b, '\n') + 1
	transport.Write(conn, b[:n])
	return n
}

func init() { transport.Set(lines{}) }

func main() {}
