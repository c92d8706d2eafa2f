package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		t    FrameType
		v    any // a pointer to the body
	}{
		{"hello from the dialer", FrameHello, &Hello{Min: 1, Max: 3, ID: nodeA, Name: "edge-1",
			Listen: []string{"tcp://0.0.0.0:7400", "quic://10.0.0.1:7400"}, MaxFrame: 1 << 20, Proof: []byte{1, 2, 3}}},
		{"hello from the acceptor", FrameHello, &Hello{Min: 1, Max: 1, Version: 1, ID: nodeB, Name: "core", MaxFrame: 64 << 20}},
		{"empty hello", FrameHello, &Hello{}},
		{"error", FrameError, &ErrorFrame{Code: ErrVersion, Msg: "no common protocol version: this host speaks 1..1, the peer speaks 2..3"}},
		{"goaway", FrameGoAway, &ErrorFrame{Code: ErrShutdown, Msg: "shutting down"}},
		{"interest", FrameInterest, &Interest{Seq: 42, Services: []string{"orders", "billing"}, Topics: []string{"orders.>"}}},
		{"members", FrameMembers, &Members{Entries: []MemberEntry{{Record: []byte{0xa0}, Sig: make([]byte, 64), Reach: []string{"tcp://10.0.0.1:7400"}}}}},
		{"empty interest", FrameInterest, &Interest{Seq: 1}},
		{"ping", FramePing, &Ping{Nonce: 1<<64 - 1}},
		{"pong", FramePong, &Ping{Nonce: 7}},
		{"members barrier", FrameMembers, &Members{Ack: 1<<64 - 1}},
		{"interest ack", FrameAck, &Ack{Interest: 42, Nodes: []string{nodeA, nodeB}}},
		{"members ack", FrameAck, &Ack{Members: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// By pointer and by value.
			for _, v := range []any{tt.v, reflect.ValueOf(tt.v).Elem().Interface()} {
				frame, err := AppendControl([]byte("pre"), tt.t, v)
				if err != nil {
					t.Fatalf("AppendControl(%T): %v", v, err)
				}
				if !bytes.HasPrefix(frame, []byte("pre")) {
					t.Fatal("AppendControl overwrote dst")
				}
				typ, body, err := NewReader(bytes.NewReader(frame[3:]), 1<<20).Next()
				if err != nil || typ != tt.t {
					t.Fatalf("Next = %v, %v; want %v", typ, err, tt.t)
				}
				// Decode over a dirty value: DecodeControl must zero it.
				got := reflect.New(reflect.TypeOf(tt.v).Elem())
				dirty(got.Interface())
				if err := DecodeControl(body, got.Interface()); err != nil {
					t.Fatalf("DecodeControl(%x): %v", body, err)
				}
				if !reflect.DeepEqual(got.Interface(), tt.v) {
					t.Fatalf("got %+v, want %+v", got.Elem(), reflect.ValueOf(tt.v).Elem())
				}
			}
		})
	}
}

// dirty fills every body type with values a decoder must not leave behind.
func dirty(v any) {
	switch v := v.(type) {
	case *Hello:
		*v = Hello{Min: 9, Max: 9, Version: 9, ID: "old", Name: "old", Listen: []string{"old"}, MaxFrame: 9, Proof: []byte("old")}
	case *ErrorFrame:
		*v = ErrorFrame{Code: 9, Msg: "old"}
	case *Interest:
		*v = Interest{Seq: 9, Services: []string{"old"}, Topics: []string{"old"}}
	case *Members:
		*v = Members{Entries: []MemberEntry{{Record: []byte("old")}}}
	case *Ping:
		*v = Ping{Nonce: 9}
	case *Ack:
		*v = Ack{Interest: 9, Members: 9, Nodes: []string{"old"}}
	}
}

