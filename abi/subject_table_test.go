package abi

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// subjectCase is one line of testdata/subjects.txt.
type subjectCase struct {
	line int
	op   string   // "subject", "pattern" or "match"
	args []string // one string, or pattern and subject for "match"
	want bool     // valid, or matches
}

func (c subjectCase) String() string {
	var q []string
	for _, a := range c.args {
		if len(a) > 40 {
			q = append(q, fmt.Sprintf("%q... (%d bytes)", a[:40], len(a)))
		} else {
			q = append(q, strconv.Quote(a))
		}
	}
	return fmt.Sprintf("subjects.txt:%d: %s %s", c.line, c.op, strings.Join(q, " "))
}

// readSubjectCases parses testdata/subjects.txt (its header says how).
func readSubjectCases(t *testing.T) []subjectCase {
	t.Helper()
	f, err := os.Open("testdata/subjects.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []subjectCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		verdict, rest, _ := strings.Cut(line, " ")
		c := subjectCase{line: n}
		switch verdict {
		case "valid", "invalid":
			c.want = verdict == "valid"
			rest = strings.TrimSpace(rest)
			c.op, rest, _ = strings.Cut(rest, " ")
			if c.op != "subject" && c.op != "pattern" {
				t.Fatalf("subjects.txt:%d: %q is neither subject nor pattern", n, c.op)
			}
		case "match", "nomatch":
			c.op, c.want = "match", verdict == "match"
		default:
			t.Fatalf("subjects.txt:%d: unknown verdict %q", n, verdict)
		}
		for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
			s, tail, err := parseTableString(rest)
			if err != nil {
				t.Fatalf("subjects.txt:%d: %v", n, err)
			}
			c.args, rest = append(c.args, s), tail
		}
		if want := map[string]int{"subject": 1, "pattern": 1, "match": 2}[c.op]; len(c.args) != want {
			t.Fatalf("subjects.txt:%d: %s takes %d strings, the line has %d", n, c.op, want, len(c.args))
		}
		for _, a := range c.args {
			if strings.IndexByte(a, 0) >= 0 {
				t.Fatalf("subjects.txt:%d: a NUL byte cannot reach the C SDK", n)
			}
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("subjects.txt has no cases")
	}
	return cases
}

// parseTableString reads one Go-quoted string, with an optional *N
// repetition, from the start of s and returns it and the rest of s.
func parseTableString(s string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", fmt.Errorf("expected a quoted string at %q: %w", s, err)
	}
	v, _ := strconv.Unquote(q)
	rest := s[len(q):]
	if strings.HasPrefix(rest, "*") {
		num, tail, _ := strings.Cut(rest[1:], " ")
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return "", "", fmt.Errorf("bad repetition %q after %s", num, q)
		}
		v, rest = strings.Repeat(v, n), tail
	} else if rest != "" && rest[0] != ' ' {
		return "", "", fmt.Errorf("expected a space after %s", q)
	}
	return v, rest, nil
}

// TestSubjectTable checks the Go implementation against the table that the
// C SDK also runs (TestSubjectTableC).
func TestSubjectTable(t *testing.T) {
	for _, c := range readSubjectCases(t) {
		var got bool
		switch c.op {
		case "subject":
			got = ValidateSubject(c.args[0]) == nil
		case "pattern":
			got = ValidatePattern(c.args[0]) == nil
		case "match":
			// A match case is only meaningful for valid input: the SDKs
			// check both before they ever match.
			if err := ValidatePattern(c.args[0]); err != nil {
				t.Errorf("%v: the pattern is invalid: %v", c, err)
			}
			if err := ValidateSubject(c.args[1]); err != nil {
				t.Errorf("%v: the subject is invalid: %v", c, err)
			}
			got = Match(c.args[0], c.args[1])
			if ref := refMatch(c.args[0], c.args[1]); ref != c.want {
				t.Errorf("%v: the reference matcher says %v: the table is wrong", c, ref)
			}
		}
		if got != c.want {
			t.Errorf("%v: Go says %v, the table %v", c, got, c.want)
		}
	}
}
