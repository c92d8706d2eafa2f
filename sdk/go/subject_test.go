package pycomms

import (
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
)

func TestCheckSubject(t *testing.T) {
	for _, tc := range []struct {
		s         string
		wildcards bool
		wantErr   string // "" for valid
	}{
		{"echo.upper", false, ""},
		{"a", false, ""},
		{"orders.*.created", true, ""},
		{"greetings.>", true, ""},
		{">", true, ""},
		{"", false, "must not be empty"},
		{"a..b", false, "empty token at position 1"},
		{".a", false, "empty token at position 0"},
		{"a.", true, "empty token at position 1"},
		{"a b", false, "printable ASCII without spaces"},
		{"caf\xc3\xa9", false, "printable ASCII without spaces"},
		{"a.*", false, "wildcards are only allowed in topic patterns"},
		{"a.>", false, "wildcards are only allowed in topic patterns"},
		{"a.>.b", true, "must be the last token"},
		{"a.b*", true, "mixes a wildcard"},
		{"a.>b", true, "mixes a wildcard"},
		{strings.Repeat("a", 1025), false, "longer than the limit of 1024 bytes"},
	} {
		err := checkSubject(tc.s, tc.wildcards)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("checkSubject(%q, %v) = %v, want nil", tc.s, tc.wildcards, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("checkSubject(%q, %v) = %v, want error containing %q", tc.s, tc.wildcards, err, tc.wantErr)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, topic string
		want           bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.b", "a", false},
		{"a.b", "a.b.c", false},
		{"a", "ab", false},
		{"ab", "a", false},
		{"a.*", "a.b", true},
		{"a.*", "a", false},
		{"a.*", "a.b.c", false},
		{"*.b", "a.b", true},
		{"*", "a", true},
		{"*", "a.b", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c.d", true},
		{"a.>", "a", false},
		{"a.>", "b.c", false},
		{">", "a", true},
		{">", "a.b", true},
		{"a.*.c.>", "a.x.c.d", true},
		{"a.*.c.>", "a.x.c", false},
		{"greetings.>", "greetings.hello", true},
		{"greetings.>", "greetingsx.hello", false},
	} {
		if err := checkSubject(tc.pattern, true); err != nil {
			t.Fatalf("bad test pattern %q: %v", tc.pattern, err)
		}
		if got := abi.Match(tc.pattern, tc.topic); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.topic, got, tc.want)
		}
	}
}

func TestPatternMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if !abi.Match("orders.*.created.>", "orders.eu.created.today") {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("match allocates %v times per call", allocs)
	}
}
