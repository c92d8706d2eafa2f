package wire

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
)

// fxEnvelope is the envelope as fxamacker sees it: the independent
// implementation the hand-written codec is checked against.
type fxEnvelope struct {
	Version  uint16            `cbor:"0,keyasint"`
	ID       uint64            `cbor:"1,keyasint,omitempty"`
	Kind     uint8             `cbor:"2,keyasint,omitempty"`
	From     string            `cbor:"3,keyasint,omitempty"`
	To       string            `cbor:"4,keyasint,omitempty"`
	Subject  string            `cbor:"5,keyasint,omitempty"`
	ReplyTo  uint64            `cbor:"6,keyasint,omitempty"`
	Headers  map[string]string `cbor:"7,keyasint,omitempty"`
	Deadline uint64            `cbor:"8,keyasint,omitempty"`
	Payload  []byte            `cbor:"9,keyasint,omitempty"`
	Hops     uint32            `cbor:"10,keyasint,omitempty"`
	Status   uint16            `cbor:"11,keyasint,omitempty"`
	Error    string            `cbor:"12,keyasint,omitempty"`
	Relays   uint8             `cbor:"13,keyasint,omitempty"`
}

// fxReversed declares the keys in reverse order; fxamacker without sorting
// writes them in that order, which checks that DecodeEnvelope does not
// depend on key order.
type fxReversed struct {
	Relays   uint8             `cbor:"13,keyasint,omitempty"`
	Error    string            `cbor:"12,keyasint,omitempty"`
	Status   uint16            `cbor:"11,keyasint,omitempty"`
	Hops     uint32            `cbor:"10,keyasint,omitempty"`
	Payload  []byte            `cbor:"9,keyasint,omitempty"`
	Deadline uint64            `cbor:"8,keyasint,omitempty"`
	Headers  map[string]string `cbor:"7,keyasint,omitempty"`
	ReplyTo  uint64            `cbor:"6,keyasint,omitempty"`
	Subject  string            `cbor:"5,keyasint,omitempty"`
	To       string            `cbor:"4,keyasint,omitempty"`
	From     string            `cbor:"3,keyasint,omitempty"`
	Kind     uint8             `cbor:"2,keyasint,omitempty"`
	ID       uint64            `cbor:"1,keyasint,omitempty"`
	Version  uint16            `cbor:"0,keyasint"`
}

func toFx(e *Envelope) fxEnvelope {
	return fxEnvelope{e.Version, e.ID, uint8(e.Kind), e.From, e.To, e.Subject, e.ReplyTo,
		e.Headers, e.Deadline, e.Payload, e.Hops, e.Status, e.Error, e.Relays}
}

func fromFx(f *fxEnvelope) Envelope {
	return Envelope{f.Version, f.ID, MsgKind(f.Kind), f.From, f.To, f.Subject, f.ReplyTo,
		f.Headers, f.Deadline, f.Payload, f.Hops, f.Status, f.Error, f.Relays}
}

// equalEnvelopes treats nil and empty headers and payloads as equal: the
// encoding does not tell them apart.
func equalEnvelopes(a, b *Envelope) bool {
	x, y := *a, *b
	if !maps.Equal(x.Headers, y.Headers) || !bytes.Equal(x.Payload, y.Payload) {
		return false
	}
	x.Headers, y.Headers, x.Payload, y.Payload = nil, nil, nil, nil
	return reflect.DeepEqual(x, y)
}

// fxDeterministic is how the envelope encoding is specified: RFC 8949 core
// deterministic encoding of the map, which AppendEnvelope must match byte
// for byte.
var fxDeterministic, _ = cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()

// fxStrict decodes as strictly as fxamacker allows, for cross-checks.
var fxStrict, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden}.DecMode()

const nodeA, nodeB = "ukbl2jqoxwbcqbwmxq4phl4fzfz6ttlk", "c3vgtiwdquz7mczdkzgypfg2ky7b3d2t"

