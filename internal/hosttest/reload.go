// Package hosttest is the fault-test kit the tests of several packages
// share: CheckFor (poll until a condition holds, fail with the last error,
// which names the host that held what), SyncBuffer (a log a test reads
// while hosts write it), LogRecords (a host's JSON log by record and
// time), TCPProxy and UDPProxy (put a mesh link through a
// loopback proxy that delays, drops and partitions it), StartRedis (a
// redis-server on loopback for the redis transport), and the reload
// scenario. Package cluster runs N hosts through host/node.
//
// Only tests import it. It imports no host/... package, so that the
// in-package tests of host/internal/mesh can use it (host/node imports the
// mesh: importing node here would be a cycle).
package hosttest

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// ReloadPlugins is the `plugins:` list (its entries, without the key) of
// config number i of the reload scenario that the node's in-process test
// and the CLI's process test both run: from one config to the next,
// echo's config.prefix alternates, instances and limits change, an
// unrelated plugin ("extra") comes and goes, and the service "mv" moves
// between the WAT plugins wa and wb. dir holds a.wasm, b.wasm and e.wasm.
func ReloadPlugins(dir string, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - {name: echo, path: builtin:echo, services: [echo], instances: %d, limits: {timeout: %ds}, config: {prefix: %q}}\n",
		1+i%3, 5+i%2, reloadPrefix(i))
	aSvcs, bSvcs := "a, mv", "b"
	if i%4 >= 2 {
		aSvcs, bSvcs = "a", "mv, b"
	}
	fmt.Fprintf(&b, "  - {name: wa, path: %q, services: [%s], instances: %d}\n", filepath.Join(dir, "a.wasm"), aSvcs, 1+i%2)
	fmt.Fprintf(&b, "  - {name: wb, path: %q, services: [%s], limits: {memory: %dMiB}}\n", filepath.Join(dir, "b.wasm"), bSvcs, 1+i%2)
	if i%3 == 1 {
		fmt.Fprintf(&b, "  - {name: extra, path: %q, services: [extra]}\n", filepath.Join(dir, "e.wasm"))
	}
	return b.String()
}

func reloadPrefix(i int) string { return strings.Repeat(">", 1+i%2) + " " }

// ReloadReply is what config i of the scenario answers to subject with
// payload "x" ("?" for a subject the scenario does not call).
func ReloadReply(i int, subject string) string {
	switch subject {
	case "echo.prefix":
		return reloadPrefix(i) + "x"
	case "echo.upper":
		return "X"
	case "a.x":
		return "A:x"
	case "b.x":
		return "B:x"
	case "mv.x":
		if i%4 >= 2 {
			return "B:x"
		}
		return "A:x"
	}
	return "?"
}

// ReloadCallers are 8 goroutines that call the reload scenario's subjects
// for as long as its reloads run, and check every reply against the
// configs that may have produced it: a call that began after config k was
// applied (Done) and ended before config j began to apply (Applying) must
// get config k's reply, config j's, or one of those between.
type ReloadCallers struct {
	applying, done atomic.Int64
	stop           chan struct{}
	stopOnce       sync.Once
	wg             sync.WaitGroup
	calls, failed  atomic.Int64
	mu             sync.Mutex
	failures       []string
}

// StartReloadCallers starts the callers; call makes one call of subject
// with payload "x" and returns the reply.
func StartReloadCallers(subjects []string, call func(subject string) ([]byte, error)) *ReloadCallers {
	c := &ReloadCallers{stop: make(chan struct{})}
	for w := range 8 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for k := w; ; k++ {
				select {
				case <-c.stop:
					return
				default:
				}
				s := subjects[k%len(subjects)]
				lo := c.done.Load()
				r, err := call(s)
				hi := c.applying.Load()
				c.calls.Add(1)
				ok := false
				for i := lo; i <= hi && err == nil; i++ {
					ok = ok || string(r) == ReloadReply(int(i), s)
				}
				if !ok {
					c.failed.Add(1)
					c.mu.Lock()
					if len(c.failures) < 5 {
						c.failures = append(c.failures, fmt.Sprintf("%s during configs %d..%d: %q %v", s, lo, hi, r, err))
					}
					c.mu.Unlock()
				}
			}
		}()
	}
	return c
}

// Applying says that config i begins to apply.
func (c *ReloadCallers) Applying(i int) { c.applying.Store(int64(i)) }

// Done says that config i has been applied.
func (c *ReloadCallers) Done(i int) { c.done.Store(int64(i)) }

// Stop stops the callers and waits for them; it may be called again.
func (c *ReloadCallers) Stop() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
}

// Calls is how many calls were made.
func (c *ReloadCallers) Calls() int64 { return c.calls.Load() }

// Check stops the callers and fails t if any call failed or got a reply
// of none of its configs, or if they made fewer calls than there were
// reloads (they did not run during the reloads).
func (c *ReloadCallers) Check(t testing.TB, reloads int) {
	t.Helper()
	c.Stop()
	t.Logf("%d calls during %d reloads", c.calls.Load(), reloads)
	if f := c.failed.Load(); f > 0 {
		t.Fatalf("%d of %d calls failed or got a reply of neither config, first ones:\n%s", f, c.calls.Load(), strings.Join(c.failures, "\n"))
	}
	if c.calls.Load() < int64(reloads) {
		t.Fatalf("only %d calls: the callers did not run during the reloads", c.calls.Load())
	}
}
