package config

import (
	"errors"

	"github.com/pycomms/pycomms-host/abi"
)

// checkSubject validates a service name (wildcards=false) or a topic pattern
// (wildcards=true) with the same rules as the router (abi.ValidateSubject,
// ABI section 9), and returns the rule it breaks, or "": one validator, so a
// config that loads is one the router accepts.
func checkSubject(s string, wildcards bool) string {
	check := abi.ValidateSubject
	if wildcards {
		check = abi.ValidatePattern
	}
	err := check(s)
	if err == nil {
		return ""
	}
	if se := (*abi.SubjectError)(nil); errors.As(err, &se) {
		return se.Reason
	}
	return err.Error()
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
