package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Fuzz targets for builtin:json-cbor, the decoder of untrusted JSON and
// CBOR, run through the real runtime. Seeds: the case table, and the
// corpus in testdata/fuzz/.

// jcRefusals are the reasons json-cbor may refuse input that Go's readers
// take (README.md): anything else refused is a bug.
var jcRefusals = []string{
	"duplicate member name", "surrogate", "invalid UTF-8", "out of the float64 range", "nesting deeper than 256",
	"map key at byte", "bignum", "simple value", "has no JSON form",
}

func jcFuzzCodec(f *testing.F, dir string) *Version {
	for _, c := range hosttest.JSONCBORCases(f, "../../..") {
		if c.Dir == dir && len(c.In) < 4096 {
			f.Add(c.In)
		}
	}
	e := newEngine(f)
	return loadBuiltinCodec(f, e, "json-cbor", Spec{Instances: 1})
}

// jcConvertFuzz converts and fails t on any status but ok and invalid.
func jcConvertFuzz(t *testing.T, v *Version, from, to string, in []byte) ([]byte, error) {
	out, err := v.Convert(context.Background(), from, to, in)
	if err != nil {
		if st := message.StatusOf(err); st != abi.StatusInvalid {
			t.Fatalf("%s -> %s of %q: status %s (%v), want ok or invalid", from, to, in, st, err)
		}
	}
	return out, err
}

func jcRefusedFor(err error) bool {
	for _, r := range jcRefusals {
		if strings.Contains(err.Error(), r) {
			return true
		}
	}
	return false
}

// FuzzJSONToCBOR: JSON -> CBOR succeeds or is invalid; what it accepts is
// JSON (encoding/json.Valid); what encoding/json accepts it refuses only
// for a documented reason; and CBOR -> JSON of its output gives the same
// value back (integers exactly, other numbers as the same float64).
func FuzzJSONToCBOR(f *testing.F) {
	v := jcFuzzCodec(f, "j")
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := jcConvertFuzz(t, v, typeJSON, typeCBOR, in)
		if err != nil {
			if json.Valid(in) && !jcRefusedFor(err) {
				t.Fatalf("refused JSON that encoding/json takes, for no documented reason: %q: %v", in, err)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted %q, which is not JSON (encoding/json.Valid), as CBOR %x", in, out)
		}
		back, err := jcConvertFuzz(t, v, typeCBOR, typeJSON, out)
		if err != nil {
			t.Fatalf("%q -> CBOR %x does not convert back: %v", in, out, err)
		}
		want, got := jcDecodeJSON(t, in), jcDecodeJSON(t, back)
		if !jcSameJSON(want, got) {
			t.Fatalf("%q -> CBOR %x -> %q: a different value", in, out, back)
		}
	})
}

// FuzzCBORToJSON: CBOR -> JSON succeeds or is invalid; what it accepts is
// well-formed CBOR by fxamacker/cbor (nesting up to 256), and its output
// is JSON that converts back to CBOR.
func FuzzCBORToJSON(f *testing.F) {
	v := jcFuzzCodec(f, "c")
	dm, err := cbor.DecOptions{MaxNestedLevels: 256, MaxArrayElements: math.MaxInt32, MaxMapPairs: math.MaxInt32}.DecMode()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := jcConvertFuzz(t, v, typeCBOR, typeJSON, in)
		if err != nil {
			return
		}
		if werr := dm.Wellformed(in); werr != nil {
			t.Fatalf("accepted %x, which fxamacker/cbor finds not well-formed (%v), as %q", in, werr, out)
		}
		if !json.Valid(out) {
			t.Fatalf("%x -> %q: not JSON", in, out)
		}
		if _, err := jcConvertFuzz(t, v, typeJSON, typeCBOR, out); err != nil && !strings.Contains(err.Error(), "out of the float64 range") {
			t.Fatalf("%x -> %q does not convert back: %v", in, out, err)
		}
	})
}

func jcDecodeJSON(t *testing.T, b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot read %q: %v", b, err)
	}
	return v
}

// jcSameJSON compares two decoded JSON values (a: the original); numbers
// are equal when a is an integer in the int64/uint64 range (which
// json-cbor keeps as an integer) and b the same integer, or else when both
// read as the same float64.
func jcSameJSON(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		xi, xok := new(big.Int).SetString(string(x), 10)
		yi, yok := new(big.Int).SetString(string(y), 10)
		if xok && xi.Cmp(big.NewInt(math.MinInt64)) >= 0 && xi.Cmp(new(big.Int).SetUint64(math.MaxUint64)) <= 0 {
			return yok && xi.Cmp(yi) == 0
		}
		xf, err1 := strconv.ParseFloat(string(x), 64)
		yf, err2 := strconv.ParseFloat(string(y), 64)
		return err1 == nil && err2 == nil && xf == yf
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jcSameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			if yv, ok := y[k]; !ok || !jcSameJSON(xv, yv) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
