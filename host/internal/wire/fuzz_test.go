package wire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// The seed corpus lives in testdata/fuzz/<target>/ so that plain go test
// runs every seed. The seeds below are its source:
// WIRE_WRITE_CORPUS=1 go test -run TestWriteCorpus ./host/internal/wire/ rewrites
// them; inputs a fuzzer found are added there by go test itself.

const fuzzReaderLimit = 200

func readerSeeds() map[string][]byte {
	e := typicalRequest()
	e.Payload = []byte("p")
	msg := AppendEnvelope(nil, &e)
	hello, _ := AppendControl(nil, FrameHello, Hello{Min: 1, Max: 1, ID: nodeA})
	ping, _ := AppendControl(nil, FramePing, Ping{Nonce: 1})
	atLimit := AppendFrame(nil, FrameMsg, bytes.Repeat([]byte{'x'}, fuzzReaderLimit-1))
	return map[string][]byte{
		"handshake_then_msg": cat(hello, ping, msg),
		"empty":              nil,
		"truncated_length":   hello[:3],
		"truncated_body":     msg[:len(msg)-1],
		"zero_length":        cat(ping, []byte{0, 0, 0, 0}),
		"over_limit":         AppendFrame(nil, FrameMsg, bytes.Repeat([]byte{'x'}, fuzzReaderLimit)),
		"at_limit":           atLimit,
		"largest_length":     {0xff, 0xff, 0xff, 0xff, byte(FrameMsg)},
		"unknown_type":       cat(ping, []byte{0, 0, 0, 1, 99}),
		"empty_bodies":       cat(AppendFrame(nil, FramePing, nil), AppendFrame(nil, FrameGoAway, nil), AppendFrame(nil, FrameMsg, nil)),
	}
}

func envelopeSeeds() map[string][]byte {
	body := func(e Envelope) []byte { return AppendEnvelope(nil, &e)[HeaderLen:] }
	typical := body(typicalRequest())
	many := Envelope{Version: 1, Kind: KindSend, Headers: map[string]string{}}
	for i := range spanHeaders + 2 {
		many.Headers[strconv.Itoa(i)] = "v"
	}
	return map[string][]byte{
		"typical_request":      typical,
		"full":                 body(full()),
		"failed_reply":         body(Envelope{Version: 1, Kind: KindReply, ReplyTo: 3, Status: 7, Error: "boom"}),
		"many_headers":         body(many),
		"non_minimal":          cat(wide(majorMap, 3), wide(majorUint, 0), wide(majorUint, 1), wide(majorUint, 2), wide(majorUint, 3), wide(majorUint, 5), wide(majorText, 1), []byte("s")),
		"reordered_keys":       cat(mp(4), u(9), bs("p"), u(2), u(3), u(5), tx("t"), u(0), u(1)),
		"unknown_keys":         env(3, u(14), cat(arr(2), mp(1), tx("a"), arr(1), u(1), []byte{0xf6}), u(99), []byte{0xfb, 0, 0, 0, 0, 0, 0, 0, 0}, u(1<<40), bs("x")),
		"explicit_zeros":       env(4, u(1), u(0), u(3), tx(""), u(7), mp(0), u(9), bs("")),
		"truncated":            typical[:len(typical)-3],
		"duplicate_key":        env(1, u(2), u(1)),
		"indefinite_subject":   env(1, u(5), []byte{0x7f, 0x61, 'a', 0xff}),
		"invalid_utf8_header":  env(1, u(7), mp(1), tx("k"), tx("\xc3")),
		"nested_too_deep":      env(1, u(63), cat(arr(1), arr(1), arr(1), arr(1), arr(1), u(1))),
		"duplicate_header":     env(1, u(7), mp(2), tx("a"), tx("1"), tx("a"), tx("2")),
		"kind_out_of_range":    cat(mp(2), u(0), u(1), u(2), u(6)),
		"huge_declared_length": env(1, u(9), wide(majorBytes, 1<<62)),
	}
}

