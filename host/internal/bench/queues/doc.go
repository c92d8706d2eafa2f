// Package queues measures the host's durable work queues
// (host/internal/queue) side by side with NATS JetStream, the durable
// queue a user would pick instead, in one process and in interleaved
// rounds (the order rotating from round to round) so that the load of a
// shared machine falls on every contender alike.
//
// The unit measured is one message made durable and then worked off:
// enqueued, acknowledged to its producer once stored, delivered to a
// consumer, and acknowledged by it. 16 producers enqueue at once, so that
// batching on the store's side (our group commit) has writes to share.
// A round is msgs such messages (5000; 200 with -short), timed from the
// first enqueue until the consumer has acknowledged the last one.
//
// Ours: one pycomms host (node.New from a config file: no control API,
// mesh on a loopback port, data_dir and cache_dir in a temporary
// directory) whose plugin testdata/wat/queue_worker.wasm (2 instances,
// grant publish) consumes queue "orders". A producer is node.Call of a
// request to $queue.orders.new with a 64-byte payload, answered with the
// message's id once the bbolt commit holding it has been fsync'ed; the
// worker publishes each message on topic "worked" and returns ok, which
// removes it. Done: the queue's Acked count (node.Queues) has grown
// by msgs.
//
// Theirs: an embedded nats-server with JetStream (file storage in a
// temporary directory) holding stream ORDERS on orders.> with
// WorkQueuePolicy and FileStorage, and a durable pull consumer with
// explicit acks (jetstream.Consume) on its own connection whose handler
// publishes each message on "worked" and acks it. A producer is
// js.Publish of the same payload to orders.new on one shared connection,
// which returns with JetStream's publish ack, its word that the stream
// stored the message. Done: the handler has acked msgs messages. The
// server's processing of the last acks (the stream emptying) is waited
// for between rounds, outside the time, as our side's commit of its last
// acks is not waited for either.
//
// Durability is not the same by default, and both settings are measured.
// nats-server's file store writes each message to its block file before
// the publish ack, but fsyncs only every SyncInterval, two minutes by
// default (filestore.go, defaultSyncInterval, in v2.15.3): a message
// acknowledged by the default configuration survives the server's
// process dying but not the machine losing power or the kernel crashing
// in those two minutes. Ours fsyncs before answering an enqueue. So
// "jetstream" is the default (what most users run: faster, weaker), and
// "jetstream_sync" is the same server with SyncAlways (the config's
// jetstream {sync_interval: always}), which fsyncs every stored message
// before its ack: the like-for-like durable alternative.
//
// Figures, as b.ReportMetric units: msgs/s and msgs per CPU-second
// (getrusage RUSAGE_SELF, user+sys: producers, store and consumer of
// every contender live in this process) of each contender, the median
// over the rounds, and the median of the per-round ratios ours/theirs:
// x_jetstream, x_jetstream_sync (msgs/s) and x_jetstream_cpu,
// x_jetstream_sync_cpu (msgs per CPU-second). Above 1 we are ahead. The
// log lists each round's msgs/s: the contenders that fsync are bound by
// the disk's fsync latency, which varies widely on a shared machine, and
// so does x_jetstream with it.
//
// Run from the module directory (host/internal/bench):
//
//	go test ./queues -run '^$' -bench DurableQueue -count 3
//
// TestDurableQueueSides checks that each side, run once, has every
// message it produced consumed and acknowledged exactly once and its
// store left empty.
package queues
