package wire

import (
	"bytes"
	"strings"
	"testing"
)

// TestDecodeEnvelopeSlab: small sends and events decode from a slab with
// the same contents as without one, a payload is capped at its length (an
// append cannot reach a neighbour's bytes), texts too big for the slab and
// other kinds still decode, and a slab renews itself when it runs out.
func TestDecodeEnvelopeSlab(t *testing.T) {
	var slab Slab
	cases := []Envelope{
		{Version: 1, Kind: KindEvent, Subject: "a.b", Payload: []byte("hello")},
		{Version: 1, Kind: KindSend, Subject: "s.x", From: nodeA, To: nodeB, Relays: 1, Payload: bytes.Repeat([]byte("p"), 1024)},
		{Version: 1, Kind: KindEvent, Subject: "no.payload"},
		{Version: 1, Kind: KindEvent, Subject: "big.headers", Headers: map[string]string{"k": strings.Repeat("v", 20<<10)}, Payload: []byte("x")},
		{Version: 1, Kind: KindEvent, Subject: "big.payload", Payload: bytes.Repeat([]byte("q"), 4096)},
		{Version: 1, ID: 7, Kind: KindRequest, Subject: "r.x", Payload: []byte("request")},
	}
	for round := range 200 { // enough to run through several slabs
		for i, c := range cases {
			body := AppendEnvelope(nil, &c)[HeaderLen:]
			var plain, slabbed Envelope
			if err := DecodeEnvelope(body, &plain); err != nil {
				t.Fatal(err)
			}
			if err := DecodeEnvelopeSlab(body, &slabbed, &slab); err != nil {
				t.Fatalf("round %d case %d: %v", round, i, err)
			}
			if !equalEnvelopes(&plain, &slabbed) {
				t.Fatalf("round %d case %d: slab gave %+v, want %+v", round, i, slabbed, plain)
			}
			if cap(slabbed.Payload) != len(slabbed.Payload) {
				t.Fatalf("case %d: payload of %d bytes has room for %d: an append would write into the slab", i, len(slabbed.Payload), cap(slabbed.Payload))
			}
		}
	}
}