func controlSeeds() map[string][]byte {
	frame := func(t FrameType, v any) []byte {
		b, err := AppendControl(nil, t, v)
		if err != nil {
			panic(err)
		}
		return b[HeaderLen-1:] // the type byte, then the body
	}
	typed := func(t FrameType, parts ...[]byte) []byte { return cat(append([][]byte{{byte(t)}}, parts...)...) }
	return map[string][]byte{
		"hello_dialer":   frame(FrameHello, Hello{Min: 1, Max: 2, ID: nodeA, Name: "edge", Listen: []string{"tcp://0.0.0.0:7400"}, MaxFrame: 1 << 20, Proof: []byte{1, 2}}),
		"hello_acceptor": frame(FrameHello, Hello{Min: 1, Max: 1, Version: 1, ID: nodeB, MaxFrame: 1 << 20}),
		"error":          frame(FrameError, ErrorFrame{Code: ErrNotTrusted, Msg: "proof does not match"}),
		"goaway":         frame(FrameGoAway, ErrorFrame{Code: ErrShutdown}),
		"interest":       frame(FrameInterest, Interest{Seq: 3, Services: []string{"a"}, Topics: []string{"t.>"}}),
		"ping":           frame(FramePing, Ping{Nonce: 1 << 63}),
		"pong":           frame(FramePong, Ping{Nonce: 2}),
		"unknown_keys":   typed(FramePing, mp(2), u(1), u(5), u(77), cat(mp(1), tx("x"), arr(0))),
		"duplicate_key":  typed(FrameError, mp(2), u(1), u(1), u(1), u(2)),
		"null":           typed(FrameHello, []byte{0xf6}),
		"wrong_type":     typed(FrameInterest, mp(1), u(2), tx("not a list")),
		"trailing":       typed(FramePing, mp(0), u(0)),
	}
}

func TestWriteCorpus(t *testing.T) {
	if os.Getenv("WIRE_WRITE_CORPUS") == "" {
		t.Skip("set WIRE_WRITE_CORPUS=1 to rewrite the seed corpus")
	}
	for target, seeds := range map[string]map[string][]byte{
		"FuzzReader":         readerSeeds(),
		"FuzzDecodeEnvelope": envelopeSeeds(),
		"FuzzDecodeControl":  controlSeeds(),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range seeds {
			file := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, "seed_"+name), []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzReader feeds arbitrary streams to a Reader: it must never panic,
// never return a body beyond its limit or a type it does not know, end
// with io.EOF, io.ErrUnexpectedEOF or a *ProtocolError, and see the same
// frames however the stream is cut into reads.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, errWhole := readAll(NewReader(bytes.NewReader(data), fuzzReaderLimit))
		for _, fr := range whole {
			if len(fr.body)+1 > fuzzReaderLimit {
				t.Fatalf("body of %d bytes from a reader limited to frames of %d", len(fr.body), fuzzReaderLimit)
			}
			if !fr.t.known() {
				t.Fatalf("frame of unknown type %d returned", fr.t)
			}
		}
		var pe *ProtocolError
		if errWhole != io.EOF && errWhole != io.ErrUnexpectedEOF && !errors.As(errWhole, &pe) {
			t.Fatalf("stream ended with %v (%T)", errWhole, errWhole)
		}
		bytewise, errBytewise := readAll(NewReader(iotest.OneByteReader(bytes.NewReader(data)), fuzzReaderLimit))
		if !reflect.DeepEqual(whole, bytewise) || errWhole.Error() != errBytewise.Error() {
			t.Fatalf("one byte at a time: %d frames, %v; whole: %d frames, %v", len(bytewise), errBytewise, len(whole), errWhole)
		}
	})
}

// FuzzDecodeEnvelope: DecodeEnvelope must never panic; what it accepts
// must re-encode to exactly what fxamacker's deterministic encoder writes,
// decode again to the same envelope, and be accepted by fxamacker with the
// same values.
// fuzzSlab is shared by the fuzz target's runs, so slabs fill and renew.
var fuzzSlab Slab

func FuzzDecodeEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var e Envelope
		if err := DecodeEnvelope(body, &e); err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != ErrProtocol || !strings.HasPrefix(pe.Msg, "envelope: ") {
				t.Fatalf("error %v (%T) is not an envelope *ProtocolError", err, err)
			}
			return
		}
		// The slab variant decodes the same envelope, whatever the slab
		// held before (a shared one across the fuzz run is the point).
		var fromSlab Envelope
		if err := DecodeEnvelopeSlab(body, &fromSlab, &fuzzSlab); err != nil || !equalEnvelopes(&e, &fromSlab) {
			t.Fatalf("DecodeEnvelopeSlab: %v\n%+v\nwant %+v", err, fromSlab, e)
		}
		frame := AppendEnvelope(nil, &e)
		want, err := fxDeterministic.Marshal(toFx(&e))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(frame[HeaderLen:], want) {
			t.Fatalf("re-encoded as %x, fxamacker writes %x", frame[HeaderLen:], want)
		}
		var again Envelope
		if err := DecodeEnvelope(frame[HeaderLen:], &again); err != nil {
			t.Fatalf("re-encoded envelope %x does not decode: %v", frame[HeaderLen:], err)
		}
		if !equalEnvelopes(&e, &again) {
			t.Fatalf("re-encoding changed the envelope:\n%+v\n%+v", e, again)
		}
		var fx fxEnvelope
		err = fxStrict.Unmarshal(body, &fx)
		if err != nil && strings.Contains(err.Error(), "overflows Go's int64") {
			// fxamacker reads integer keys as int64; a key above that is
			// valid CBOR, and an unknown key to DecodeEnvelope.
			return
		}
		if err != nil {
			t.Fatalf("DecodeEnvelope accepts %x, fxamacker does not: %v", body, err)
		}
		if back := fromFx(&fx); !equalEnvelopes(&back, &e) {
			t.Fatalf("fxamacker reads %x as %+v, DecodeEnvelope as %+v", body, back, e)
		}
	})
}

// controlTarget returns a fresh body value for a frame type, mapping any
// other byte onto one of the control types so every input is exercised.
func controlTarget(b byte) (FrameType, any) {
	t := FrameType(b)
	if t < FrameHello || t > FrameAck {
		t = FrameType(b%8 + 1)
	}
	switch t {
	case FrameHello:
		return t, new(Hello)
	case FrameError, FrameGoAway:
		return t, new(ErrorFrame)
	case FrameInterest:
		return t, new(Interest)
	case FrameMembers:
		return t, new(Members)
	case FrameAck:
		return t, new(Ack)
	}
	return t, new(Ping)
}

// FuzzDecodeControl takes a type byte then a body. DecodeControl must
// never panic, and what it accepts must encode to bytes that decode and
// encode to the same bytes again.
func FuzzDecodeControl(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		typ, v := controlTarget(data[0])
		if err := DecodeControl(data[1:], v); err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != ErrProtocol {
				t.Fatalf("error %v (%T) is not a *ProtocolError", err, err)
			}
			return
		}
		first, err := AppendControl(nil, typ, v)
		if err != nil {
			t.Fatalf("AppendControl of a decoded %T: %v", v, err)
		}
		_, v2 := controlTarget(byte(typ))
		if err := DecodeControl(first[HeaderLen:], v2); err != nil {
			t.Fatalf("re-encoded %s body %x does not decode: %v", typ, first[HeaderLen:], err)
		}
		second, err := AppendControl(nil, typ, v2)
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("encoding is not stable: %x then %x (%v)", first, second, err)
		}
	})
}

// FuzzDecodeMemberRecord feeds the signed bytes of a membership record,
// which a host decodes for records relayed from hosts it has no link to.
// What decodes must re-encode stably.
func FuzzDecodeMemberRecord(f *testing.F) {
	for _, r := range []MemberRecord{
		{},
		{ID: nodeA, Name: "a", Key: make([]byte, 32), Version: 1 << 60, Listen: []string{"tcp://0.0.0.0:7400"},
			Links: []string{nodeB}, Services: []string{"echo"}, Topics: []string{"t.>"}},
		{ID: nodeB, Version: 7, Left: true},
	} {
		b, err := AppendMemberRecord(nil, &r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r MemberRecord
		if err := DecodeControl(data, &r); err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != ErrProtocol {
				t.Fatalf("error %v (%T) is not a *ProtocolError", err, err)
			}
			return
		}
		first, err := AppendMemberRecord(nil, &r)
		if err != nil {
			t.Fatalf("AppendMemberRecord of a decoded record: %v", err)
		}
		var r2 MemberRecord
		if err := DecodeControl(first, &r2); err != nil {
			t.Fatalf("re-encoded record %x does not decode: %v", first, err)
		}
		second, _ := AppendMemberRecord(nil, &r2)
		if !bytes.Equal(first, second) {
			t.Fatalf("encoding is not stable: %x then %x", first, second)
		}
	})
}
