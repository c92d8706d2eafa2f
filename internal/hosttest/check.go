package hosttest

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// DefaultInterval is how often CheckFor calls its function.
const DefaultInterval = 20 * time.Millisecond

// CheckFor calls f every DefaultInterval until it returns nil, and fails
// the test with f's last error once d has passed (the NATS server's
// checkFor). f should return errors that say which host held what, such as
// `host "b": no route to "echo" (routes: [a.x])`, since that is all the
// failure shows.
func CheckFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	CheckForEvery(t, d, DefaultInterval, f)
}

// CheckForEvery is CheckFor with its own interval between calls.
func CheckForEvery(t testing.TB, d, interval time.Duration, f func() error) {
	t.Helper()
	if err := Poll(d, interval, f); err != nil {
		t.Fatal(err)
	}
}

// Poll calls f every interval until it returns nil, and returns nil then;
// once d has passed it returns f's last error, wrapped with how long it
// tried and how many times. f is called at least once, and at most about
// d/interval+1 times. For benchmarks and for callers that must not stop
// the test.
func Poll(d, interval time.Duration, f func() error) error {
	if interval <= 0 {
		return errors.New("hosttest.Poll: interval must be positive")
	}
	start := time.Now()
	deadline := start.Add(d)
	for n := 1; ; n++ {
		err := f()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("still failing after %v (%d tries): %w", time.Since(start).Round(time.Millisecond), n, err)
		}
		time.Sleep(min(interval, time.Until(deadline)+time.Millisecond))
	}
}

// Describe prefixes f's errors with what the check waits for, for a check
// whose own errors do not say it: CheckFor(t, d, Describe("a learns b's
// service", f)) fails with "a learns b's service: peers [...]".
func Describe(what string, f func() error) func() error {
	return func() error {
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
}
