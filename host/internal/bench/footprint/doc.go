// Package footprint measures what pycomms-host costs in memory: per
// established mesh link (TLS and QUIC) and per plugin instance (the WAT
// echo and the Go-built builtin echo). It exists so that a change to the
// per-call path can be checked for a memory regression next to the code
// before it: it uses only the public node API (node.New from a config
// file, Start, Reload, Peers, Plugins, Close), which older commits have
// too, so the same file runs on both sides of a comparison.
//
// How a figure is taken (Take): debug.FreeOSMemory (a forced GC that
// also returns free pages to the OS), repeated until the heap stops
// shrinking (memory freed through cleanups lags the GC), then
// runtime.MemStats HeapInuse and
// StackInuse, the goroutine count, and the process's resident set from
// /proc/self/statm. Every figure is a difference between two snapshots of
// this one process, divided by the number of links or instances added, so
// the process's fixed cost cancels. RSS also holds what the Go heap does
// not see (wazero's compiled code, which is mapped outside it), and pages
// the runtime has not yet returned; read it as an upper bound, the heap as
// the precise figure.
//
// Links (Links): a hub host and N spoke hosts in this process, all up and
// unlinked; a snapshot; then the hub's config gains the N spokes as peers
// and is reloaded, the hub dials them, and once all N links are up and
// every spoke knows the whole mesh (membership settled), a second
// snapshot. A link's figure holds both of its ends (the hub's and the
// spoke's side) and what membership keeps per host.
//
// Instances (Instances): a host with one plugin of k instances, for k = 1
// and k = 33, started and closed alternately in rounds; the figure is the
// median over rounds of (m(33) - m(1)) / 32. The heap holds each
// instance's linear memory (wazero allocates it as a Go slice) and its
// module instance; the compiled code is shared by the instances of one
// plugin.
//
// Run from host/internal/bench:
//
//	go test ./footprint -run XXX -bench Links -benchtime 3x
//	go test ./footprint -run XXX -bench Instances -benchtime 1x
//
// (Links reports the median of b.N hubs; Instances runs 3 rounds in one.)
package footprint