// full sets every field, with values that need every integer width.
func full() Envelope {
	return Envelope{
		Version:  MaxVersion,
		ID:       1<<32 + 5,
		Kind:     KindReply,
		From:     nodeA,
		To:       nodeB,
		Subject:  "orders.create",
		ReplyTo:  math.MaxUint64,
		Headers:  map[string]string{"trace-id": "4bf92f3577b34da6", "b": "é", "aa": "", "z": "1"},
		Deadline: 2_000_000,
		Payload:  bytes.Repeat([]byte{0xab}, 300),
		Hops:     math.MaxUint32,
		Status:   7,
		Error:    "handler failed: ünïcode",
		Relays:   math.MaxUint8,
	}
}

// roundTrip checks one envelope every way: our encoder against fxamacker's
// bytes, our decoder on our bytes and on fxamacker's (sorted and
// reversed), and fxamacker's decoder on our bytes.
func roundTrip(t *testing.T, e *Envelope) {
	t.Helper()
	frame := AppendEnvelope(nil, e)
	if got, want := int(uint32(frame[0])<<24|uint32(frame[1])<<16|uint32(frame[2])<<8|uint32(frame[3])), len(frame)-4; got != want || FrameType(frame[4]) != FrameMsg {
		t.Fatalf("frame header: length %d type %d, want length %d type msg", got, frame[4], want)
	}
	body := frame[HeaderLen:]
	want, err := fxDeterministic.Marshal(toFx(e))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("AppendEnvelope differs from fxamacker's deterministic encoding:\n got %x\nwant %x", body, want)
	}
	var got Envelope
	if err := DecodeEnvelope(body, &got); err != nil {
		t.Fatalf("DecodeEnvelope(AppendEnvelope): %v", err)
	}
	if !equalEnvelopes(&got, e) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, *e)
	}
	var fx fxEnvelope
	if err := fxStrict.Unmarshal(body, &fx); err != nil {
		t.Fatalf("fxamacker cannot decode AppendEnvelope: %v", err)
	}
	if back := fromFx(&fx); !equalEnvelopes(&back, e) {
		t.Fatalf("fxamacker decodes AppendEnvelope as %+v, want %+v", back, *e)
	}
	rev, err := cbor.Marshal(fxReversed{e.Relays, e.Error, e.Status, e.Hops, e.Payload, e.Deadline,
		e.Headers, e.ReplyTo, e.Subject, e.To, e.From, uint8(e.Kind), e.ID, e.Version})
	if err != nil {
		t.Fatal(err)
	}
	if err := DecodeEnvelope(rev, &got); err != nil {
		t.Fatalf("DecodeEnvelope(keys in reverse order %x): %v", rev, err)
	}
	if !equalEnvelopes(&got, e) {
		t.Fatalf("keys in reverse order:\n got %+v\nwant %+v", got, *e)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	many := map[string]string{}
	for i := range 40 {
		many[strings.Repeat("k", i%7+1)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = strings.Repeat("v", i)
	}
	tests := []struct {
		name string
		e    Envelope
	}{
		{"minimal", Envelope{Version: 1, Kind: KindEvent}},
		{"version zero", Envelope{Kind: KindSend}},
		{"request", Envelope{Version: 1, ID: 1, Kind: KindRequest, From: nodeA, To: nodeB, Subject: "svc.m", Deadline: 1500, Payload: []byte("hi"), Hops: 1}},
		{"send", Envelope{Version: 1, Kind: KindSend, From: nodeA, Subject: "svc.m", Payload: []byte{0}}},
		{"event relayed", Envelope{Version: 1, Kind: KindEvent, From: nodeA, Subject: "orders.created", Relays: 1}},
		{"reply ok", Envelope{Version: 1, Kind: KindReply, ReplyTo: 9, Payload: []byte("ok")}},
		{"reply failed", Envelope{Version: 1, Kind: KindReply, ReplyTo: 9, Status: 7, Error: "boom"}},
		{"cancel", Envelope{Version: 1, Kind: KindCancel, ReplyTo: 1 << 40}},
		{"full", full()},
		{"width 23", Envelope{Version: 23, ID: 23, Kind: 5, ReplyTo: 23, Deadline: 23, Hops: 23, Status: 23, Relays: 23, Subject: strings.Repeat("s", 23)}},
		{"width 24", Envelope{Version: 24, ID: 24, Kind: 1, ReplyTo: 24, Deadline: 24, Hops: 24, Status: 24, Relays: 24, Subject: strings.Repeat("s", 24)}},
		{"width 255", Envelope{Version: 255, ID: 255, Kind: 1, ReplyTo: 255, Deadline: 255, Hops: 255, Status: 255, Relays: 255, Subject: strings.Repeat("s", 255)}},
		{"width 256", Envelope{Version: 256, ID: 256, Kind: 1, ReplyTo: 256, Deadline: 256, Hops: 256, Status: 256, Subject: strings.Repeat("s", 256)}},
		{"width 65535", Envelope{Version: 65535, ID: 65535, Kind: 1, Hops: 65535, Status: 65535, Payload: make([]byte, 65535)}},
		{"width 65536", Envelope{Version: 1, ID: 65536, Kind: 1, Hops: 65536, Payload: make([]byte, 65536)}},
		{"width 2^32-1", Envelope{Version: 1, ID: 1<<32 - 1, Kind: 1, Deadline: 1<<32 - 1, Hops: 1<<32 - 1}},
		{"width 2^32", Envelope{Version: 1, ID: 1 << 32, Kind: 1, Deadline: 1 << 32}},
		{"unicode", Envelope{Version: 1, Kind: KindSend, Subject: "日本.語", Headers: map[string]string{"ключ": "значение", "🙂": ""}}},
		{"headers of every key length order", Envelope{Version: 1, Kind: KindSend, Headers: map[string]string{"b": "1", "aa": "2", "a": "3", "ab": "4", strings.Repeat("z", 24): "5", strings.Repeat("a", 300): "6"}}},
		{"more headers than sort on stack", Envelope{Version: 1, Kind: KindSend, Headers: many}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTrip(t, &tt.e) })
	}
}