func TestAppendControlRefuses(t *testing.T) {
	tests := []struct {
		name string
		t    FrameType
		v    any
		want string
	}{
		{"ping as hello", FrameHello, Ping{}, "wire: wire.Ping cannot be the body of frame type hello"},
		{"hello as error", FrameError, &Hello{}, "*wire.Hello cannot be the body of frame type error"},
		{"nil hello", FrameHello, (*Hello)(nil), "*wire.Hello cannot be the body of frame type hello"},
		{"envelope as msg", FrameMsg, &Envelope{}, "*wire.Envelope cannot be the body of frame type msg"},
		{"unknown type", FrameType(99), Ping{}, "cannot be the body of frame type frame(99)"},
		{"nil", FramePing, nil, "wire: <nil> cannot be the body of frame type ping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := AppendControl([]byte("keep"), tt.t, tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed to %q on error", out)
			}
		})
	}
}

func TestDecodeControlAccepts(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		v    any
		want any
	}{
		{"unknown keys are ignored", cat(mp(3), u(1), u(5), u(99), tx("future"), u(100), cat(arr(1), mp(0))), &Ping{}, &Ping{Nonce: 5}},
		{"non-minimal integers", cat(wide(majorMap, 2), wide(majorUint, 1), wide(majorUint, 2), wide(majorUint, 2), wide(majorText, 2), []byte("hi")), &ErrorFrame{}, &ErrorFrame{Code: 2, Msg: "hi"}},
		{"keys in any order", cat(mp(2), u(3), u(1), u(1), u(1)), &Hello{}, &Hello{Min: 1, Version: 1}},
		{"empty map", mp(0), &Interest{}, &Interest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := DecodeControl(tt.body, tt.v); err != nil {
				t.Fatalf("DecodeControl(%x): %v", tt.body, err)
			}
			if !reflect.DeepEqual(tt.v, tt.want) {
				t.Fatalf("got %+v, want %+v", tt.v, tt.want)
			}
		})
	}
}

