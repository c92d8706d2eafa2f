package codec

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
)

func TestPairsText(t *testing.T) {
	got, err := PairsText([]Pair{
		{Type, "application/json", "application/cbor"},
		{Type, "application/cbor", "application/json"},
		{Encoding, "identity", "gzip"},
		{Encoding, "gzip", "identity"},
	})
	want := "type application/json application/cbor\ntype application/cbor application/json\nencoding identity gzip\nencoding gzip identity\n"
	if err != nil || got != want {
		t.Fatalf("PairsText = %q, %v; want %q", got, err, want)
	}
	many := make([]Pair, MaxPairs+1)
	for i := range many {
		many[i] = Pair{Type, fmt.Sprintf("a/x%d", i), "a/y"}
	}
	for _, c := range []struct {
		pairs []Pair
		want  string
	}{
		{nil, "no pairs"},
		{[]Pair{{Type, "application/JSON", "application/cbor"}}, "not a lower-case type/subtype"},
		{[]Pair{{Type, "application/json; charset=utf-8", "application/cbor"}}, "not a lower-case type/subtype"},
		{[]Pair{{Type, "application/*", "application/cbor"}}, "not a lower-case type/subtype"},
		{[]Pair{{Type, "json", "application/cbor"}}, "not a lower-case type/subtype"},
		{[]Pair{{Type, "a/b", "a/b"}}, "the same"},
		{[]Pair{{Encoding, "gzip", "br"}}, `exactly one side`},
		{[]Pair{{Encoding, "identity", "g zip"}}, "content-coding token"},
		{[]Pair{{7, "a/b", "a/c"}}, "unknown kind"},
		{[]Pair{{Type, "a/b", "a/c"}, {Type, "a/b", "a/c"}}, "pair 1 (type a/b a/c) is listed twice"},
		{many, "65 pairs, at most 64"},
		{[]Pair{{Type, "a/" + strings.Repeat("x", 4100), "a/c"}}, "the pairs text is"},
	} {
		if _, err := PairsText(c.pairs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PairsText(%v) = %v, want an error with %q", c.pairs, err, c.want)
		}
	}
}

func TestStatusOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want abi.Status
	}{
		{nil, abi.StatusOK},
		{Invalid("bad"), abi.StatusInvalid},
		{TooLarge("big"), abi.StatusTooLarge},
		{fmt.Errorf("gunzip: %w", Invalid("bad")), abi.StatusInvalid},
		{errors.New("other"), abi.StatusHandlerError},
		{&Error{Status: 99, Msg: "unknown status"}, abi.StatusHandlerError},
	} {
		if got := StatusOf(c.err); got != c.want {
			t.Errorf("StatusOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
