// Package hosttest is the fault-test kit the tests of several packages
// share: CheckFor (poll until a condition holds, fail with the last error,
// which names the host that held what), SyncBuffer (a log a test reads
// while hosts write it), LogRecords (a host's JSON log by record and
// time), TCPProxy and UDPProxy (put a mesh link through a
// loopback proxy that delays, drops and partitions it), and the reload
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
