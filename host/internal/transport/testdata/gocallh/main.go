//go:build wasip1

// Command gocallh is transport_callh.wat written with the Go transport
// SDK: each whole line that arrives is delivered as a request to
// "headers.r", and each reply, with its headers (ReplyH of
// transport.ReplyHeadersHandler), is written on the last connection that
// opened as status, reply length, headers length (3 x u32, little-endian),
// reply, headers. TestGoTransportReplyHeaders builds and runs it.
package main

import (
	"bytes"
	"encoding/binary"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/sdk/go/transport"
)

type callh struct {
	last uint32
	corr uint32
}

func (g *callh) Opened(conn uint32, dialed bool, index int) { g.last = conn }
func (g *callh) Closed(conn uint32, why abi.Status)         {}
func (g *callh) Timer(id uint32)                            {}

func (g *callh) Message(corr uint32, kind abi.Kind, subject string, payload, headers []byte) abi.Status {
	return abi.StatusNoHandler
}

func (g *callh) Data(conn uint32, b []byte) int {
	n := bytes.IndexByte(b, '\n')
	if n < 0 {
		return 0
	}
	g.corr++
	transport.Deliver(abi.KindRequest, g.corr, "headers.r", b[:n], nil)
	return n + 1
}

// Reply is never called: the SDK calls ReplyH instead.
func (g *callh) Reply(corr uint32, st abi.Status, b []byte) {
	g.ReplyH(corr, abi.StatusInternal, []byte("Reply called instead of ReplyH"), nil)
}

func (g *callh) ReplyH(corr uint32, st abi.Status, b, headers []byte) {
	if g.last == 0 {
		return
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(st))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(headers)))
	transport.Write(g.last, append(append(out, b...), headers...))
}

func init() { transport.Set(&callh{}) }

func main() {}
