package message

import (
	"bytes"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
)

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeHeaders(t *testing.T) {
	good, err := DecodeHeaders(mustCBOR(t, map[string]string{"content-type": "application/cbor", "x": ""}))
	if err != nil || !maps.Equal(good, abi.Headers{"content-type": "application/cbor", "x": ""}) {
		t.Fatalf("good headers: %v, %v", good, err)
	}
	for _, empty := range [][]byte{nil, {0xa0}} {
		if h, err := DecodeHeaders(empty); err != nil || h != nil {
			t.Errorf("%x: %v, %v; want no headers", empty, h, err)
		}
	}
	many := map[string]string{}
	for i := range abi.MaxHeaders + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	bad := []struct {
		name string
		b    []byte
		want string
	}{
		{"not CBOR", []byte{0xff}, "not a CBOR map"},
		{"null", []byte{0xf6}, "not a CBOR map"},
		{"array", mustCBOR(t, []string{"a"}), "not a CBOR map"},
		{"indefinite map", []byte{0xbf, 0x61, 'a', 0x61, 'b', 0xff}, "indefinite"},
		{"indefinite text", []byte{0xa1, 0x7f, 0x61, 'a', 0xff, 0x61, 'b'}, "indefinite"},
		{"tagged value", []byte{0xa1, 0x61, 'a', 0xc0, 0x61, 'b'}, "tag"},
		{"duplicate key", []byte{0xa2, 0x61, 'a', 0x61, 'b', 0x61, 'a', 0x61, 'c'}, "duplicate"},
		{"byte string key", []byte{0xa1, 0x41, 'a', 0x61, 'b'}, "byte string"},
		{"integer value", mustCBOR(t, map[string]int{"a": 1}), "cannot unmarshal"},
		{"map value", mustCBOR(t, map[string]any{"a": map[string]string{}}), "cannot unmarshal"},
		{"invalid UTF-8", []byte{0xa1, 0x61, 0xff, 0x61, 'b'}, "UTF-8"},
		{"trailing bytes", append(mustCBOR(t, map[string]string{"a": "b"}), 0x00), "extraneous"},
		{"truncated", mustCBOR(t, map[string]string{"a": "bcd"})[:5], "EOF"},
		{"empty key", mustCBOR(t, map[string]string{"": "b"}), "empty"},
		{"upper-case key", mustCBOR(t, map[string]string{"Content-Type": "b"}), "lower-case"},
		{"reserved key", mustCBOR(t, map[string]string{abi.HeaderOrigin: "n1"}), "set by the host"},
		{"too many", mustCBOR(t, many), "exceeded max number"},
		{"too large", append([]byte{0xa1, 0x61, 'a', 0x7a, 0, 1, 0, 0}, bytes.Repeat([]byte{'v'}, 1<<16)...), "exceed"},
	}
	for _, c := range bad {
		h, err := DecodeHeaders(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, err %v; want an error saying %q", c.name, h, err, c.want)
		}
	}
}

// FuzzDecodeHeaders: whatever a guest hands over, DecodeHeaders either
// refuses it or returns headers that keep every promise of SPEC.md
// section 10, and that encode back to a map it accepts again.
func FuzzDecodeHeaders(f *testing.F) {
	f.Add([]byte{0xa1, 0x61, 'a', 0x61, 'b'})
	f.Add([]byte{0xbf, 0x61, 'a', 0x61, 'b', 0xff})
	f.Add([]byte{0xa2, 0x61, 'a', 0x61, 'b', 0x61, 'a', 0x61, 'c'})
	f.Add([]byte{0xf6})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeaders(b)
		if err != nil {
			return
		}
		if len(h) > abi.MaxHeaders {
			t.Fatalf("%d headers accepted", len(h))
		}
		for k, v := range h {
			if k == "" || strings.ContainsAny(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") ||
				strings.HasPrefix(k, abi.ReservedHeaderPrefix) || !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("accepted key %q value %q", k, v)
			}
		}
		if len(h) == 0 {
			return
		}
		again, err := DecodeHeaders(mustCBOR(t, h))
		if err != nil || !maps.Equal(again, h) {
			t.Fatalf("re-encoded headers decode to %v, %v", again, err)
		}
	})
}