// TestEnvelopeEveryFieldCombination round-trips every subset of the
// optional fields (kind is required).
func TestEnvelopeEveryFieldCombination(t *testing.T) {
	base := full()
	clearField := []func(*Envelope){
		func(e *Envelope) { e.ID = 0 },
		func(e *Envelope) { e.From = "" },
		func(e *Envelope) { e.To = "" },
		func(e *Envelope) { e.Subject = "" },
		func(e *Envelope) { e.ReplyTo = 0 },
		func(e *Envelope) { e.Headers = nil },
		func(e *Envelope) { e.Deadline = 0 },
		func(e *Envelope) { e.Payload = nil },
		func(e *Envelope) { e.Hops = 0 },
		func(e *Envelope) { e.Status = 0 },
		func(e *Envelope) { e.Error = "" },
		func(e *Envelope) { e.Relays = 0 },
	}
	for mask := range 1 << len(clearField) {
		e := base
		for i, clear := range clearField {
			if mask&(1<<i) != 0 {
				clear(&e)
			}
		}
		roundTrip(t, &e)
		if t.Failed() {
			t.Fatalf("field mask %#x", mask)
		}
	}
}

// Hand-built CBOR, for encodings fxamacker never writes.

func head(major byte, n uint64) []byte { return appendHead(nil, major, n) }

