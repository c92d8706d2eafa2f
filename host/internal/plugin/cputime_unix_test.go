//go:build unix

package plugin

import "syscall"

// processCPU is the CPU time this process has used (user + system), in
// nanoseconds: benchmarks report it per operation, which CPU contention
// from other processes distorts far less than the wall time.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
