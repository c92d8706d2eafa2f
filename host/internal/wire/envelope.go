package wire

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// MsgKind says what an envelope is. The first three match abi.Kind, so a
// request, send or event keeps its number from plugin to wire and back.
type MsgKind uint8

// Envelope kinds. Their numbers are part of the protocol and never change.
const (
	KindRequest MsgKind = 1 // the sender waits for a reply with ReplyTo = ID
	KindSend    MsgKind = 2 // one-way message to a service
	KindEvent   MsgKind = 3 // pub/sub event on a topic
	KindReply   MsgKind = 4 // the answer to request ReplyTo
	KindCancel  MsgKind = 5 // the requester gave up on request ReplyTo
)

var kindNames = [...]string{
	KindRequest: "request",
	KindSend:    "send",
	KindEvent:   "event",
	KindReply:   "reply",
	KindCancel:  "cancel",
}

func (k MsgKind) String() string {
	if k != 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Envelope is one message on a link: the body of a FrameMsg frame.
type Envelope struct {
	Version uint16  // protocol version the envelope was written for
	ID      uint64  // request id, unique per link while outstanding; an event's number on its origin (0: none); 0 for sends
	Kind    MsgKind // required
	From    string  // origin node id
	To      string  // destination node id; "" is the receiving host
	Subject string  // subject or topic
	ReplyTo uint64  // on a reply or cancel: the ID of the request
	Headers map[string]string
	// Deadline is the time left in microseconds when the envelope was sent;
	// 0 means none. A budget rather than a time because the two hosts'
	// clocks need not agree.
	Deadline uint64
	Payload  []byte
	Hops     uint32 // call-chain depth, so loops across hosts end too
	Status   uint16 // on a reply: the abi.Status; 0 is ok
	Error    string // on a failed reply: the error message
	Relays   uint8  // how many hosts relayed the envelope; 0 when sent directly
}

// Envelope map keys. Small unsigned integers encode in one byte each.
const (
	keyVersion = iota
	keyID
	keyKind
	keyFrom
	keyTo
	keySubject
	keyReplyTo
	keyHeaders
	keyDeadline
	keyPayload
	keyHops
	keyStatus
	keyError
	keyRelays
	numKeys
)

// keyNames are the names PROTOCOL.md gives the keys; errors use them too.
var keyNames = [numKeys]string{
	keyVersion:  "version",
	keyID:       "id",
	keyKind:     "kind",
	keyFrom:     "from",
	keyTo:       "to",
	keySubject:  "subject",
	keyReplyTo:  "reply_to",
	keyHeaders:  "headers",
	keyDeadline: "deadline",
	keyPayload:  "payload",
	keyHops:     "hops",
	keyStatus:   "status",
	keyError:    "error",
	keyRelays:   "relays",
}

// CBOR major types.
const (
	majorUint  = 0
	majorNint  = 1
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
	majorTag   = 6
	majorOther = 7
)

// AppendEnvelope appends e to dst as a whole FrameMsg frame: header, then
// the CBOR map. Zero fields other than the version are left out (so Kind
// must be set: a receiver refuses an envelope without one), and headers
// are written in RFC 8949 core deterministic order (shorter keys first,
// then bytewise), so equal envelopes encode to equal bytes. It does not
// allocate when dst has room, except to sort more than 16 headers or to
// repair a string that is not valid UTF-8: such a string is
// sent with U+FFFD in place of the bad bytes (a header key is left out),
// because a peer refuses the whole envelope otherwise, and a plugin's error
// text is arbitrary bytes.
//
// The caller keeps the envelope below the peer's frame limit (see
// [FrameLimit] and Hello.MaxFrame), which is far below the 4 GiB a frame
// length can state.
func AppendEnvelope(dst []byte, e *Envelope) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(FrameMsg))

	n := 1
	for _, present := range [...]bool{
		e.ID != 0, e.Kind != 0, e.From != "", e.To != "", e.Subject != "",
		e.ReplyTo != 0, len(e.Headers) != 0, e.Deadline != 0, len(e.Payload) != 0,
		e.Hops != 0, e.Status != 0, e.Error != "", e.Relays != 0,
	} {
		if present {
			n++
		}
	}
	dst = appendHead(dst, majorMap, uint64(n))

	dst = append(dst, keyVersion)
	dst = appendHead(dst, majorUint, uint64(e.Version))
	if e.ID != 0 {
		dst = append(dst, keyID)
		dst = appendHead(dst, majorUint, e.ID)
	}
	if e.Kind != 0 {
		dst = append(dst, keyKind)
		dst = appendHead(dst, majorUint, uint64(e.Kind))
	}
	if e.From != "" {
		dst = append(dst, keyFrom)
		dst = appendText(dst, e.From)
	}
	if e.To != "" {
		dst = append(dst, keyTo)
		dst = appendText(dst, e.To)
	}
	if e.Subject != "" {
		dst = append(dst, keySubject)
		dst = appendText(dst, e.Subject)
	}
	if e.ReplyTo != 0 {
		dst = append(dst, keyReplyTo)
		dst = appendHead(dst, majorUint, e.ReplyTo)
	}
	if len(e.Headers) != 0 {
		dst = append(dst, keyHeaders)
		dst = appendHeaders(dst, e.Headers)
	}
	if e.Deadline != 0 {
		dst = append(dst, keyDeadline)
		dst = appendHead(dst, majorUint, e.Deadline)
	}
	if len(e.Payload) != 0 {
		dst = append(dst, keyPayload)
		dst = appendHead(dst, majorBytes, uint64(len(e.Payload)))
		dst = append(dst, e.Payload...)
	}
	if e.Hops != 0 {
		dst = append(dst, keyHops)
		dst = appendHead(dst, majorUint, uint64(e.Hops))
	}
	if e.Status != 0 {
		dst = append(dst, keyStatus)
		dst = appendHead(dst, majorUint, uint64(e.Status))
	}
	if e.Error != "" {
		dst = append(dst, keyError)
		dst = appendText(dst, e.Error)
	}
	if e.Relays != 0 {
		dst = append(dst, keyRelays)
		dst = appendHead(dst, majorUint, uint64(e.Relays))
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// appendHead appends the shortest head for major type major and argument
// n, as RFC 8949 core deterministic encoding requires. Small enough to be
// inlined for the one-byte heads most items have.
func appendHead(dst []byte, major byte, n uint64) []byte {
	if n < 24 {
		return append(dst, major<<5|byte(n))
	}
	return appendLongHead(dst, major, n)
}

func appendLongHead(dst []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n <= 0xff:
		return append(dst, m|24, byte(n))
	case n <= 0xffff:
		return append(dst, m|25, byte(n>>8), byte(n))
	case n <= 0xffff_ffff:
		return append(dst, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendText(dst []byte, s string) []byte {
	if !validString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	dst = appendHead(dst, majorText, uint64(len(s)))
	return append(dst, s...)
}

// sortOnStack is how many header keys AppendEnvelope sorts without
// allocating. Messages carry a handful of headers; more only costs a slice.
const sortOnStack = 16

// appendHeaders writes h as a CBOR map in deterministic key order. A key
// that is not valid UTF-8 cannot be sent as text and is left out; repairing
// it could make it collide with another key, and a peer refuses duplicates.
func appendHeaders(dst []byte, h map[string]string) []byte {
	// Names and values are collected together, which saves looking each
	// value up again after sorting.
	var stack [sortOnStack][2]string
	kvs := stack[:0]
	if len(h) > sortOnStack {
		kvs = make([][2]string, 0, len(h))
	}
	for k, v := range h {
		if validString(k) {
			kvs = append(kvs, [2]string{k, v})
		}
	}
	if len(kvs) > sortOnStack {
		slices.SortFunc(kvs, func(a, b [2]string) int { return compareDeterministic(a[0], b[0]) })
	} else {
		// Insertion sort: for the few headers a message has it beats a
		// general sort, and it does not make the stack array escape.
		for i := 1; i < len(kvs); i++ {
			for j := i; j > 0 && compareDeterministic(kvs[j][0], kvs[j-1][0]) < 0; j-- {
				kvs[j], kvs[j-1] = kvs[j-1], kvs[j]
			}
		}
	}
	dst = appendHead(dst, majorMap, uint64(len(kvs)))
	for _, kv := range kvs {
		dst = appendText(dst, kv[0])
		dst = appendText(dst, kv[1])
	}
	return dst
}

// compareDeterministic orders text keys as RFC 8949 section 4.2.1 does, by
// their encoded bytes: a shorter key has a smaller head, so length decides
// first and the bytes only between keys of equal length.
func compareDeterministic(a, b string) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}
