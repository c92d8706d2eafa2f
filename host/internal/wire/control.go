package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Hello is the first frame each way on a link. The dialer sends its own
// first; the acceptor answers only after verifying it, and sets Version.
type Hello struct {
	Min      uint16   `cbor:"1,keyasint,omitempty"` // lowest protocol version the sender speaks
	Max      uint16   `cbor:"2,keyasint,omitempty"` // highest protocol version the sender speaks
	Version  uint16   `cbor:"3,keyasint,omitempty"` // acceptor only: the version chosen with Negotiate
	ID       string   `cbor:"4,keyasint,omitempty"` // sender's node id
	Name     string   `cbor:"5,keyasint,omitempty"` // sender's node name, for logs and status
	Listen   []string `cbor:"6,keyasint,omitempty"` // sender's listen URLs, e.g. "quic://10.0.0.1:7400"
	MaxFrame uint64   `cbor:"7,keyasint,omitempty"` // largest payload the sender accepts
	Proof    []byte   `cbor:"8,keyasint,omitempty"` // proof of the cluster secret, when the sender has one
}

// ErrorFrame is the body of an error frame (the sender closes the link
// after it) and of a goaway frame (the sender takes no new requests but
// finishes those in flight).
type ErrorFrame struct {
	Code ErrorCode `cbor:"1,keyasint,omitempty"`
	Msg  string    `cbor:"2,keyasint,omitempty"`
}

// Interest advertises what the sender serves. Each advertisement replaces
// the previous one whole, so a lost or reordered one is repaired by the
// next; Seq lets a receiver ignore one that arrives late. What hosts
// further away serve travels in their membership records ([Members]).
type Interest struct {
	Seq      uint64   `cbor:"1,keyasint,omitempty"` // grows with each advertisement from the sender
	Services []string `cbor:"2,keyasint,omitempty"` // the sender's own services
	Topics   []string `cbor:"3,keyasint,omitempty"` // the sender's own topic patterns
	// Key 4 is reserved: early drafts sent the direct peers' interest
	// there. A receiver ignores it like any unknown key.
}

// Ack answers, on a link at protocol version 2 or later ([AckVersion]),
// an interest or a members frame that asked for it, once the receiver has
// applied it and every frame before it. It is what lets a host say that a
// new subscription is in place at its peers rather than on its way. An
// ack of a higher number covers the lower ones of the same kind.
type Ack struct {
	// Interest is the Seq of the interest applied. The receiver acks it
	// only after passing the sender's membership record on to its own
	// other peers and waiting (bounded) for their acks of it.
	Interest uint64 `cbor:"1,keyasint,omitempty"`
	// Members is the Ack token of the members frame applied.
	Members uint64 `cbor:"2,keyasint,omitempty"`
	// Nodes are, with Interest, the ids of the receiver's other peers that
	// acknowledged the sender's record: hosts that now know the interest
	// and reach the sender through the receiver.
	Nodes []string `cbor:"3,keyasint,omitempty"`
}

// Ping is the body of ping and pong frames; a pong echoes the ping's nonce,
// so a late pong cannot be taken for the answer to a newer ping.
type Ping struct {
	Nonce uint64 `cbor:"1,keyasint,omitempty"`
}

// Negotiate returns the highest version in both ranges. When they do not
// overlap it returns a *[ProtocolError] with code [ErrVersion] naming both,
// ready to be sent to the peer.
func Negotiate(localMin, localMax, peerMin, peerMax uint16) (uint16, error) {
	lo, hi := max(localMin, peerMin), min(localMax, peerMax)
	if lo > hi || hi == 0 {
		return 0, protocolErrorf(ErrVersion, "no common protocol version: this host speaks %d..%d, the peer speaks %d..%d",
			localMin, localMax, peerMin, peerMax)
	}
	return hi, nil
}

