package codec

import (
	"slices"
	"testing"
)

func TestMediaType(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"Application/JSON; charset=utf-8", "application/json", true},
		{"application/cbor;x", "application/cbor", true}, // a bad parameter is ignored
		{"text", "", false},
		{"*/*", "", false},
		{"a b/c", "", false},
	} {
		got, ok := MediaType(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("MediaType(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestList(t *testing.T) {
	got := List(" application/json;q=0.1, TEXT/Plain ,, */*;q=0 ")
	if want := []string{"application/json", "text/plain", "*/*"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q (order kept, q ignored)", got, want)
	}
}
