//go:build wasip1

// Command goreplyh is a transport plugin written with the Go transport SDK
// that answers every request routed out through it at once, with its
// payload and, as the reply's headers, the request's own
// (transport.RespondH). TestGoTransportRespondH builds and runs it.
package main

import (
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/sdk/go/transport"
)

type replyh struct{}

func (replyh) Opened(conn uint32, dialed bool, index int) {}
func (replyh) Closed(conn uint32, why abi.Status)         {}
func (replyh) Timer(id uint32)                            {}
func (replyh) Reply(corr uint32, st abi.Status, b []byte) {}
func (replyh) Data(conn uint32, b []byte) int             { return len(b) }

func (replyh) Message(corr uint32, kind abi.Kind, subject string, payload, headers []byte) abi.Status {
	if corr != 0 {
		return transport.RespondH(corr, abi.StatusOK, payload, headers)
	}
	return abi.StatusOK
}

func init() { transport.Set(replyh{}) }

func main() {}
