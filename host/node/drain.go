package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/message"
)

// A graceful stop is a drain, then Close. Drain refuses new work that
// comes from outside the node (the control API and transport plugins) with
// busy, tells the mesh peers that this node leaves (its last membership
// record, marked left, and GoAway on every link: they drop its routes and
// send it no new requests), and waits for the work in flight: the calls
// and sends taken in before the drain, which the node counts, and the
// requests on the mesh links in either direction, which the links count.
// Calls a handler makes while it serves in-flight work are part of that
// work and are not refused.

// drainPoll is how often Drain looks at the count of work in flight.
const drainPoll = 5 * time.Millisecond

// admit counts one piece of new work from outside the node, or refuses it
// with busy while the node drains. The caller calls done when the work
// has returned.
func (n *Node) admit(verb, subject string) (done func(), err error) {
	// Counting before looking at draining pairs with Drain, which sets
	// draining before it reads the count: a call either sees draining or
	// is seen by Drain (sequentially consistent atomics).
	n.inflight.Add(1)
	if n.draining.Load() {
		n.inflight.Add(-1)
		return nil, message.Errorf(abi.StatusBusy, "node %s is draining (stopping): no new %s accepted (%s)", n.name, verb, subject)
	}
	return func() { n.inflight.Add(-1) }, nil
}

// Draining reports whether Drain has begun: the node refuses new work and
// reports not ready.
func (n *Node) Draining() bool { return n.draining.Load() }

// DrainTimeout is the applied config's drain_timeout: how long a stop
// should let Drain run.
func (n *Node) DrainTimeout() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg.DrainTimeout
}

// Drain begins a graceful stop: new calls, sends, events and
// subscriptions from the control API and from transport plugins are
// refused with busy ("draining"), the node reports not ready, config
// reloads are refused, and the mesh peers are told that this node leaves.
// It then waits until the work in flight has finished or ctx ends. It
// returns nil when everything finished, or an error saying what was still
// in flight when ctx ended. Either way the node takes no new work
// afterwards; Close stops it (a Close while Drain runs cuts the drain
// short). A second Drain returns an error at once.
func (n *Node) Drain(ctx context.Context) error {
	if n.draining.Swap(true) {
		return errors.New("node is draining already")
	}
	timeout := "none"
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl).Round(time.Millisecond).String()
	}
	n.logger.Info("draining: new work is refused, peers are told this node leaves", "node", n.name,
		"in_flight", n.inflight.Load(), "timeout", timeout)
	n.notify(sdStopping)
	meshErr := make(chan error, 1)
	go func() { meshErr <- n.leaveMesh(ctx) }()

	start := time.Now()
	var errs []error
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for n.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%d call(s) or send(s) still in flight: %w", n.inflight.Load(), ctx.Err()))
		case <-t.C:
			continue
		}
		break
	}
	if err := <-meshErr; err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		n.logger.Warn("drain incomplete: work in flight is cut off", "node", n.name, "err", err)
		return fmt.Errorf("drain of node %s after %v: %w", n.name, time.Since(start).Round(time.Millisecond), err)
	}
	n.logger.Info("drained: no work in flight", "node", n.name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// leaveMesh stops mDNS (which says goodbye) and closes the mesh, which
// tells the peers and waits for the links' requests until ctx ends.
func (n *Node) leaveMesh(ctx context.Context) error {
	n.mdnsMu.Lock()
	mdns := n.mdns
	n.mdns = nil
	n.mdnsMu.Unlock()
	if mdns != nil {
		mdns.Close()
	}
	if n.mesh == nil {
		return nil
	}
	return n.mesh.Close(ctx)
}

// gate is the host of transport plugins: the router behind the node's
// admission, so that a transport's apps get busy during a drain as the
// control API's clients do, and their calls in flight are waited for.
type gate struct{ n *Node }

var _ plugin.Host = gate{}

func (g gate) Call(ctx context.Context, m *message.Message) ([]byte, error) {
	done, err := g.n.admit("calls", m.Subject)
	if err != nil {
		return nil, err
	}
	defer done()
	return g.n.router.Call(ctx, m)
}

func (g gate) Send(ctx context.Context, m *message.Message) error {
	done, err := g.n.admit("sends", m.Subject)
	if err != nil {
		return err
	}
	defer done()
	return g.n.router.Send(ctx, m)
}

func (g gate) Publish(ctx context.Context, m *message.Message) (int, error) {
	done, err := g.n.admit("events", m.Subject)
	if err != nil {
		return 0, err
	}
	defer done()
	return g.n.router.Publish(ctx, m)
}
