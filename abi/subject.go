// Subjects and topic patterns, section 9 of SPEC.md. They are part of the
// contract: the host (router, mesh, config) and the Go SDK use these
// functions, the C SDK mirrors them, and testdata/subjects.txt is the table
// of cases every implementation must agree on (TestSubjectTableC runs it
// against a native build of the C SDK's code).
//
// A subject is one or more non-empty tokens separated by '.', at most
// MaxSubjectLen bytes of printable ASCII (0x21..0x7e). A service "svc"
// serves every subject "svc.<method...>". A topic pattern is a subject that
// may also use two wildcards, each as a whole token: '*' matches exactly one
// token and '>' (last token only) matches one or more tokens.
//
// A '*' or '>' inside a longer token ("a*", "x>y") is an ordinary character:
// only a whole token is a wildcard, so such a token matches itself literally.
//
// Every function here runs on the routing hot path, so none of them allocate
// unless they return an error.

package abi

import (
	"fmt"
	"strings"
)

// ValidateSubject reports whether s is a valid subject: the error says what is
// wrong and where, for example `subject "a..b": empty token at position 1`
// (token positions count from 0). Wildcard tokens are refused: a published
// topic or a request subject names one concrete destination.
func ValidateSubject(s string) error { return checkSubject("subject", s, false) }

// ValidatePattern reports whether p is a valid topic pattern: a subject in
// which '*' may stand for any whole token and '>' may be the last token.
func ValidatePattern(p string) error { return checkSubject("pattern", p, true) }

// SubjectError is an invalid subject or pattern: what was checked ("subject" or
// "pattern"), the value, and the rule it breaks. Callers that report the
// value their own way (the config loader names the key) use Reason.
type SubjectError struct {
	What   string
	Value  string
	Reason string
}

func (e *SubjectError) Error() string {
	v := e.Value
	if len(v) > MaxSubjectLen {
		// A subject this long would flood the log line; its head is enough
		// to recognise it and the reason says how long it is.
		return fmt.Sprintf("%s %q... (%d bytes): %s", e.What, v[:64], len(v), e.Reason)
	}
	return fmt.Sprintf("%s %q: %s", e.What, v, e.Reason)
}

// checkSubject validates s in one left-to-right pass and reports the first problem,
// so the error points at the earliest offending byte or token.
func checkSubject(what, s string, pattern bool) error {
	fail := func(format string, args ...any) error {
		return &SubjectError{What: what, Value: s, Reason: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return fail("must not be empty")
	}
	if len(s) > MaxSubjectLen {
		return fail("longer than the limit of %d bytes", MaxSubjectLen)
	}
	// wild says the token holds '*' or '>': tracked in the byte loop, as
	// every message that enters the router passes here.
	pos, start, wild := 0, 0, false
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if c < 0x21 || c > 0x7e {
				if c == ' ' {
					return fail("space at offset %d: subjects are printable ASCII without spaces", i)
				}
				return fail("byte 0x%02x at offset %d is not allowed: subjects are printable ASCII without spaces", c, i)
			}
			wild = wild || c == '*' || c == '>'
			continue
		}
		switch tok := s[start:i]; {
		case tok == "":
			return fail("empty token at position %d", pos)
		case !wild:
		case tok == "*" || tok == ">":
			if !pattern {
				return fail("wildcard %q at position %d: wildcards are only allowed in topic patterns", tok, pos)
			}
			if tok == ">" && i != len(s) {
				return fail("wildcard \">\" at position %d must be the last token", pos)
			}
		default:
			// '*' and '>' are reserved for wildcards: inside a longer token
			// they would be literal, which a reader of "orders*" or a
			// guest SDK would not expect.
			return fail("token %q at position %d mixes a wildcard with other characters: '*' and '>' must be whole tokens", tok, pos)
		}
		pos++
		start, wild = i+1, false
	}
	return nil
}

// Match reports whether subject matches the topic pattern. It does not
// allocate.
//
// Both arguments are expected to be valid (see ValidateSubject and ValidatePattern);
// Match does not check them, because callers validate once when a pattern is
// registered or a message enters the router rather than on every comparison.
// On invalid input it still never panics: it compares the tokens as
// strings.Split(s, ".") would produce them, with '*' matching any one token
// and a final '>' matching one or more.
func Match(pattern, subject string) bool {
	// One pass over both strings with i and j at the start of a token each:
	// patterns are matched against every published event, so this avoids
	// splitting or even searching for the next '.' ahead of the comparison,
	// and a mismatch in the first bytes ends the work at once.
	i, j := 0, 0
	for {
		if wildcardAt(pattern, i) {
			if pattern[i] == '>' && i+1 == len(pattern) {
				// The subject always has at least one token left here.
				return true
			}
			if pattern[i] == '*' {
				for j < len(subject) && subject[j] != '.' {
					j++
				}
				i++
			}
			// A '>' that is not last is compared literally below, as
			// strings.Split would have it.
		}
		for i < len(pattern) && j < len(subject) && pattern[i] == subject[j] && pattern[i] != '.' {
			i++
			j++
		}
		if (i < len(pattern) && pattern[i] != '.') || (j < len(subject) && subject[j] != '.') {
			return false // the tokens differ
		}
		if i == len(pattern) || j == len(subject) {
			return i == len(pattern) && j == len(subject)
		}
		i++ // skip the '.' in both
		j++
	}
}

// wildcardAt reports whether the token starting at i in p is "*" or ">".
func wildcardAt(p string, i int) bool {
	return i < len(p) && (p[i] == '*' || p[i] == '>') && (i+1 == len(p) || p[i+1] == '.')
}

// MatchAny reports whether subject matches any of patterns (see Match). It
// does not allocate.
func MatchAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		if Match(p, subject) {
			return true
		}
	}
	return false
}

// ServiceOf reports whether service serves subject, that is whether subject
// is service followed by '.' and a non-empty method ("echo" serves
// "echo.upper" and "echo.a.b" but not "echo" itself). It does not allocate.
func ServiceOf(service, subject string) bool {
	return service != "" && len(subject) > len(service)+1 &&
		subject[len(service)] == '.' &&
		subject[:len(service)] == service
}

// LongestService returns the value of the longest service in services that serves
// s: the proper prefixes of s that end at a '.', deepest first, never
// longer than depth tokens (the most tokens any key has, so a long subject
// costs no more probes than that). The router and the mesh share it so
// that a subject resolves to the same service locally and across hosts.
func LongestService[V comparable](services map[string]V, depth int, s string) (V, bool) {
	var zero V
	if depth == 0 {
		return zero, false
	}
	i := -1
	for j, n := 0, 0; j < len(s); j++ {
		if s[j] == '.' {
			i = j
			if n++; n == depth {
				break
			}
		}
	}
	for ; i > 0; i = strings.LastIndexByte(s[:i], '.') {
		if v, ok := services[s[:i]]; ok {
			return v, true
		}
	}
	return zero, false
}
