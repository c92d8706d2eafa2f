package node

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Handler answers requests in Go, inside the process that embeds the node:
// the plain-Go counterpart of a handler plugin. It runs without the
// plugin sandbox: nothing stops it at its deadline, so it must honour ctx
// and m.Deadline itself. The reply is the returned bytes; an error made
// with message.Errorf carries its status to the caller.
type Handler func(ctx context.Context, m *message.Message) ([]byte, error)

// maxGoSends bounds the one-way sends a Go handler runs at once; more are
// refused with StatusBusy, as a plugin's full queue refuses them.
const maxGoSends = 1024

// Serve makes h the handler of services on this node, next to the
// configured plugins: requests from this host and from its peers reach it
// as they reach a plugin, and peers learn that this host serves them. It
// is listed under the owner "go:NAME", which no configured plugin can
// have; a service some other owner serves already is refused. A one-way
// send runs h on a goroutine of its own (at most 1024 at once). stop
// removes the routes; requests under way finish.
func (n *Node) Serve(name string, services []string, h Handler) (stop func(), err error) {
	if h == nil {
		return nil, fmt.Errorf("serve %q: nil handler", name)
	}
	owner := "go:" + name
	ep := &goEndpoint{name: owner, h: h}
	if err := n.router.SetRoutes(owner, ep, services, nil); err != nil {
		return nil, fmt.Errorf("serve %q: %w", name, err)
	}
	return func() { n.router.SetRoutes(owner, nil, nil, nil) }, nil
}

// goEndpoint is a Handler as a router endpoint.
type goEndpoint struct {
	name  string
	h     Handler
	sends atomic.Int64 // sends running
}

func (e *goEndpoint) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	return e.h(ctx, m)
}

// TryRequest runs the handler at once: a Go handler never waits for an
// instance, so the mesh may run it on the link's reader (which bounds how
// long one may hold the reader).
func (e *goEndpoint) TryRequest(ctx context.Context, m *message.Message) ([]byte, bool, error) {
	out, err := e.h(ctx, m)
	return out, true, err
}

func (e *goEndpoint) Post(m *message.Message) error {
	if e.sends.Add(1) > maxGoSends {
		e.sends.Add(-1)
		return message.Errorf(abi.StatusBusy, "%s is busy: %d sends running", e.name, maxGoSends)
	}
	go func() {
		defer e.sends.Add(-1)
		ctx := context.Background()
		if !m.Deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, m.Deadline)
			defer cancel()
		}
		e.h(ctx, m)
	}()
	return nil
}
