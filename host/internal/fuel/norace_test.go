//go:build !race

package fuel

// raceEnabled is true under -race; see TestSpecSuite.
const raceEnabled = false
