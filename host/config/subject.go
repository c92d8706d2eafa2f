package config

import (
	"fmt"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
)

// checkSubject validates a service name (wildcards=false) or a topic pattern
// (wildcards=true) against ABI section 9, and returns a reason for the
// first rule it breaks, or "".
func checkSubject(s string, wildcards bool) string {
	if s == "" {
		return "it is empty"
	}
	if len(s) > abi.MaxSubjectLen {
		return fmt.Sprintf("it is %d bytes long (at most %d)", len(s), abi.MaxSubjectLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Sprintf("byte %d (%q) is not printable ASCII without space", i, c)
		}
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		if t == "" {
			return fmt.Sprintf("token %d is empty (tokens are separated by single dots)", i)
		}
		if !strings.ContainsAny(t, "*>") {
			continue
		}
		if !wildcards {
			return "wildcards (* and >) are only allowed in topics"
		}
		switch {
		case t == "*":
		case t == ">" && i == len(tokens)-1:
		case t == ">":
			return "'>' is only allowed as the last token"
		default:
			return fmt.Sprintf("token %q mixes a wildcard with other characters (* and > must be whole tokens)", t)
		}
	}
	return ""
}

// suggest returns the candidate closest to word when it is at most two
// edits away, for "did you mean" hints; ties go to the earlier candidate,
// which keeps hints stable. A short word may differ by at most half its
// length, or "foo" would be "corrected" to "log".
func suggest(word string, candidates []string) (string, bool) {
	best, bestDist := "", min(2, len([]rune(word))/2)+1
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, best != ""
}

// editDistance is the optimal string alignment distance: Levenshtein plus
// swaps of adjacent characters, the most common typo ("nmae").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