func TestDecodeControlRejects(t *testing.T) {
	deep := mp(1)
	for range 20 {
		deep = cat(deep, u(100), mp(1))
	}
	deep = cat(deep, u(1), u(1))
	tests := []struct {
		name string
		body []byte
		v    any
		want string
	}{
		{"empty", nil, &Hello{}, "hello body: want a CBOR map, got nothing"},
		{"null", []byte{0xf6}, &Hello{}, "hello body: want a CBOR map, got null"},
		{"array", arr(0), &Ping{}, "ping body: want a CBOR map, got array"},
		{"text", tx("hi"), &ErrorFrame{}, "error body: want a CBOR map, got text string"},
		{"indefinite map", []byte{0xbf, 0x01, 0x01, 0xff}, &Ping{}, "ping body: cbor: indefinite-length map isn't allowed"},
		{"indefinite string inside", cat(mp(1), u(2), []byte{0x7f, 0x61, 'a', 0xff}), &ErrorFrame{}, "error body: cbor: indefinite-length UTF-8 text string isn't allowed"},
		{"duplicate key", cat(mp(2), u(1), u(1), u(1), u(2)), &Ping{}, "ping body: cbor: found duplicate map key 1"},
		{"wrong type", cat(mp(1), u(4), u(1)), &Hello{}, "hello body: cbor: cannot unmarshal positive integer into Go struct field wire.Hello.4 of type string"},
		{"out of range", cat(mp(1), u(1), u(70_000)), &Hello{}, "hello body: cbor: cannot unmarshal positive integer into Go struct field wire.Hello.1 of type uint16 (70000 overflows uint16)"},
		{"negative into unsigned", cat(mp(1), u(1), []byte{0x20}), &Ping{}, "cannot unmarshal negative integer into Go struct field wire.Ping.1 of type uint64"},
		{"invalid UTF-8", cat(mp(1), u(5), tx("\xff")), &Hello{}, "hello body: cbor: invalid UTF-8 string"},
		{"tag", cat(mp(1), u(1), []byte{0xc1, 0x01}), &Ping{}, "ping body: cbor: CBOR tag isn't allowed"},
		{"trailing bytes", cat(mp(0), u(1)), &Ping{}, "ping body: cbor: 1 bytes of extraneous data starting at index 1"},
		{"truncated", cat(mp(1), u(6), arr(2), tx("a")), &Hello{}, "hello body: unexpected EOF"},
		{"nested too deep in an unknown key", deep, &Ping{}, "ping body: cbor: exceeded max nested level 16"},
		{"too many array elements", cat(mp(1), u(2), wide(majorArray, 200_000)), &Interest{}, "interest body: cbor: exceeded max number of elements 100000"},
		{"ack nodes not text", cat(mp(2), u(1), u(3), u(3), cat(arr(1), u(5))), &Ack{}, "ack body: cbor: cannot unmarshal positive integer into Go struct field wire.Ack.3 of type string"},
		{"ack of a negative interest", cat(mp(1), u(1), []byte{0x20}), &Ack{}, "ack body: cbor: cannot unmarshal negative integer into Go struct field wire.Ack.1 of type uint64"},
		{"not a body type", mp(0), &Envelope{}, "wire: DecodeControl into *wire.Envelope: want a non-nil *Hello, *ErrorFrame, *Interest, *Ping, *Members, *Ack or *MemberRecord"},
		{"a value, not a pointer", mp(0), Ping{}, "DecodeControl into wire.Ping"},
		{"nil pointer", mp(0), (*Hello)(nil), "DecodeControl into *wire.Hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeControl(tt.body, tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeControl(%x) = %v, want an error containing %q", tt.body, err, tt.want)
			}
			var pe *ProtocolError
			if strings.HasPrefix(tt.want, "wire:") || strings.HasPrefix(tt.want, "DecodeControl") {
				if errors.As(err, &pe) {
					t.Fatal("a caller's mistake must not look like the peer's")
				}
			} else if !errors.As(err, &pe) || pe.Code != ErrProtocol {
				t.Fatalf("error %v is not a *ProtocolError with code protocol", err)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		lmin, lmax, pmin, pmax uint16
		want                   uint16
		err                    string
	}{
		{1, 1, 1, 1, 1, ""},
		{1, 3, 2, 5, 3, ""},
		{2, 5, 1, 3, 3, ""},
		{1, 5, 3, 3, 3, ""},
		{1, 1, 2, 3, 0, "no common protocol version: this host speaks 1..1, the peer speaks 2..3"},
		{4, 6, 1, 3, 0, "no common protocol version: this host speaks 4..6, the peer speaks 1..3"},
		{1, 1, 3, 2, 0, "this host speaks 1..1, the peer speaks 3..2"},
		{1, 1, 0, 0, 0, "the peer speaks 0..0"},
		{0, 0, 0, 0, 0, "this host speaks 0..0"},
	}
	for _, tt := range tests {
		got, err := Negotiate(tt.lmin, tt.lmax, tt.pmin, tt.pmax)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("Negotiate(%d, %d, %d, %d) = %d, %v; want %d", tt.lmin, tt.lmax, tt.pmin, tt.pmax, got, err, tt.want)
			}
			continue
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != ErrVersion || !strings.Contains(pe.Msg, tt.err) {
			t.Errorf("Negotiate(%d, %d, %d, %d) = %d, %v; want a version error containing %q", tt.lmin, tt.lmax, tt.pmin, tt.pmax, got, err, tt.err)
		}
	}
	if v, err := Negotiate(MinVersion, MaxVersion, MinVersion, MaxVersion); err != nil || v != MaxVersion {
		t.Errorf("this package does not agree with itself: %d, %v", v, err)
	}
}

func TestErrorCodeString(t *testing.T) {
	for c, want := range map[ErrorCode]string{ErrProtocol: "protocol", ErrNotTrusted: "not_trusted", ErrSelf: "self", 0: "code(0)", 8: "code(8)", 999: "code(999)"} {
		if got := c.String(); got != want {
			t.Errorf("ErrorCode(%d).String() = %q, want %q", uint16(c), got, want)
		}
	}
}
