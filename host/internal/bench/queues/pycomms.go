package queues

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
)

// WorkerWasm is the consumer plugin, relative to the repository root:
// it acknowledges a message whose payload starts with anything but 'p'
// or 'f' and publishes it on topic "worked".
const WorkerWasm = "testdata/wat/queue_worker.wasm"

// Names of the queue on both sides.
const (
	queueName    = "orders"
	queueSubject = "$queue.orders.new" // an enqueue on our side
	natsSubject  = "orders.new"        // a publish into the stream
	natsStream   = "ORDERS"
	natsConsumer = "worker"
	workedTopic  = "worked" // what each consumer publishes per message
)

// callTimeout bounds one enqueue; waitTimeout, the wait for a round's
// messages to be consumed.
const (
	callTimeout = 10 * time.Second
	waitTimeout = 2 * time.Minute
)

// Payload is the 64-byte message of every enqueue: it starts with 'o',
// which the worker acknowledges.
var Payload = bytes.Repeat([]byte("order-00"), 8)

// FindRepoRoot walks up from dir to the directory holding WorkerWasm and
// a go.mod (from this package's directory it is ../../../..).
func FindRepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("queues: %w", err)
	}
	for {
		if exists(filepath.Join(d, WorkerWasm)) && exists(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("queues: no directory above %s holds %s and go.mod: run from inside the repository", dir, WorkerWasm)
		}
		d = parent
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Pycomms is one pycomms host in this process whose plugin "worker"
// (queue_worker.wasm, 2 instances, grant publish) consumes the durable
// queue "orders", kept in data_dir/queues.db. Producers enqueue with
// node.Call of a request to $queue.orders.new, which is answered once
// the message is committed (fsync'ed) to the store.
type Pycomms struct {
	Node *node.Node
}

// StartPycomms writes a config into dir (its cache and data directories
// under it, no control API, the mesh on a loopback port) and starts the
// node; it returns once an enqueue is accepted and consumed.
func StartPycomms(dir, workerWasm string) (_ *Pycomms, err error) {
	cfg := fmt.Sprintf(`node: {name: queues-bench}
control: {listen: ""}
listen: {tcp: "127.0.0.1:0", quic: ""}
cache_dir: %q
data_dir: %q
log: {level: error}
plugins:
  - name: worker
    path: %q
    queues: [%s]
    grants: [publish]
    instances: 2
    watch: false
`, filepath.Join(dir, "cache"), filepath.Join(dir, "data"), workerWasm, queueName)
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	n, err := node.New(context.Background(), node.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("queues: pycomms host: %w", err)
	}
	p := &Pycomms{Node: n}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if err := n.Start(); err != nil {
		return nil, fmt.Errorf("queues: pycomms host: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err = p.enqueue()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("queues: pycomms queue not taking enqueues after 20s: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := waitFor("pycomms", waitTimeout, 1, p.Acked); err != nil {
		return nil, err
	}
	return p, nil
}

// enqueue makes one durable enqueue and checks its answer, the id.
func (p *Pycomms) enqueue() error {
	out, err := p.Node.Call(context.Background(), &message.Message{
		Kind: abi.KindRequest, Subject: queueSubject, Payload: Payload,
		Deadline: time.Now().Add(callTimeout), From: "queues-bench",
	})
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if _, err := strconv.ParseUint(string(out), 10, 64); err != nil {
		return fmt.Errorf("enqueue answered %q, not an id", out)
	}
	return nil
}

// stats returns the queue's counters; ok is false when there is no
// such queue.
func (p *Pycomms) stats() (enqueued, acked uint64, depth int, ok bool) {
	for _, st := range p.Node.Queues() {
		if st.Name == queueName {
			return st.Enqueued, st.Acked, st.Depth, true
		}
	}
	return 0, 0, 0, false
}

// Acked counts the messages the worker acknowledged since the start.
func (p *Pycomms) Acked() uint64 {
	_, a, _, _ := p.stats()
	return a
}

// Enqueued counts the messages committed since the start.
func (p *Pycomms) Enqueued() uint64 {
	e, _, _, _ := p.stats()
	return e
}

// Run enqueues msgs messages from producers goroutines and waits until
// the worker has acknowledged every one: the sample is that whole span.
func (p *Pycomms) Run(msgs, producers int) (Sample, error) {
	enq0, acked0, _, ok := p.stats()
	if !ok {
		return Sample{}, errors.New("pycomms: no queue " + queueName)
	}
	s, err := around(msgs, func() error {
		if err := produce(msgs, producers, func(int) error { return p.enqueue() }); err != nil {
			return err
		}
		return waitFor("pycomms", waitTimeout, acked0+uint64(msgs), p.Acked)
	})
	if err != nil {
		return s, err
	}
	enq, acked, depth, _ := p.stats()
	if enq-enq0 != uint64(msgs) || acked-acked0 != uint64(msgs) || depth != 0 {
		return s, fmt.Errorf("pycomms: %d enqueues made, %d committed, %d acknowledged, %d left", msgs, enq-enq0, acked-acked0, depth)
	}
	return s, nil
}

// Close stops the host.
func (p *Pycomms) Close() {
	if p.Node != nil {
		p.Node.Close()
	}
}
