package config

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// sizeUnits are the units ParseSize accepts. Units are case-sensitive
// because "mb" and "Mb" are read as megabits by many people; insisting on
// the exact spelling leaves no doubt. Order matters for FormatSize: binary
// units first, largest first, so that 16777216 prints as "16MiB".
var sizeUnits = []struct {
	name string
	mult uint64
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"TB", 1e12},
	{"GB", 1e9},
	{"MB", 1e6},
	{"KB", 1e3},
	{"B", 1},
}

// ParseSize parses a byte size: a plain integer ("1048576") or a number
// followed by a unit, B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB,
// TiB (powers of 1024), optionally separated by spaces ("16MiB", "1.5 GiB").
// A fraction is allowed when the result is a whole number of bytes. The
// error text quotes s and says what is wrong, so it can be shown as is.
func ParseSize(s string) (uint64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%q is not a size: sizes cannot be negative", s)
	}
	digits := func(from int) int {
		for from < len(s) && s[from] >= '0' && s[from] <= '9' {
			from++
		}
		return from
	}
	i := digits(0)
	if i == 0 {
		return 0, errNotSize(s)
	}
	if i < len(s) && s[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, errNotSize(s) // "1." or "1.MiB": no fraction digits
		}
		i = j
	}
	number, unit := s[:i], strings.TrimLeft(s[i:], " ")
	mult := uint64(1)
	if unit != "" {
		found := false
		for _, u := range sizeUnits {
			if u.name == unit {
				mult, found = u.mult, true
				break
			}
		}
		if !found {
			return 0, errNotSize(s)
		}
	}
	// big.Rat keeps "1.5GiB" exact and makes overflow a plain comparison;
	// the syntax was checked above because Rat also accepts "1/2" and "1e3".
	r, ok := new(big.Rat).SetString(number)
	if !ok {
		return 0, errNotSize(s)
	}
	r.Mul(r, new(big.Rat).SetUint64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a size: it is not a whole number of bytes", s)
	}
	if !r.Num().IsUint64() {
		return 0, fmt.Errorf("%q is not a size: it does not fit in 64 bits", s)
	}
	return r.Num().Uint64(), nil
}

func errNotSize(s string) error {
	return fmt.Errorf("%q is not a size (use e.g. 512KiB, 16MiB)", s)
}

// FormatSize formats n bytes with the unit that gives the shortest text,
// preferring a binary unit on a tie: 16777216 is "16MiB", 2000000000 is
// "2GB", 1500 is "1500B". ParseSize(FormatSize(n)) == n for every n.
func FormatSize(n uint64) string {
	best := strconv.FormatUint(n, 10) + "B"
	if n == 0 {
		return best
	}
	for _, u := range sizeUnits {
		if u.mult > 1 && n%u.mult == 0 {
			if s := strconv.FormatUint(n/u.mult, 10) + u.name; len(s) < len(best) {
				best = s
			}
		}
	}
	return best
}

// formatDuration prints d the way a person writes it in a config file:
// "1h" rather than time.Duration's "1h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
