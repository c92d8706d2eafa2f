package plugin

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Plugin is a named plugin whose current Version can be swapped while it
// serves. It is what the router sees (it implements router.Endpoint).
type Plugin struct {
	name string
	cur  atomic.Pointer[Version]

	mu      sync.Mutex // serialises Swap and the bookkeeping below
	lastErr string
	retired struct{ calls, errors, restarts uint64 }
}

// New returns a plugin serving v.
func New(name string, v *Version) *Plugin {
	p := &Plugin{name: name}
	p.cur.Store(v)
	return p
}

// Name is the plugin's configured name.
func (p *Plugin) Name() string { return p.name }

// Current returns the version serving now.
func (p *Plugin) Current() *Version { return p.cur.Load() }

// Swap makes v the serving version at once and drains the old one in the
// background: messages it accepted finish on it, new ones go to v. The
// returned channel closes when the old version is fully closed.
func (p *Plugin) Swap(v *Version) <-chan struct{} {
	p.mu.Lock()
	old := p.cur.Swap(v)
	p.lastErr = ""
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if old != nil {
			old.Close()
			p.mu.Lock()
			p.retired.calls += old.calls.Load()
			p.retired.errors += old.errors.Load()
			p.retired.restarts += old.restarts.Load()
			p.mu.Unlock()
		}
	}()
	return done
}

// SetError records why the last attempt to load a new version failed; the
// current version keeps serving. Swap clears it.
func (p *Plugin) SetError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.lastErr = ""
		return
	}
	p.lastErr = err.Error()
}

// Stats is a snapshot of a plugin's counters across all its versions.
type Stats struct {
	Calls, Errors, Restarts uint64
	Busy                    int
	LastError               string
}

// Stats returns the plugin's counters.
func (p *Plugin) Stats() Stats {
	v := p.cur.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Calls:     p.retired.calls + v.calls.Load(),
		Errors:    p.retired.errors + v.errors.Load(),
		Restarts:  p.retired.restarts + v.restarts.Load(),
		Busy:      v.Busy(),
		LastError: p.lastErr,
	}
}

// Request delivers a request to the current version and waits for the reply.
func (p *Plugin) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	for range 8 {
		reply, err := p.cur.Load().Request(ctx, m)
		if !errors.Is(err, errRetired) {
			return reply, err
		}
		// A swap happened between loading the pointer and queueing: the new
		// version is already in place, so the retry goes there.
	}
	return nil, message.Errorf(abi.StatusBusy, "plugin %q is being replaced", p.name)
}

// Post queues a send or event on the current version.
func (p *Plugin) Post(m *message.Message) error {
	for range 8 {
		err := p.cur.Load().Post(m)
		if !errors.Is(err, errRetired) {
			return err
		}
	}
	return message.Errorf(abi.StatusBusy, "plugin %q is being replaced", p.name)
}

// Close closes the current version after it drains.
func (p *Plugin) Close() {
	if v := p.cur.Load(); v != nil {
		v.Close()
	}
}
