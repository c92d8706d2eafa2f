package abi

import (
	"strings"
	"testing"
)

func TestValidateSubject(t *testing.T) {
	long := strings.Repeat("a", MaxSubjectLen)
	tests := []struct {
		name, in string
		wantErr  string // exact error text; "" means valid
	}{
		{"one token", "echo", ""},
		{"service and method", "echo.upper", ""},
		{"deep", "a.b.c.d.e", ""},
		{"punctuation", "inv-1_x:y/z~!#", ""},
		{"star inside token", "a*.b>c", `subject "a*.b>c": token "a*" at position 0 mixes a wildcard with other characters: '*' and '>' must be whole tokens`},
		{"max length", long, ""},
		{"empty", "", `subject "": must not be empty`},
		{"empty middle token", "a..b", `subject "a..b": empty token at position 1`},
		{"leading dot", ".a", `subject ".a": empty token at position 0`},
		{"trailing dot", "a.b.", `subject "a.b.": empty token at position 2`},
		{"only dot", ".", `subject ".": empty token at position 0`},
		{"space", "a b", `subject "a b": space at offset 1: subjects are printable ASCII without spaces`},
		{"tab", "a.\tb", `subject "a.\tb": byte 0x09 at offset 2 is not allowed: subjects are printable ASCII without spaces`},
		{"del", "a\x7f", `subject "a\x7f": byte 0x7f at offset 1 is not allowed: subjects are printable ASCII without spaces`},
		{"utf-8", "caf\u00e9", `subject "café": byte 0xc3 at offset 3 is not allowed: subjects are printable ASCII without spaces`},
		{"star token", "a.*", `subject "a.*": wildcard "*" at position 1: wildcards are only allowed in topic patterns`},
		{"gt token", ">", `subject ">": wildcard ">" at position 0: wildcards are only allowed in topic patterns`},
		{"too long", long + "a", `subject "` + long[:64] + `"... (1025 bytes): longer than the limit of 1024 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSubject(tt.in)
			if got := errText(err); got != tt.wantErr {
				t.Errorf("ValidateSubject(%q) = %q, want %q", tt.in, got, tt.wantErr)
			}
		})
	}
}

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		name, in string
		wantErr  string
	}{
		{"literal", "orders.created", ""},
		{"star", "orders.*.created", ""},
		{"only star", "*", ""},
		{"only gt", ">", ""},
		{"stars and gt", "*.*.>", ""},
		{"gt last", "orders.>", ""},
		{"star inside token", "a*.b", `pattern "a*.b": token "a*" at position 0 mixes a wildcard with other characters: '*' and '>' must be whole tokens`},
		{"greater-than inside token", "a.>x", `pattern "a.>x": token ">x" at position 1 mixes a wildcard with other characters: '*' and '>' must be whole tokens`},
		{"gt not last", "a.>.b", `pattern "a.>.b": wildcard ">" at position 1 must be the last token`},
		{"gt first of two", ">.a", `pattern ">.a": wildcard ">" at position 0 must be the last token`},
		{"empty token", "a.*.", `pattern "a.*.": empty token at position 2`},
		{"empty", "", `pattern "": must not be empty`},
		{"space", "a.* ", `pattern "a.* ": space at offset 3: subjects are printable ASCII without spaces`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePattern(tt.in)
			if got := errText(err); got != tt.wantErr {
				t.Errorf("ValidatePattern(%q) = %q, want %q", tt.in, got, tt.wantErr)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a", "a.b", false},
		{"a.b", "a", false},
		{"a.b", "a.b", true},
		{"a.b", "a.bc", false},
		{"a.bc", "a.b", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a", false},
		{"a.*", "a.b.c", false},
		{"*.b", "a.b", true},
		{"*.b", "a.c", false},
		{"a.*.c", "a.x.c", true},
		{"a.*.c", "a.x.d", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{"a.>", "a", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "b.c", false},
		{"*.>", "a.b", true},
		{"*.>", "a", false},
		{"orders.*.>", "orders.eu.created.v2", true},
		{"orders.*.>", "orders.eu", false},
		{"a*", "a*", true},
		{"a*", "ab", false},
		{"a.b>", "a.b>", true},
		{"a.b>", "a.bc", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.want)
		}
		if got := refMatch(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v: the reference is wrong", tt.pattern, tt.subject, got, tt.want)
		}
	}
}

func TestServiceOf(t *testing.T) {
	tests := []struct {
		service, subject string
		want             bool
	}{
		{"echo", "echo.upper", true},
		{"echo", "echo.a.b", true},
		{"echo", "echo", false},
		{"echo", "echo.", false},
		{"echo", "echoes.upper", false},
		{"echo", "ech", false},
		{"echo.a", "echo.a.b", true},
		{"echo.a", "echo.b.c", false},
		{"", ".x", false},
		{"", "x", false},
	}
	for _, tt := range tests {
		if got := ServiceOf(tt.service, tt.subject); got != tt.want {
			t.Errorf("ServiceOf(%q, %q) = %v, want %v", tt.service, tt.subject, got, tt.want)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	tests := []struct {
		name string
		fn   func()
	}{
		{"Match hit", func() { Match("orders.*.>", "orders.eu.created.v2") }},
		{"Match miss", func() { Match("orders.*.x", "orders.eu.created") }},
		{"Validate", func() { _ = ValidateSubject("orders.eu.created.v2") }},
		{"ValidatePattern", func() { _ = ValidatePattern("orders.*.>") }},
		{"ServiceOf", func() { ServiceOf("orders", "orders.eu.created") }},
		{"MatchAny", func() { MatchAny(benchPatterns, "orders.eu.created.v2") }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
}

var benchPatterns = []string{"a.b", "orders.*.x", "orders.>"}

// refMatch is the obviously correct definition Match is checked against:
// split both at '.', '*' matches one token, a final '>' one or more.
func refMatch(pattern, subject string) bool {
	pt := strings.Split(pattern, ".")
	st := strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" && i == len(pt)-1 {
			return len(st) > i
		}
		if i >= len(st) || (p != "*" && p != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"a.b", "a.b"},
		{"a.*", "a.b"},
		{"a.>", "a.b.c"},
		{">", ""},
		{"*.*", "a..b"},
		{"a.>.b", "a.x.b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, subject string) {
		got := Match(pattern, subject)
		if want := refMatch(pattern, subject); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, subject, got, want)
		}
		// A valid subject is also a valid pattern that matches exactly itself.
		if ValidateSubject(subject) == nil && !Match(subject, subject) {
			t.Fatalf("Match(%q, %q) = false for a valid subject matched against itself", subject, subject)
		}
		// Every valid subject is under the catch-all pattern.
		if ValidateSubject(subject) == nil && !Match(">", subject) {
			t.Fatalf("Match(\">\", %q) = false", subject)
		}
		// A pattern without wildcards matches exactly the identical subject.
		if ValidateSubject(pattern) == nil && got != (pattern == subject) {
			t.Fatalf("literal pattern %q: Match(%q) = %v", pattern, subject, got)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Match("orders.*.>", "orders.eu.created.v2")
	}
}

func BenchmarkValidateSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidateSubject("orders.eu.created.v2")
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
