package pycomms

import (
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
)

func TestHeaders(t *testing.T) {
	raw, err := cbor.Marshal(abi.Headers{"trace": "t-1", "content-type": "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	m := msgFor(KindRequest, "a.b", "payload", raw)
	if string(m.Payload()) != "payload" {
		t.Fatalf("payload %q", m.Payload())
	}
	want := map[string]string{"trace": "t-1", "content-type": "text/plain"}
	if got := m.Headers(); !reflect.DeepEqual(got, want) {
		t.Errorf("Headers() = %v, want %v", got, want)
	}
	if !m.hasHeaders() {
		t.Error("hasHeaders() = false")
	}

	empty := msgFor(KindRequest, "a.b", "payload", nil)
	if empty.Headers() != nil || empty.hasHeaders() {
		t.Error("a message without headers has some")
	}
	bad := msgFor(KindRequest, "a.b", "", []byte{0xff})
	if bad.Headers() != nil {
		t.Error("undecodable headers are not nil")
	}
}

func TestPayloadAppendDoesNotClobberHeaders(t *testing.T) {
	raw, _ := cbor.Marshal(abi.Headers{"k": "v"})
	m := msgFor(KindRequest, "a.b", "p", raw)
	_ = append(m.Payload(), "XXXXXXXX"...)
	if got := m.Headers()["k"]; got != "v" {
		t.Errorf("header after append to payload: %q", got)
	}
}

func TestDecodeConfig(t *testing.T) {
	raw, err := cbor.Marshal(map[string]any{
		"prefix": ">> ",
		"n":      uint64(3),
		"neg":    -2,
		"db":     map[string]any{"host": "localhost", "port": 5432},
		"tags":   []string{"a", "b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"prefix": ">> ",
		"n":      int64(3),
		"neg":    int64(-2),
		"db":     map[string]any{"host": "localhost", "port": int64(5432)},
		"tags":   []any{"a", "b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeConfig = %#v\nwant %#v", got, want)
	}
	if _, err := decodeConfig([]byte{0x82, 0x01}); err == nil {
		t.Error("truncated CBOR decoded without error")
	}
	if m, err := decodeConfig([]byte{0xf6}); err != nil || m == nil || len(m) != 0 {
		t.Errorf("CBOR null: %v, %v; want an empty map", m, err)
	}
}