var (
	// encMode sorts map keys so that equal values always encode to equal
	// bytes, which keeps captures and test vectors stable.
	encMode cbor.EncMode
	// decMode bounds everything a peer controls: element counts, nesting
	// and duplicates. Indefinite lengths and tags are not part of the
	// protocol, so they are refused rather than skipped.
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  16,
		MaxArrayElements: 100_000,
		MaxMapPairs:      100_000,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// controlBody checks that v is the body type of frame type t and returns it
// as a pointer, so that AppendControl and DecodeControl agree on the types.
func controlBody(t FrameType, v any) (any, bool) {
	switch t {
	case FrameHello:
		switch v := v.(type) {
		case Hello:
			return &v, true
		case *Hello:
			return v, v != nil
		}
	case FrameError, FrameGoAway:
		switch v := v.(type) {
		case ErrorFrame:
			return &v, true
		case *ErrorFrame:
			return v, v != nil
		}
	case FrameInterest:
		switch v := v.(type) {
		case Interest:
			return &v, true
		case *Interest:
			return v, v != nil
		}
	case FramePing, FramePong:
		switch v := v.(type) {
		case Ping:
			return &v, true
		case *Ping:
			return v, v != nil
		}
	case FrameMembers:
		switch v := v.(type) {
		case Members:
			return &v, true
		case *Members:
			return v, v != nil
		}
	case FrameAck:
		switch v := v.(type) {
		case Ack:
			return &v, true
		case *Ack:
			return v, v != nil
		}
	}
	return nil, false
}

// AppendControl appends a whole frame of control type t whose body is v
// encoded as CBOR. v must be the body type of t (a Hello for FrameHello, an
// ErrorFrame for FrameError and FrameGoAway, an Interest for FrameInterest,
// a Ping for FramePing and FramePong, Members for FrameMembers, an Ack for
// FrameAck), as a value or a pointer.
func AppendControl(dst []byte, t FrameType, v any) ([]byte, error) {
	p, ok := controlBody(t, v)
	if !ok {
		return dst, fmt.Errorf("wire: %T cannot be the body of frame type %s", v, t)
	}
	body, err := encMode.Marshal(p)
	if err != nil {
		return dst, fmt.Errorf("wire: encoding the body of frame type %s: %w", t, err)
	}
	if uint64(len(body)) >= maxL {
		return dst, fmt.Errorf("wire: body of frame type %s is %d bytes, more than a frame can hold", t, len(body))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+1))
	dst = append(dst, byte(t))
	return append(dst, body...), nil
}

// DecodeControl decodes the body of a control frame into v, which must be a
// *Hello, *ErrorFrame, *Interest, *Ping, *Members or *Ack, or the signed bytes
// of a membership record into a *MemberRecord; v is zeroed first. Unknown keys
// are ignored so that a later protocol version can add fields; anything
// else that is not what the encoder writes is refused with a
// *[ProtocolError] naming the body type.
func DecodeControl(body []byte, v any) error {
	var name string
	switch p := v.(type) {
	case *Hello:
		if p != nil {
			*p, name = Hello{}, "hello"
		}
	case *ErrorFrame:
		if p != nil {
			*p, name = ErrorFrame{}, "error"
		}
	case *Interest:
		if p != nil {
			*p, name = Interest{}, "interest"
		}
	case *Ping:
		if p != nil {
			*p, name = Ping{}, "ping"
		}
	case *Members:
		if p != nil {
			*p, name = Members{}, "members"
		}
	case *MemberRecord:
		if p != nil {
			*p, name = MemberRecord{}, "member record"
		}
	case *Ack:
		if p != nil {
			*p, name = Ack{}, "ack"
		}
	}
	if name == "" {
		return fmt.Errorf("wire: DecodeControl into %T: want a non-nil *Hello, *ErrorFrame, *Interest, *Ping, *Members, *Ack or *MemberRecord", v)
	}
	// Checked here because fxamacker accepts null for a struct and leaves it
	// untouched, which would let an empty hello pass for a real one.
	if len(body) == 0 || body[0]>>5 != majorMap {
		got := "nothing"
		if len(body) > 0 {
			got = itemName(body[0])
		}
		return protocolErrorf(ErrProtocol, "%s body: want a CBOR map, got %s", name, got)
	}
	if err := decMode.Unmarshal(body, v); err != nil {
		return protocolErrorf(ErrProtocol, "%s body: %v", name, err)
	}
	return nil
}
