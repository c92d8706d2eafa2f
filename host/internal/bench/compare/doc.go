// Package compare measures pycomms-host side by side with what a user
// would pick instead, in one process and in interleaved rounds, so that
// the load of a shared machine falls on every contender alike and the
// ratios, not the absolute figures, are what to read.
//
// Networked (Env): two pycomms hosts started with node.New from config
// files, linked on loopback over TLS or over QUIC, the far one serving the
// hand-written WAT echo (testdata/wat/echo.wasm: 8 instances, queue 65536,
// 10 s limit) and a second copy subscribed to events; 64 concurrent callers
// on the near host. Against them: an embedded nats-server (plaintext and
// TLS) with a Go responder that upper-cases and 64 callers sharing one
// nats.go connection with nc.Request; and the raw echoes of
// internal/netbaseline (length-prefixed frames pipelined on one TLS
// connection, and one long-lived quic-go stream). Figures: calls/s and
// calls per CPU-second (getrusage RUSAGE_SELF, user+sys, around each
// measurement: both ends of every contender live in this process), p50
// and p99 of sequential calls, and events per second into one subscriber
// on the other host (with the events lost when the publisher is paced at
// NATS's rate).
//
// In-process (PluginCalls): one call of the echo through the host's plugin
// runtime (host/internal/plugin, deadline enforced), through waPC
// (wapc-go's wazero engine, no deadline) and through bare wazero (the
// floor: no pool, no deadline, no instrumentation). Every guest runs the
// same handler function, textually (TestHandleBodiesIdentical): the waPC
// guest, testdata/wapc_echo.wat, wraps a verbatim copy of
// testdata/wat/echo.wat's pycomms_handle; it is built with wat2wasm and
// kept fresh by TestWAPCEchoIsFresh.
//
// Legacy gateway (Linejson): one host serving the WAT echo and the
// linejson transport (builtin:linejson); a Go client writing one JSON line
// per call on its own TCP connection, next to control.Client.Call on the
// same host: p50 of sequential calls, calls/s from 16 callers, and the
// plugin's share of a sequential call (the time the transport reports
// spent in the plugin's two events, over the mean time per call).
//
// Broker (RedisPair): two hosts with no mesh between them riding one
// redis-server (started by the benchmark, hosttest.StartRedis) through
// builtin:redis, the far one serving the WAT echo and a subscriber copy,
// next to two plain go-redis clients of the same server doing the same:
// a responder that PUBLISHes each reply to the caller's inbox channel,
// and a subscriber fed by pipelined PUBLISHes. Figures: p50 of sequential
// calls, calls/s from 16 callers, events/s into one subscriber.
//
// Every figure is the median of the per-round ratios ours/baseline, with
// their range. Run the whole comparison as a table from the module
// directory (host/internal/bench):
//
//	go run ./cmd/compare
//
// or as benchmarks (b.ReportMetric: x_nats, x_rawtls, x_nats_cpu, ...):
//
//	go test ./compare -run XXX -bench . -benchtime 1x
//
// Dependencies, all confined to this module: github.com/nats-io/nats-server/v2
// and github.com/nats-io/nats.go (the NATS baseline), and
// github.com/wapc/wapc-go v0.6.2, the last release whose module still holds
// its wazero engine (later ones moved it to a nested module that the Go
// proxy here does not serve); it builds against wazero v1.12.0; and
// github.com/redis/go-redis/v9 (the Redis baseline: the client a Go
// program would use instead of riding the host).
//
// Not measured yet: the far host with a plain-Go responder instead of the
// Wasm echo. The public API (host/node) has no way to serve a service from
// Go code, and this module must not reach into the mesh.
package compare
