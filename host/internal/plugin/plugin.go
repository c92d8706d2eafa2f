package plugin

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// Plugin is a named plugin whose current Version can be swapped while it
// serves. It is what the router sees (it implements router.Endpoint).
//
// A new .wasm file and a changed config (limits, instances, grants, plugin
// config) are both a new Version swapped in here, so the plugin, its routes
// and its counters stay the same object across every reload.
type Plugin struct {
	name   string
	cur    atomic.Pointer[Version]
	closed atomic.Bool

	mu       sync.Mutex // serialises Swap and Close with the bookkeeping below
	lastErr  string
	draining []*Version // swapped out, still finishing what they accepted
	retired  counts     // totals of the versions fully drained
	drains   sync.WaitGroup
}

// counts are the counters of one or more versions.
type counts struct {
	calls, errors, restarts uint64
	failures                [abi.MaxStatus + 1]uint64 // a codec's, by status
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
// background: messages it accepted finish on it, new ones go to v. It
// clears the error SetError recorded. The returned channel closes when the
// old version is fully closed. On a closed plugin v is closed instead.
func (p *Plugin) Swap(v *Version) <-chan struct{} {
	done := make(chan struct{})
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		go func() { defer close(done); v.Close() }()
		return done
	}
	old := p.cur.Swap(v)
	p.lastErr = ""
	if old != nil {
		p.draining = append(p.draining, old)
	}
	p.drains.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.drains.Done()
		defer close(done)
		if old == nil {
			return
		}
		old.Close()
		// Its counters are final now; moving them to retired and dropping
		// the version from draining is one step under mu, so Stats never
		// sees them twice or not at all.
		c := old.counts()
		p.mu.Lock()
		p.retired.calls += c.calls
		p.retired.errors += c.errors
		p.retired.restarts += c.restarts
		for i, n := range c.failures {
			p.retired.failures[i] += n
		}
		p.draining = slices.DeleteFunc(p.draining, func(x *Version) bool { return x == old })
		p.mu.Unlock()
	}()
	return done
}

// SetError records why the last attempt to load a new version failed; the
// current version keeps serving. Swap, or SetError(nil), clears it.
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
// Calls, Errors and Restarts never decrease over the plugin's life, swaps
// included, and Errors never exceeds Calls.
type Stats struct {
	Calls, Errors, Restarts uint64
	Busy                    int
	LastError               string
	// Failures counts a codec's failed conversions by status (only the
	// statuses that occurred); Calls counts its conversions.
	Failures map[abi.Status]uint64
}

// Stats returns the plugin's counters: the retired versions', the draining
// ones' and the current one's.
func (p *Plugin) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.cur.Load()
	c := p.retired
	busy := 0
	add := func(x *Version) {
		xc := x.counts()
		c.calls += xc.calls
		c.errors += xc.errors
		c.restarts += xc.restarts
		for i, n := range xc.failures {
			c.failures[i] += n
		}
		busy += x.Busy()
	}
	for _, x := range p.draining {
		add(x)
	}
	add(v)
	st := Stats{Calls: c.calls, Errors: c.errors, Restarts: c.restarts, Busy: busy, LastError: p.lastErr}
	for i, n := range c.failures {
		if n > 0 {
			if st.Failures == nil {
				st.Failures = map[abi.Status]uint64{}
			}
			st.Failures[abi.Status(i)] = n
		}
	}
	return st
}

// counts reads v's counters. Errors is read before calls: every error is
// counted after its call, so the pair never shows more errors than calls.
func (v *Version) counts() counts {
	var c counts
	for i := range v.failures {
		c.failures[i] = v.failures[i].Load()
	}
	c.errors = v.errors.Load()
	c.restarts = v.restarts.Load()
	c.calls = v.calls.Load()
	return c
}

// Request delivers a request to the current version and waits for the reply.
// After Close it returns router.ErrGone, so the router routes the message
// again (to whichever owner serves the subject now).
func (p *Plugin) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	for range 8 {
		reply, err := p.cur.Load().Request(ctx, m)
		if !errors.Is(err, errRetired) {
			return reply, err
		}
		if p.closed.Load() {
			return nil, router.ErrGone
		}
		// A swap happened between loading the pointer and queueing: the new
		// version is already in place, so the retry goes there.
	}
	return nil, message.Errorf(abi.StatusBusy, "plugin %q is being replaced", p.name)
}

// TryRequest runs a request on the current version when an instance is
// idle; ok false means it did nothing (none idle, or a swap under way) and
// the caller should use Request (router.TryRequester).
func (p *Plugin) TryRequest(ctx context.Context, m *message.Message) (reply []byte, ok bool, err error) {
	return p.cur.Load().TryRequest(m)
}

// Post queues a send or event on the current version; router.ErrGone after
// Close.
func (p *Plugin) Post(m *message.Message) error {
	for range 8 {
		err := p.cur.Load().Post(m)
		if !errors.Is(err, errRetired) {
			return err
		}
		if p.closed.Load() {
			return router.ErrGone
		}
	}
	return message.Errorf(abi.StatusBusy, "plugin %q is being replaced", p.name)
}

// Close stops accepting messages, lets the current version and every
// draining one finish what they accepted, and frees them.
func (p *Plugin) Close() {
	p.mu.Lock()
	p.closed.Store(true)
	v := p.cur.Load()
	p.mu.Unlock()
	if v != nil {
		v.Close()
	}
	p.drains.Wait()
}