// wide encodes n with an 8-byte argument: valid CBOR, never the shortest.
func wide(major byte, n uint64) []byte {
	return []byte{major<<5 | 27, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func u(n uint64) []byte   { return head(majorUint, n) }
func tx(s string) []byte  { return append(head(majorText, uint64(len(s))), s...) }
func bs(b string) []byte  { return append(head(majorBytes, uint64(len(b))), b...) }
func mp(n uint64) []byte  { return head(majorMap, n) }
func arr(n uint64) []byte { return head(majorArray, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// env builds an envelope map of version 1 and kind send followed by the
// given pairs (n of them).
func env(n uint64, pairs ...[]byte) []byte {
	return cat(mp(n+2), u(0), u(1), u(2), u(2), cat(pairs...))
}

func TestDecodeEnvelopeAccepts(t *testing.T) {
	nested4 := cat(arr(1), arr(1), arr(1), arr(1), u(1))
	tests := []struct {
		name string
		body []byte
		want Envelope
	}{
		{"non-minimal integers and lengths", cat(wide(majorMap, 6),
			wide(majorUint, 0), wide(majorUint, 1),
			wide(majorUint, 2), wide(majorUint, 1),
			wide(majorUint, 5), wide(majorText, 3), []byte("a.b"),
			wide(majorUint, 7), wide(majorMap, 1), wide(majorText, 1), []byte("k"), wide(majorText, 1), []byte("v"),
			wide(majorUint, 9), wide(majorBytes, 2), []byte("hi"),
			wide(majorUint, 13), []byte{0x18, 3}),
			Envelope{Version: 1, Kind: KindRequest, Subject: "a.b", Headers: map[string]string{"k": "v"}, Payload: []byte("hi"), Relays: 3}},
		{"keys in mixed order", cat(mp(4), u(9), bs("p"), u(2), u(3), u(5), tx("t"), u(0), u(1)),
			Envelope{Version: 1, Kind: KindEvent, Subject: "t", Payload: []byte("p")}},
		{"explicit zero values", env(7, u(1), u(0), u(3), tx(""), u(7), mp(0), u(9), bs(""), u(10), u(0), u(11), u(0), u(13), u(0)),
			Envelope{Version: 1, Kind: KindSend}},
		{"unknown keys of every plain type", env(9,
			u(14), u(5), u(15), []byte{0x20}, u(16), bs("x"), u(17), tx("y"), u(18), []byte{0xf4},
			u(19), []byte{0xf5}, u(20), []byte{0xf6}, u(21), []byte{0xfb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18},
			u(1000), cat(mp(2), tx("a"), arr(0), u(1), mp(0))),
			Envelope{Version: 1, Kind: KindSend}},
		{"unknown key nested 4 deep", env(1, u(63), nested4), Envelope{Version: 1, Kind: KindSend}},
		{"eight keys above 63", env(8, u(64), u(0), u(65), u(0), u(66), u(0), u(67), u(0), u(68), u(0), u(69), u(0), u(70), u(0), u(math.MaxUint64), u(0)),
			Envelope{Version: 1, Kind: KindSend}},
		{"largest values", env(5, u(1), u(math.MaxUint64), u(10), u(math.MaxUint32), u(11), u(math.MaxUint16), u(13), u(math.MaxUint8), u(8), u(math.MaxUint64)),
			Envelope{Version: 1, Kind: KindSend, ID: math.MaxUint64, Hops: math.MaxUint32, Status: math.MaxUint16, Relays: math.MaxUint8, Deadline: math.MaxUint64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Envelope
			if err := DecodeEnvelope(tt.body, &got); err != nil {
				t.Fatalf("DecodeEnvelope(%x): %v", tt.body, err)
			}
			if !equalEnvelopes(&got, &tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	nested5 := cat(arr(1), arr(1), arr(1), arr(1), arr(1), u(1))
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, "envelope: truncated at byte 0"},
		{"not a map", cat(arr(0)), "envelope: want a map, got array"},
		{"null", []byte{0xf6}, "want a map, got null"},
		{"indefinite map", cat([]byte{0xbf}, u(0), u(1), u(2), u(2), []byte{0xff}), "envelope: indefinite-length map at byte 0"},
		{"indefinite subject", env(1, u(5), []byte{0x7f, 0x61, 'a', 0xff}), "envelope: key 5 (subject): indefinite-length text string at byte 6"},
		{"indefinite payload", env(1, u(9), []byte{0x5f, 0x41, 'a', 0xff}), "key 9 (payload): indefinite-length byte string"},
		{"indefinite headers", env(1, u(7), []byte{0xbf, 0x61, 'a', 0x61, 'b', 0xff}), "key 7 (headers): indefinite-length map"},
		{"indefinite array in unknown key", env(1, u(20), []byte{0x9f, 0xff}), "key 20: indefinite-length array"},
		{"break as a value", env(1, u(20), []byte{0xff}), "key 20: malformed item head 0xff"},
		{"reserved additional information", env(1, u(8), []byte{0x1c}), "key 8 (deadline): malformed item head 0x1c"},
		{"duplicate key", env(1, u(2), u(1)), "envelope: duplicate key 2 (kind)"},
		{"duplicate unknown key", env(2, u(30), u(1), u(30), u(2)), "envelope: duplicate key 30"},
		{"duplicate high key", env(2, u(300), u(1), u(300), u(2)), "envelope: duplicate key 300"},
		{"too many high keys", env(9, u(64), u(0), u(65), u(0), u(66), u(0), u(67), u(0), u(68), u(0), u(69), u(0), u(70), u(0), u(71), u(0), u(72), u(0)), "more than 8 keys above 63"},
		{"text key", env(1, tx("subject"), tx("a")), "envelope: key at byte 5: want unsigned integer, got text string"},
		{"negative key", env(1, []byte{0x20}, u(1)), "key at byte 5: want unsigned integer, got negative integer"},
		{"deadline as text", env(1, u(8), tx("soon")), "envelope: key 8 (deadline): want unsigned integer, got text string"},
		{"id negative", env(1, u(1), []byte{0x20}), "key 1 (id): want unsigned integer, got negative integer"},
		{"version as float", cat(mp(2), u(0), []byte{0xf9, 0x3c, 0x00}, u(2), u(1)), "key 0 (version): want unsigned integer, got float"},
		{"subject as bytes", env(1, u(5), bs("a.b")), "key 5 (subject): want text string, got byte string"},
		{"from as null", env(1, u(3), []byte{0xf6}), "key 3 (from): want text string, got null"},
		{"payload as text", env(1, u(9), tx("x")), "key 9 (payload): want byte string, got text string"},
		{"payload as array", env(1, u(9), arr(0)), "key 9 (payload): want byte string, got array"},
		{"headers as array", env(1, u(7), arr(0)), "key 7 (headers): want map, got array"},
		{"header key not text", env(1, u(7), mp(1), u(1), tx("v")), "key 7 (headers): header key: want text string, got unsigned integer"},
		{"header value not text", env(1, u(7), mp(1), tx("a"), u(1)), `key 7 (headers): header "a": want text string, got unsigned integer`},
		{"header value nested", env(1, u(7), mp(1), tx("a"), mp(0)), `header "a": want text string, got map`},
		{"duplicate header", env(1, u(7), mp(2), tx("a"), tx("1"), tx("a"), tx("2")), `key 7 (headers): duplicate header "a"`},
		{"header key invalid UTF-8", env(1, u(7), mp(1), tx("\xff"), tx("v")), "key 7 (headers): header key: text at byte 7 is not valid UTF-8"},
		{"header value invalid UTF-8", env(1, u(7), mp(1), tx("k"), tx("a\xc3")), `header "k": text at byte 9 is not valid UTF-8`},
		{"from invalid UTF-8", env(1, u(3), tx("\xed\xa0\x80")), "envelope: key 3 (from): text at byte 6 is not valid UTF-8"},
		{"error invalid UTF-8", env(1, u(12), tx("\xc0\xaf")), "key 12 (error): text at byte 6 is not valid UTF-8"},
		{"unknown text invalid UTF-8", env(1, u(40), tx("\xff")), "key 40: text at byte 7 is not valid UTF-8"},
		{"kind zero", cat(mp(2), u(0), u(1), u(2), u(0)), "envelope: key 2 (kind): 0 is not a kind (1..5)"},
		{"kind six", cat(mp(2), u(0), u(1), u(2), u(6)), "key 2 (kind): 6 is not a kind (1..5)"},
		{"kind huge", cat(mp(2), u(0), u(1), u(2), u(1<<40)), "key 2 (kind): 1099511627776 is not a kind"},
		{"version out of range", cat(mp(2), u(0), u(65536), u(2), u(1)), "envelope: key 0 (version): 65536 does not fit in 16 bits"},
		{"status out of range", env(1, u(11), u(65536)), "key 11 (status): 65536 does not fit in 16 bits"},
		{"hops out of range", env(1, u(10), u(1<<32)), "key 10 (hops): 4294967296 does not fit in 32 bits"},
		{"relays out of range", env(1, u(13), u(256)), "key 13 (relays): 256 does not fit in 8 bits"},
		{"missing version", cat(mp(1), u(2), u(1)), "envelope: missing key 0 (version)"},
		{"missing kind", cat(mp(1), u(0), u(1)), "envelope: missing key 2 (kind)"},
		{"empty map", mp(0), "envelope: missing key 0 (version)"},
		{"trailing bytes", append(env(0), 0x00), "envelope: trailing data after the map (1 bytes)"},
		{"trailing map", append(env(0), env(0)...), "trailing data after the map"},
		{"more pairs than bytes", cat(mp(1000), u(0), u(1)), "envelope: map of 1000 pairs does not fit in the 2 bytes that follow"},
		{"huge pair count", cat(wide(majorMap, math.MaxUint64), u(0), u(1)), "map of 18446744073709551615 pairs does not fit"},
		{"value missing", cat(mp(2), u(0), u(1), wide(majorUint, 2)), "envelope: key 2 (kind): truncated at byte 12"},
		{"truncated head", env(1, u(1), []byte{0x1b, 0, 0}), "key 1 (id): truncated at byte 6"},
		{"truncated key head", cat(mp(3), u(0), u(1), u(2), u(1), []byte{0x19, 0}), "envelope: truncated at byte 5"},
		{"string past the end", env(1, u(5), []byte{0x6a, 'a', 'b', 'c'}), "key 5 (subject): text string of 10 bytes runs past the end (3 bytes left)"},
		{"payload length huge", env(1, u(9), wide(majorBytes, math.MaxUint64)), "key 9 (payload): byte string of 18446744073709551615 bytes runs past the end"},
		{"headers count huge", env(1, u(7), wide(majorMap, math.MaxUint64)), "key 7 (headers): map of 18446744073709551615 pairs does not fit"},
		{"unknown key nested 5 deep", env(1, u(63), nested5), "key 63: arrays and maps nested more than 4 deep"},
		{"unknown key with a tag", env(1, u(20), []byte{0xc1, 0x01}), "key 20: tags are not allowed (byte 6)"},
		{"unknown key with simple value", env(1, u(20), []byte{0xe0}), "key 20: simple value is not allowed (byte 6)"},
		{"unknown key with two-byte simple", env(1, u(20), []byte{0xf8, 0x20}), "key 20: simple value is not allowed"},
		{"unknown key array too long", env(1, u(20), wide(majorArray, 1<<40)), "key 20: array of 1099511627776 items does not fit"},
		{"unknown key map too long", env(1, u(20), wide(majorMap, math.MaxUint64)), "key 20: map of 18446744073709551615 pairs does not fit"},
		{"unknown key truncated array", env(1, u(20), arr(2), u(1)), "key 20: array of 2 items does not fit in the 1 bytes"},
		{"tag around the map", cat([]byte{0xd8, 0x18}, env(0)), "want a map, got tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Envelope
			err := DecodeEnvelope(tt.body, &e)
			if err == nil {
				t.Fatalf("DecodeEnvelope(%x) = nil, want an error containing %q", tt.body, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeEnvelope(%x) = %q, want it to contain %q", tt.body, err, tt.want)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != ErrProtocol {
				t.Fatalf("error %q is not a *ProtocolError with code protocol", err)
			}
		})
	}
}

// TestDecodeEnvelopeReuse checks that nothing of an earlier envelope
// survives into the next one, and that the headers map is reused.
func TestDecodeEnvelopeReuse(t *testing.T) {
	first := full()
	var e Envelope
	if err := DecodeEnvelope(AppendEnvelope(nil, &first)[HeaderLen:], &e); err != nil {
		t.Fatal(err)
	}
	h := e.Headers
	second := Envelope{Version: 1, Kind: KindSend, Headers: map[string]string{"x": "y"}}
	if err := DecodeEnvelope(AppendEnvelope(nil, &second)[HeaderLen:], &e); err != nil {
		t.Fatal(err)
	}
	if !equalEnvelopes(&e, &second) {
		t.Fatalf("second decode: got %+v, want %+v", e, second)
	}
	h["probe"] = "1"
	if e.Headers["probe"] != "1" {
		t.Fatal("the headers map was not reused")
	}
	// Nothing may point into the body: the Reader reuses it.
	body := AppendEnvelope(nil, &first)[HeaderLen:]
	if err := DecodeEnvelope(body, &e); err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 0
	}
	if !equalEnvelopes(&e, &first) {
		t.Fatal("the decoded envelope changed when the body was overwritten")
	}
}

func TestAppendEnvelopeRepairsUTF8(t *testing.T) {
	e := Envelope{Version: 1, Kind: KindReply, Error: "bad \xff text", Subject: "a\xc3",
		Headers: map[string]string{"ok": "v\xfe", "bad\xff": "dropped"}}
	var got Envelope
	if err := DecodeEnvelope(AppendEnvelope(nil, &e)[HeaderLen:], &got); err != nil {
		t.Fatalf("a repaired envelope must decode: %v", err)
	}
	want := Envelope{Version: 1, Kind: KindReply, Error: "bad \uFFFD text", Subject: "a\uFFFD",
		Headers: map[string]string{"ok": "v\uFFFD"}}
	if !equalEnvelopes(&got, &want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestAppendEnvelopeAppends(t *testing.T) {
	e := full()
	prefix := []byte("prefix")
	out := AppendEnvelope(prefix, &e)
	if !bytes.HasPrefix(out, prefix) {
		t.Fatal("AppendEnvelope overwrote dst")
	}
	r := NewReader(bytes.NewReader(out[len(prefix):]), FrameLimit(1<<20))
	typ, body, err := r.Next()
	if err != nil || typ != FrameMsg {
		t.Fatalf("Next = %v, %v", typ, err)
	}
	var got Envelope
	if err := DecodeEnvelope(body, &got); err != nil || !equalEnvelopes(&got, &e) {
		t.Fatalf("DecodeEnvelope = %v, %+v", err, got)
	}
}

func TestEnvelopeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	e := typicalRequest()
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = AppendEnvelope(buf[:0], &e) }); n != 0 {
		t.Errorf("AppendEnvelope: %v allocations, want 0", n)
	}
	many := Envelope{Version: 1, Kind: KindSend, Headers: map[string]string{}}
	for i := range sortOnStack {
		many.Headers[string(rune('a'+i))] = "v"
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendEnvelope(buf[:0], &many) }); n != 0 {
		t.Errorf("AppendEnvelope with %d headers: %v allocations, want 0", sortOnStack, n)
	}
	body := AppendEnvelope(nil, &e)[HeaderLen:]
	var got Envelope
	// from, to, subject, one header key and value, the payload.
	const want = 6
	if n := testing.AllocsPerRun(100, func() { _ = DecodeEnvelope(body, &got) }); n > want {
		t.Errorf("DecodeEnvelope: %v allocations, want at most %d", n, want)
	}
}

// TestKindsMatchABI: a request, send or event keeps its number and name
// from the plugin ABI onto the wire.
func TestKindsMatchABI(t *testing.T) {
	for _, k := range []abi.Kind{abi.KindRequest, abi.KindSend, abi.KindEvent} {
		if w := MsgKind(k); w.String() != k.String() {
			t.Errorf("abi kind %d is %q, wire kind %d is %q", k, k, w, w)
		}
	}
}

func TestMsgKindString(t *testing.T) {
	for k, want := range map[MsgKind]string{0: "kind(0)", KindRequest: "request", KindCancel: "cancel", 6: "kind(6)", 255: "kind(255)"} {
		if got := k.String(); got != want {
			t.Errorf("MsgKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
