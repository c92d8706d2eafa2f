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
	many := make([]Pair, abi.MaxCodecPairs+1)
	for i := range many {
		many[i] = Pair{Type, fmt.Sprintf("a/x%d", i), "a/y"}
	}
	long := make([]Pair, 33) // 33 lines of 129 bytes: over 4 KiB
	for i := range long {
		long[i] = Pair{Type, fmt.Sprintf("a/%03d", i) + strings.Repeat("x", 115), "a/y"}
	}
	for _, c := range []struct {
		pairs []Pair
		want  string
	}{
		{nil, "pairs text is empty"},
		{[]Pair{{Type, "application/JSON", "application/cbor"}}, "line 1 \"type application/JSON application/cbor\": \"application/JSON\" is not a media type"},
		{[]Pair{{Type, "application/json;charset=utf-8", "application/cbor"}}, "is not a media type"},
		{[]Pair{{Type, "application/*", "application/cbor"}}, "is not a media type"},
		{[]Pair{{Type, "json", "application/cbor"}}, "is not a media type"},
		{[]Pair{{Type, "a/" + strings.Repeat("x", 128), "a/c"}}, "is not a media type"},
		{[]Pair{{Type, "a/b", "a/b"}}, "the same"},
		{[]Pair{{Encoding, "gzip", "br"}}, `exactly one of from and to must be "identity"`},
		{[]Pair{{Encoding, "identity", "g zip"}}, "want 3 fields"},
		{[]Pair{{7, "a/b", "a/c"}}, "pair 0: unknown kind 7"},
		{[]Pair{{Type, "a/b", "a/c"}, {Type, "a/b", "a/c"}}, "line 2 \"type a/b a/c\": duplicate of line 1"},
		{many, "65 pairs, more than 64"},
		{long, "more than 4096"},
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
