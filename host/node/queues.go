package node

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/codec"
	"github.com/pycomms/pycomms-host/host/internal/queue"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// queueFile is the name of the queue store in data_dir.
const queueFile = "queues.db"

// openQueues opens the queue store in cfg's data_dir when a plugin of cfg
// consumes a queue and the store is not open yet: at start, and on a
// reload that adds the first consumer (which it fails, naming data_dir,
// when the file cannot be opened). A store once open stays open until
// Close, so the messages of a queue whose consumer a reload removed keep
// their place on disk and are counted in /v1/queues.
func (n *Node) openQueues(cfg *config.Config) error {
	if n.queues.Load() != nil || !slices.ContainsFunc(cfg.Plugins, func(p config.Plugin) bool { return len(p.Queues) > 0 }) {
		return nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return &config.Errors{List: []*config.Error{cfg.At("data_dir", "create it for the queue store: %v", err)}}
	}
	s, err := queue.Open(filepath.Join(cfg.DataDir, queueFile), queueOptions(cfg), n.logger)
	if err != nil {
		return &config.Errors{List: []*config.Error{cfg.At("data_dir", "%v", err)}}
	}
	n.queues.Store(&queueSet{store: s, ep: queue.NewEndpoint(s)})
	return nil
}

func queueOptions(cfg *config.Config) queue.Options {
	return queue.Options{MaxAttempts: cfg.Queues.MaxAttempts, Backoff: cfg.Queues.Backoff,
		MaxBackoff: cfg.Queues.MaxBackoff, MaxDepth: cfg.Queues.MaxDepth}
}

// applyQueues makes the queues the config's plugins consume those this
// host takes enqueues for (the routes $queue.NAME), and gives each its
// consumer; a queue no plugin consumes any more stops being delivered.
// It runs after New and after every applied reload.
func (n *Node) applyQueues() {
	qs := n.queues.Load()
	if qs == nil {
		return
	}
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	qs.store.SetOptions(queueOptions(cfg))
	consumer := map[string]config.Plugin{}
	for _, pc := range cfg.Plugins {
		for _, q := range pc.Queues {
			consumer[q] = pc
		}
	}
	var served []*queue.Queue
	for _, name := range qs.store.Names() {
		q, err := qs.store.Queue(name)
		if err != nil {
			n.logger.Error("queue cannot be loaded", "queue", name, "err", err)
			continue
		}
		if _, ok := consumer[name]; !ok {
			q.SetConsumer(nil, 0)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(consumer)) {
		pc := consumer[name]
		q, err := qs.store.Queue(name)
		if err != nil {
			n.logger.Error("queue cannot be loaded", "queue", name, "plugin", pc.Name, "err", err)
			continue
		}
		q.SetConsumer(&pluginConsumer{n: n, name: pc.Name}, pc.Instances)
		served = append(served, q)
	}
	qs.ep.SetServed(served)
	subjects := qs.ep.Subjects()
	var err error
	if len(subjects) == 0 {
		err = n.router.Update(router.Change{Owner: queue.Owner})
	} else {
		err = n.router.SetRoutes(queue.Owner, qs.ep, subjects, nil)
	}
	if err != nil {
		n.logger.Error("queue routes cannot be set", "err", err)
	}
}

// closeQueues stops the deliveries (waiting for those under way) and
// closes the store; what is not acknowledged stays on disk.
func (n *Node) closeQueues() {
	qs := n.queues.Load()
	if qs == nil {
		return
	}
	n.router.Remove(queue.Owner)
	if err := qs.store.Close(); err != nil {
		n.logger.Error("closing the queue store", "file", qs.store.Path(), "err", err)
	}
}

// queueSet is the queue store and the endpoint that takes enqueues for
// it, set once by openQueues.
type queueSet struct {
	store *queue.Store
	ep    *queue.Endpoint
}

// queueStore returns the queue store; nil while no plugin consumed a
// queue.
func (n *Node) queueStore() *queue.Store {
	if qs := n.queues.Load(); qs != nil {
		return qs.store
	}
	return nil
}

// pluginConsumer delivers a queue's messages to the plugin of that name
// serving now: a swap or a reload between deliveries needs no rewiring.
type pluginConsumer struct {
	n    *Node
	name string
}

func (c *pluginConsumer) Deliver(ctx context.Context, m *message.Message) error {
	c.n.mu.Lock()
	mp := c.n.plugins[c.name]
	c.n.mu.Unlock()
	if mp == nil {
		return router.ErrGone
	}
	cfg, p, _, gone := mp.state()
	if p == nil || gone {
		// Failed to load, or removed: the message waits (not an attempt).
		return message.Errorf(abi.StatusBusy, "plugin %q is not serving", c.name)
	}
	if cfg.Accepts != nil {
		// Converted as a send to the plugin would be (abi/SPEC.md
		// section 14.5); one no codec converts fails the delivery, so it
		// ends a dead letter that says why.
		in, err := codec.NewEndpoint(p, cfg.Name, cfg.Accepts, cfg.Encodings, &c.n.codecs, mp.conv, c.n.logger).Convert(ctx, m)
		if err != nil {
			return err
		}
		m = in
	}
	_, err := p.Request(ctx, m)
	return err
}

// Queues describes every queue of this host's store (control.Queuer).
func (n *Node) Queues() []control.QueueInfo {
	store := n.queueStore()
	if store == nil {
		return nil
	}
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	consumer := map[string]string{}
	for _, pc := range cfg.Plugins {
		for _, q := range pc.Queues {
			consumer[q] = pc.Name
		}
	}
	var out []control.QueueInfo
	for _, name := range store.Names() {
		q, err := store.Queue(name)
		if err != nil {
			continue
		}
		st := q.Stats()
		out = append(out, control.QueueInfo{Name: name, Consumer: consumer[name], Depth: st.Depth, Ready: st.Ready,
			Delayed: st.Delayed, InFlight: st.InFlight, Dead: st.Dead, Enqueued: st.Enqueued, Delivered: st.Delivered,
			Acked: st.Acked, Retried: st.Retried, DeadLettered: st.DeadLettered})
	}
	return out
}

// DeadLetters lists up to limit dead letters of queue name, oldest first
// (control.Queuer).
func (n *Node) DeadLetters(name string, limit int) ([]control.DeadLetter, error) {
	store := n.queueStore()
	if store == nil {
		return nil, message.Errorf(abi.StatusNoHandler, "no queue %q on this host", name)
	}
	list, err := store.DeadLetters(name, limit)
	if err != nil {
		return nil, err
	}
	out := make([]control.DeadLetter, 0, len(list))
	for _, d := range list {
		out = append(out, control.DeadLetter{ID: d.ID, Subject: d.Subject, Enqueued: d.Enqueued, Died: d.Died,
			Attempts: d.Attempts, LastError: d.LastError, Headers: d.Headers, Payload: d.Payload})
	}
	return out, nil
}

// Redrive moves every dead letter of queue name back into the queue
// (control.Queuer).
func (n *Node) Redrive(name string) (int, error) {
	store := n.queueStore()
	if store == nil {
		return 0, message.Errorf(abi.StatusNoHandler, "no queue %q on this host", name)
	}
	return store.Redrive(name)
}

// PurgeDead deletes every dead letter of queue name (control.Queuer).
func (n *Node) PurgeDead(name string) (int, error) {
	store := n.queueStore()
	if store == nil {
		return 0, message.Errorf(abi.StatusNoHandler, "no queue %q on this host", name)
	}
	return store.PurgeDead(name)
}
