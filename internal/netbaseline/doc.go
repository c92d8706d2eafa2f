// Package netbaseline provides in-process baselines for benchmarks of
// host-to-host messaging, and the measurement helpers those benchmarks share.
//
// A benchmark of our own messaging reports its figure as a ratio to one of
// these baselines measured in the same process, so that drift of the machine
// (load, frequency, noisy neighbours) cancels out. The baselines are the
// simplest efficient designs on each transport:
//
//   - [Echo]: request/reply over one pipelined connection (raw TCP, TCP +
//     TLS 1.3, or one long-lived QUIC stream), with a coalescing writer on the
//     client and a read-then-flush-when-idle echo server;
//   - [Stream]: a one-way stream of length-prefixed frames over TLS, counted by
//     the receiver.
//
// Everything listens on 127.0.0.1 port 0 and both ends live in this process.
// Close stops every goroutine a baseline started.
package netbaseline
