package pycomms

import (
	"fmt"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
)

// checkSubject reports why s is not a valid subject or topic pattern under
// the ABI's rules (non-empty '.'-separated tokens of printable ASCII without
// spaces, at most abi.MaxSubjectLen bytes). With wildcards set, the tokens
// "*" (one token) and ">" (one or more, last token only) are allowed; '*' and
// '>' are never allowed inside a longer token, because the host would not
// treat them as wildcards there and the mismatch would be silent.
func checkSubject(s string, wildcards bool) error {
	if s == "" {
		return fmt.Errorf("empty subject")
	}
	if len(s) > abi.MaxSubjectLen {
		return fmt.Errorf("subject is %d bytes, more than %d", len(s), abi.MaxSubjectLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("byte %#x at offset %d is not printable ASCII", c, i)
		}
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("empty token at position %d", i)
		case t == "*" || t == ">":
			if !wildcards {
				return fmt.Errorf("wildcard %q is not allowed here", t)
			}
			if t == ">" && i != len(tokens)-1 {
				return fmt.Errorf("wildcard \">\" must be the last token")
			}
		case strings.ContainsAny(t, "*>"):
			return fmt.Errorf("token %q mixes a wildcard with other characters", t)
		}
	}
	return nil
}

// pattern is a topic pattern split into tokens once, at registration, so
// that matching an incoming topic allocates nothing.
type pattern []string

// match reports whether topic (a subject without wildcards) matches p. It
// walks topic token by token in place, as strings.Split(topic, ".") would
// split it, without allocating.
func (p pattern) match(topic string) bool {
	pos := 0 // start of the next token; len(topic)+1 once every token is used
	for _, tok := range p {
		if pos > len(topic) {
			return false // the pattern is longer than the topic
		}
		if tok == ">" {
			return true // at least one token is left, which is what ">" needs
		}
		end := strings.IndexByte(topic[pos:], '.')
		if end < 0 {
			end = len(topic)
		} else {
			end += pos
		}
		if tok != "*" && tok != topic[pos:end] {
			return false
		}
		pos = end + 1
	}
	return pos > len(topic)
}
