// Package wire is the protocol two pycomms hosts speak over a link: how
// bytes are cut into frames, and what the body of each frame means.
// abi/PROTOCOL.md is the normative description; protocol_test.go fails when
// it and this package disagree on a number or a name.
//
// The package does no I/O of its own apart from [Reader], which cuts an
// io.Reader into frames. Everything else appends to or reads from byte
// slices, so the same code serves a TLS/TCP connection, a QUIC stream and a
// fuzz target, and transports stay in charge of deadlines, buffering and
// concurrency.
//
// Two encodings share the frames. Control frames (hello, error, interest,
// ping, pong, goaway, members) are rare, so their CBOR bodies go through fxamacker/cbor
// with strict decoding limits. Message frames carry every request, reply and
// event, so [AppendEnvelope] and [DecodeEnvelope] encode that one map by
// hand: no reflection, no allocation when encoding, and when decoding one
// allocation for all the strings and one for the payload. The decoders are
// written so that nothing a peer sends can make a host panic, loop, recurse
// deeply or allocate much beyond the bytes it has actually been sent.
package wire

import (
	"fmt"

	"github.com/pycomms/pycomms-host/abi"
)

// MinVersion and MaxVersion bound the protocol versions this package speaks:
// the range is declared once, as abi.ProtocolMinVersion and
// abi.ProtocolMaxVersion. Two hosts agree on one with [Negotiate] during the
// hello exchange.
// Version 2 added the ack frame ([Ack]) and the ack key of [Members]; a
// link at version 1 carries neither, so a host of either kind links to the
// other.
const (
	MinVersion uint16 = abi.ProtocolMinVersion
	MaxVersion uint16 = abi.ProtocolMaxVersion
)

// AckVersion is the first protocol version whose links carry ack frames.
const AckVersion uint16 = 2

// FrameType is the byte after a frame's length: it says how to read the body.
type FrameType uint8

// Frame types. Their numbers are part of the protocol and never change.
// Control types sit below 16 and message types from 16 on, so that a trace
// of raw bytes is readable at a glance.
const (
	FrameHello    FrameType = 1  // CBOR Hello; the first frame each way
	FrameError    FrameType = 2  // CBOR ErrorFrame; the sender closes the link after it
	FrameInterest FrameType = 3  // CBOR Interest
	FramePing     FrameType = 4  // CBOR Ping
	FramePong     FrameType = 5  // CBOR Ping, echoing the nonce of the ping it answers
	FrameGoAway   FrameType = 6  // CBOR ErrorFrame; clean leave, no new requests from now on
	FrameMembers  FrameType = 7  // CBOR Members; membership records flooded through the mesh
	FrameAck      FrameType = 8  // CBOR Ack; version 2 on: an interest or members frame was applied
	FrameMsg      FrameType = 16 // Envelope, hand-coded CBOR
)

var frameNames = [...]string{
	FrameHello:    "hello",
	FrameError:    "error",
	FrameInterest: "interest",
	FramePing:     "ping",
	FramePong:     "pong",
	FrameGoAway:   "goaway",
	FrameMembers:  "members",
	FrameAck:      "ack",
	FrameMsg:      "msg",
}

// String returns the name PROTOCOL.md uses for t, or "frame(N)" for a type
// this package does not know.
func (t FrameType) String() string {
	if int(t) < len(frameNames) && frameNames[t] != "" {
		return frameNames[t]
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// known reports whether t is a frame type of this protocol version. A
// receiver refuses any other type instead of skipping it: the hello exchange
// already settled which version both sides speak, so an unknown type means
// the peer is broken, not newer.
func (t FrameType) known() bool {
	return int(t) < len(frameNames) && frameNames[t] != ""
}

// HeaderLen is the size of a frame header: a 4-byte big-endian length L,
// which counts the type byte and the body, then the type byte.
const HeaderLen = 5

// Overhead is how much larger than its payload a message frame may be: the
// subject, ids, numbers and, above all, the headers, which the plugin ABI
// lets grow to abi.MaxHeadersLen. The extra 4 KiB covers everything else
// (a subject is at most abi.MaxSubjectLen) so that a message that is legal
// on one host always fits the frame limit of the next.
const Overhead = abi.MaxHeadersLen + 4<<10

// maxL is the largest length a frame header can state.
const maxL = 1<<32 - 1

// FrameLimit returns the largest frame length L a receiver that accepts
// payloads up to maxPayload bytes should allow; pass it to [NewReader].
// The result is capped at what a 32-bit length can state.
func FrameLimit(maxPayload int) int {
	n := uint64(max(maxPayload, 0)) + Overhead + HeaderLen
	return int(min(n, maxL, uint64(maxInt)))
}

const maxInt = int(^uint(0) >> 1)

// QUIC stream types: the first byte of every unidirectional stream a host
// opens says what follows, so that a receiver knows before reading a frame
// whether the stream is the long-lived main stream or carries one frame.
const (
	StreamMain  byte = 'M' // control frames, small messages and all events, in order
	StreamFrame byte = 'F' // exactly one message frame, then FIN
)

// SeparateStreamAbove is the frame size, header included, above which a
// QUIC sender moves a message that is not an event off the main stream
// onto a stream of its own, so that a large payload does not hold up the
// small ones queued behind it. Events always stay on the main stream, which
// keeps them in publish order. It is the sender's choice, not a rule a
// receiver checks: a receiver accepts any message frame on either stream.
const SeparateStreamAbove = 16 << 10

// ErrorCode says why a host sent an error or goaway frame, or why it refused
// a frame it received.
type ErrorCode uint16

// Error codes. Their numbers are part of the protocol and never change.
const (
	ErrProtocol   ErrorCode = 1 // a malformed frame or a frame out of turn
	ErrVersion    ErrorCode = 2 // the two version ranges do not overlap
	ErrNotTrusted ErrorCode = 3 // the peer's identity or proof was refused
	ErrTooLarge   ErrorCode = 4 // a frame exceeded the receiver's limit
	ErrDuplicate  ErrorCode = 5 // a link to that node exists already
	ErrShutdown   ErrorCode = 6 // the sender is shutting down
	ErrSelf       ErrorCode = 7 // the host connected to itself
)

var codeNames = [...]string{
	ErrProtocol:   "protocol",
	ErrVersion:    "version",
	ErrNotTrusted: "not_trusted",
	ErrTooLarge:   "too_large",
	ErrDuplicate:  "duplicate",
	ErrShutdown:   "shutdown",
	ErrSelf:       "self",
}

// String returns the snake_case name PROTOCOL.md uses for c, or "code(N)".
func (c ErrorCode) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// ProtocolError is a peer breaking the protocol, detected locally: a frame
// too large, of an unknown type or with a body that does not decode, or a
// version range that does not overlap ours. Code and Msg are ready to be sent
// back in an [ErrorFrame] before the link is closed.
type ProtocolError struct {
	Code ErrorCode
	Msg  string
}

func (e *ProtocolError) Error() string { return e.Msg }

func protocolErrorf(code ErrorCode, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Msg: fmt.Sprintf(format, args...)}
}
