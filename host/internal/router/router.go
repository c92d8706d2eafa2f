// Package router routes messages inside one host: requests and one-way sends
// to the single owner of the longest matching service, and events to every
// endpoint and local subscription whose topic pattern matches.
//
// An owner is whatever serves routes under one name — a loaded plugin, the
// control API, later a remote node — and is reached through an Endpoint.
//
// Routing is on the path of every message, so the routing tables are
// immutable snapshots behind atomic pointers: a lookup takes no lock and
// allocates nothing, and a change (SetRoutes, Remove, Subscribe, Close)
// builds a new snapshot under a mutex and swaps it in. Changes are rare
// (plugin load, reload, unload) and may cost O(routes); lookups may not.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// DefaultMaxHops is the call chain depth allowed when Options.MaxHops is not
// set.
const DefaultMaxHops = 16

// ErrGone is what an Endpoint returns for a message it did not take
// because it has been closed (a plugin removed by a reload). A lookup may
// hand a message to an owner just before a new snapshot drops it, so the
// router routes a request or send that meets ErrGone again, on the
// snapshot of the moment, instead of failing it.
var ErrGone = errors.New("endpoint is gone")

// ErrDuplicate is what Publish returns for an event whose identity (origin
// and sequence number) this host has received already, through another
// path; it delivered it to nobody. Only a router with a duplicate filter
// (EnableDedup) returns it.
var ErrDuplicate = errors.New("duplicate event: its identity was received already")

// Endpoint is one receiver of routed messages: a plugin, or later a remote
// node. Its methods are called concurrently. The router hands it the
// caller's *message.Message, which it must treat as read-only. Once closed
// it returns ErrGone (wrapped or not) instead of handling a message.
type Endpoint interface {
	// Request handles a request and returns its reply; it honours m.Deadline
	// and ctx.
	Request(ctx context.Context, m *message.Message) ([]byte, error)
	// Post enqueues a send or an event without waiting for it to be handled;
	// it returns a *message.Error with abi.StatusBusy when its queue is full.
	Post(m *message.Message) error
}

// TryRequester is an Endpoint that can also handle a request only if it
// can start at once (a free instance); ok false means it did nothing.
type TryRequester interface {
	TryRequest(ctx context.Context, m *message.Message) (reply []byte, ok bool, err error)
}

// Options configure a Router.
type Options struct {
	// MaxHops is the deepest call chain a message may have travelled
	// (message.Message.Hops) and still be routed. 0 means DefaultMaxHops.
	MaxHops int
	// Logger receives route changes and dropped events. Nil means
	// slog.Default().
	Logger *slog.Logger
	// OnChange, when set, is called after every change of what this host
	// serves: Update, SetRoutes, Remove, Subscribe and a subscription's
	// Close (once per call, however many owners an Update changes). It
	// runs on the goroutine that made the change, after the change is
	// visible, so it must not block (the mesh uses it to schedule an
	// interest advertisement).
	OnChange func()
	// Observe, when set, returns the observer of the requests a local
	// owner handles for one of its services; the router asks once per
	// (owner, service) each time its routes are rebuilt, never per call,
	// so the observer should be looked up or made there. Requests handed
	// to a Remote go to ObserveRemote instead: their subject is whatever
	// a caller wrote, not a service this host declared.
	Observe func(owner, service string) CallObserver
	// ObserveRemote, when set, is told how each request handed to the
	// Remote ended: all of them together, as their subjects are the
	// callers' to choose.
	ObserveRemote CallObserver
}

// CallObserver is told how each request a local owner handled ended: when
// it started, and its error (nil for a reply). It runs on the caller's
// goroutine, after the reply, so it must be cheap and must not block.
type CallObserver interface {
	Observe(start time.Time, err error)
}

// Remote reaches the owners on other hosts. The router hands it what no
// local owner serves, and every event published on this host, but only for
// messages that originated here (message.Message.FromNode is "") and are not
// addressed to this host alone (message.Message.Local): a message that
// arrived from another host is delivered locally or not at all, so a
// message never travels on from the host that received it.
type Remote interface {
	// Call sends a request to a remote provider of m.Subject and returns
	// its reply; a *message.Error with abi.StatusNoHandler when no host
	// serves it.
	Call(ctx context.Context, m *message.Message) ([]byte, error)
	// Send hands a one-way message to a remote provider.
	Send(ctx context.Context, m *message.Message) error
	// Publish fans an event out to every remote host with a matching
	// interest and returns how many accepted it; it never blocks.
	Publish(m *message.Message) int
}

// Route is what one owner serves.
type Route struct {
	Owner    string
	Services []string // sorted
	Topics   []string // sorted
}

// Stats are the router's counters since New.
type Stats struct {
	Calls     uint64 // requests handed to an endpoint
	Sends     uint64 // one-way sends handed to an endpoint
	Published uint64 // valid events published
	Delivered uint64 // event copies accepted by an endpoint or subscription
	Dropped   uint64 // event copies refused: endpoint busy or subscription buffer full
	NoHandler uint64 // requests and sends nobody serves
	// Duplicates counts events from other hosts dropped because their
	// identity had been received already (EnableDedup), whichever path
	// (mesh or transport) brought the copy.
	Duplicates uint64
}

// Router routes messages between the owners registered with SetRoutes and
// the local subscriptions registered with Subscribe. It is safe for
// concurrent use.
type Router struct {
	maxHops int
	log     *slog.Logger

	// mu serialises writers so that each builds on the latest snapshot;
	// readers only load the pointers.
	mu     sync.Mutex
	tab    atomic.Pointer[table]
	subs   atomic.Pointer[[]*Subscription]
	remote atomic.Pointer[remoteBox]

	onChange      func()
	observe       func(owner, service string) CallObserver
	observeRemote CallObserver

	// seq numbers the events that originate on this host (their
	// identity, with this host's node id).
	seq atomic.Uint64
	// dedup, once a host has a transport, drops events it received
	// already through another path; nil skips it.
	dedup atomic.Pointer[Dedup]

	calls, sends, published, delivered, dropped, noHandler, duplicates atomic.Uint64
}

// entry is one owner's immutable registration.
type entry struct {
	name     string
	ep       Endpoint
	services []string // sorted, unique
	topics   []string // sorted, unique
}

// table is one immutable routing snapshot.
type table struct {
	owners   map[string]*entry
	services map[string]*served
	// depth is the most tokens any service has; lookup never probes a
	// longer prefix, so a long subject costs no more probes than that.
	depth int
	// listeners are the owners with at least one topic pattern, sorted by
	// name so that fan-out order is deterministic.
	listeners []*entry
}

// New returns an empty Router.
func New(opts Options) *Router {
	r := &Router{maxHops: opts.MaxHops, log: opts.Logger, onChange: opts.OnChange, observe: opts.Observe, observeRemote: opts.ObserveRemote}
	r.seq.Store(randomStart())
	if r.maxHops <= 0 {
		r.maxHops = DefaultMaxHops
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.tab.Store(build(map[string]*entry{}, nil))
	r.subs.Store(&[]*Subscription{})
	return r
}

// build indexes a set of owners into a snapshot. The map is owned by the
// result afterwards.
func build(owners map[string]*entry, observe func(owner, service string) CallObserver) *table {
	t := &table{owners: owners, services: map[string]*served{}}
	for _, o := range owners {
		for _, s := range o.services {
			sv := &served{e: o}
			if observe != nil {
				sv.obs = observe(o.name, s)
			}
			t.services[s] = sv
			if n := strings.Count(s, ".") + 1; n > t.depth {
				t.depth = n
			}
		}
		if len(o.topics) > 0 {
			t.listeners = append(t.listeners, o)
		}
	}
	slices.SortFunc(t.listeners, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	return t
}

// served is a service's owner and the observer of its requests (nil when
// none).
type served struct {
	e   *entry
	obs CallObserver
}

// lookup returns the owner of the longest service that serves s, trying the
// proper prefixes of s that end at a '.', deepest first; nil when none does.
func (t *table) lookup(s string) *served {
	v, _ := abi.LongestService(t.services, t.depth, s)
	return v
}

// Change is one owner's part of an Update: Endpoint serves Services and
// Topics from now on, replacing whatever Owner served before. A nil
// Endpoint with no services and no topics removes Owner.
type Change struct {
	Owner    string
	Endpoint Endpoint
	Services []string
	Topics   []string
}

// SetRoutes atomically replaces everything owner serves with ep serving the
// given services and topic patterns: a concurrent Call, Send or Publish sees
// either the old routes or the new ones, never a mix. Duplicates are
// ignored. Every service must be a valid subject and every topic a valid
// pattern; a service already served by another owner is refused. On error
// nothing changes. A nil ep with no services and no topics is Remove.
func (r *Router) SetRoutes(owner string, ep Endpoint, services, topics []string) error {
	return r.Update(Change{Owner: owner, Endpoint: ep, Services: services, Topics: topics})
}

// Remove drops everything owner serves. Removing an unknown owner does
// nothing. Messages already handed to its endpoint are not affected.
func (r *Router) Remove(owner string) {
	if owner == "" {
		return
	}
	_ = r.Update(Change{Owner: owner}) // a removal cannot fail
}

// Update applies every change as one new routing snapshot: a concurrent
// Call, Send or Publish sees the routes from before the Update or from
// after it, never a state in between. That is what lets a config reload
// move a service from one plugin to another, and add and remove plugins,
// without a moment where a service has no owner. Each change is checked
// as SetRoutes checks it, and no service may have two owners in the
// result; on error nothing changes. An owner may appear once per Update.
func (r *Router) Update(changes ...Change) error {
	type prepared struct {
		Change
		svcs, tops []string
	}
	list := make([]prepared, 0, len(changes))
	seen := map[string]bool{}
	for _, c := range changes {
		if c.Owner == "" {
			return fmt.Errorf("set routes: owner name is empty")
		}
		if seen[c.Owner] {
			return fmt.Errorf("set routes for %q: the owner appears twice in one update", c.Owner)
		}
		seen[c.Owner] = true
		if c.Endpoint == nil && (len(c.Services) > 0 || len(c.Topics) > 0) {
			return fmt.Errorf("set routes for %q: endpoint is nil but %d services and %d topics are given",
				c.Owner, len(c.Services), len(c.Topics))
		}
		svcs, err := normalise(c.Services, "services", abi.ValidateSubject)
		if err != nil {
			return fmt.Errorf("set routes for %q: %w", c.Owner, err)
		}
		tops, err := normalise(c.Topics, "topics", abi.ValidatePattern)
		if err != nil {
			return fmt.Errorf("set routes for %q: %w", c.Owner, err)
		}
		list = append(list, prepared{c, svcs, tops})
	}

	r.mu.Lock()
	old := r.tab.Load()
	owners := maps.Clone(old.owners)
	changed := false
	for _, c := range list {
		if c.Endpoint == nil {
			if _, ok := owners[c.Owner]; ok {
				delete(owners, c.Owner)
				changed = true
			}
			continue
		}
		owners[c.Owner] = &entry{name: c.Owner, ep: c.Endpoint, services: c.svcs, topics: c.tops}
		changed = true
	}
	// Every service has one owner in the result. Owners left as they were
	// claim theirs first, so an error names the owner already serving.
	served := map[string]string{}
	for name, o := range owners {
		if !seen[name] {
			for _, s := range o.services {
				served[s] = name
			}
		}
	}
	for _, c := range list {
		if c.Endpoint == nil {
			continue
		}
		for _, s := range c.svcs {
			if o, ok := served[s]; ok && o != c.Owner {
				r.mu.Unlock()
				return fmt.Errorf("set routes for %q: service %q is already served by %q", c.Owner, s, o)
			}
			served[s] = c.Owner
		}
	}
	if !changed {
		r.mu.Unlock()
		return nil
	}
	r.tab.Store(build(owners, r.observe))
	r.mu.Unlock()
	for _, c := range list {
		if c.Endpoint == nil {
			if _, ok := old.owners[c.Owner]; ok {
				r.log.Info("routes removed", "owner", c.Owner)
			}
			continue
		}
		r.log.Info("routes set", "owner", c.Owner, "services", c.svcs, "topics", c.tops)
	}
	r.changed()
	return nil
}

// normalise validates a list from SetRoutes and returns a sorted copy
// without duplicates; errors name the list and index ("services[2]: ...")
// the way config errors do.
func normalise(in []string, list string, valid func(string) error) ([]string, error) {
	for i, s := range in {
		if err := valid(s); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", list, i, err)
		}
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Routes returns what every owner serves, sorted by owner. The slices are
// copies the caller may keep.
func (r *Router) Routes() []Route {
	t := r.tab.Load()
	out := make([]Route, 0, len(t.owners))
	for _, o := range t.owners {
		out = append(out, Route{Owner: o.name, Services: slices.Clone(o.services), Topics: slices.Clone(o.topics)})
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Owner, b.Owner) })
	return out
}

// Call routes a request to the owner of the longest service serving
// m.Subject and returns its endpoint's reply or error unchanged. It refuses,
// with a *message.Error, an invalid subject (StatusInvalid), a call chain
// deeper than MaxHops (StatusInvalid), a deadline that has already passed or
// a ctx that is already done (StatusTimeout) and a subject nobody serves
// (StatusNoHandler). It modifies nothing in m: the caller sets Kind,
// Deadline and Hops.
func (r *Router) Call(ctx context.Context, m *message.Message) ([]byte, error) {
	for range maxGone {
		o, start, rm, err := r.route(ctx, m, "call")
		if err != nil {
			return nil, err
		}
		if rm != nil {
			r.calls.Add(1)
			if r.observeRemote == nil {
				return rm.Call(ctx, m)
			}
			start := time.Now()
			reply, err := rm.Call(ctx, m)
			r.observeRemote.Observe(start, err)
			return reply, err
		}
		reply, err := o.e.ep.Request(ctx, m)
		if !errors.Is(err, ErrGone) {
			r.calls.Add(1)
			if o.obs != nil {
				o.obs.Observe(start, err)
			}
			return reply, err
		}
	}
	return nil, r.goneTooOften(m, "call")
}

// TryCall is Call for a caller that must not wait for a handler (the
// mesh's link reader, which would stop reading meanwhile): it handles m at
// once when its local owner can start it without waiting, and otherwise
// does nothing and reports ok false, and the caller uses Call. A routing
// error (invalid subject, no handler, deadline passed) is an answer too:
// it comes with ok true.
func (r *Router) TryCall(ctx context.Context, m *message.Message) (reply []byte, ok bool, err error) {
	o, start, rm, err := r.route(ctx, m, "call")
	if err != nil {
		return nil, true, err
	}
	if rm != nil {
		return nil, false, nil
	}
	tr, can := o.e.ep.(TryRequester)
	if !can {
		return nil, false, nil
	}
	reply, ok, err = tr.TryRequest(ctx, m)
	if !ok || errors.Is(err, ErrGone) {
		return nil, false, nil
	}
	r.calls.Add(1)
	if o.obs != nil {
		o.obs.Observe(start, err)
	}
	return reply, true, err
}

// maxGone bounds how often one message is routed again after meeting a
// closed endpoint; each retry reads the snapshot of the moment, so more
// than one is already a reload racing another.
const maxGone = 8

func (r *Router) goneTooOften(m *message.Message, verb string) error {
	r.noHandler.Add(1)
	return message.Errorf(abi.StatusNoHandler, "no handler for %q: %d owners in a row went away while the %s was routed",
		m.Subject, maxGone, verb)
}

// Send routes a one-way message like Call but hands it to the endpoint's
// Post and does not wait for it to be handled. Besides Call's errors it
// returns the endpoint's Post error (StatusBusy when its queue is full).
func (r *Router) Send(ctx context.Context, m *message.Message) error {
	for range maxGone {
		o, _, rm, err := r.route(ctx, m, "send")
		if err != nil {
			return err
		}
		if rm != nil {
			r.sends.Add(1)
			return rm.Send(ctx, m)
		}
		if err := o.e.ep.Post(m); !errors.Is(err, ErrGone) {
			r.sends.Add(1)
			return err
		}
	}
	return r.goneTooOften(m, "send")
}

// route finds the local owner for a request or send, else the Remote to
// hand it to, else the error to return.
//
// start is when routing began, set only when the owner has an observer:
// the deadline check's clock reading where there is one, so that
// observing costs no clock read of its own at the start.
func (r *Router) route(ctx context.Context, m *message.Message, verb string) (o *served, start time.Time, rm Remote, err error) {
	if err := abi.ValidateSubject(m.Subject); err != nil {
		return nil, time.Time{}, nil, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	if m.Hops > r.maxHops {
		return nil, time.Time{}, nil, r.tooDeep(m)
	}
	var left time.Duration
	if !m.Deadline.IsZero() {
		// time.Until reads only the monotonic clock when the deadline has a
		// monotonic reading, which halves the cost of the check.
		if left = time.Until(m.Deadline); left <= 0 {
			return nil, time.Time{}, nil, message.Errorf(abi.StatusTimeout, "%s %q: deadline passed %v before it was routed",
				verb, m.Subject, -left)
		}
	}
	// Done() is a lock-free load on the standard contexts, unlike Err().
	select {
	case <-ctx.Done():
		return nil, time.Time{}, nil, message.Errorf(abi.StatusTimeout, "%s %q: %v before it was routed", verb, m.Subject, ctx.Err())
	default:
	}
	t := r.tab.Load()
	if o := t.lookup(m.Subject); o != nil {
		if o.obs != nil {
			if m.Deadline.IsZero() {
				start = time.Now()
			} else {
				// The instant time.Until read, with its monotonic reading
				// when the deadline has one.
				start = m.Deadline.Add(-left)
			}
		}
		return o, start, nil, nil
	}
	if rm := r.remoteFor(m); rm != nil {
		return nil, time.Time{}, rm, nil
	}
	r.noHandler.Add(1)
	if o := t.services[m.Subject]; o != nil {
		return nil, time.Time{}, nil, message.Errorf(abi.StatusNoHandler,
			"no handler for %q: it is a service of %q, a subject needs a method (%q)",
			m.Subject, o.e.name, m.Subject+".<method>")
	}
	return nil, time.Time{}, nil, message.Errorf(abi.StatusNoHandler, "no handler for %q", m.Subject)
}

// remoteBox lets a Remote interface value sit behind an atomic pointer.
type remoteBox struct{ Remote }

// SetRemote connects the router to other hosts; nil disconnects it.
func (r *Router) SetRemote(rm Remote) {
	if rm == nil {
		r.remote.Store(nil)
		return
	}
	r.remote.Store(&remoteBox{rm})
}

// remoteFor returns the Remote for m, or nil when m came from another host,
// must stay on this one, or there is no Remote.
func (r *Router) remoteFor(m *message.Message) Remote {
	if m.FromNode != "" || m.Local {
		return nil
	}
	if b := r.remote.Load(); b != nil {
		return b.Remote
	}
	return nil
}

// changed reports a change of what this host serves to Options.OnChange.
func (r *Router) changed() {
	if r.onChange != nil {
		r.onChange()
	}
}

// Interest returns what this host serves, for advertising to other hosts:
// every owner's services, and the topic patterns of every owner and open
// subscription, each sorted and without duplicates.
func (r *Router) Interest() (services, topics []string) {
	t := r.tab.Load()
	for _, o := range t.owners {
		services = append(services, o.services...)
		topics = append(topics, o.topics...)
	}
	for _, s := range *r.subs.Load() {
		topics = append(topics, s.pattern)
	}
	slices.Sort(services)
	slices.Sort(topics)
	return slices.Compact(services), slices.Compact(topics)
}

func (r *Router) tooDeep(m *message.Message) error {
	return message.Errorf(abi.StatusInvalid, "call chain too deep (%d hops > %d): %q", m.Hops, r.maxHops, m.Subject)
}

// EnableDedup turns the duplicate filter on (it stays on): from now on an
// event from another host (FromNode set) whose identity (FromNode, Seq)
// was published here already is dropped, and Publish returns ErrDuplicate
// for it. A host turns it on once it has a transport: then an event can
// reach it by two paths. Without one every event has a single path (the
// mesh carries an event once) and the filter would only cost.
func (r *Router) EnableDedup() {
	r.dedup.CompareAndSwap(nil, NewDedup())
}

// Publish fans the event m out to every endpoint with a topic pattern
// matching m.Subject (one Post per endpoint, however many of its patterns
// match), to every open Subscription whose pattern matches and, for an
// event that originated on this host, to the Remote; it returns how many of
// them accepted it (a remote host counts once).
//
// An event that originates here (FromNode "" and Seq 0) gets the next
// number of this host in m.Seq: its identity, with this host's node id,
// that the mesh and transports carry so that a host reached by two paths
// drops the second copy. So Publish writes m.Seq of such a message: hand
// it a fresh Message per event. An event from another host whose
// identity was received already is dropped and counted, with
// ErrDuplicate (EnableDedup).
//
// Pub/sub is at-most-once: an endpoint that refuses the event (busy) or a
// subscription whose buffer is full counts as a drop in Stats, and Publish
// neither blocks nor fails because of it. With no matching receiver it
// returns 0, nil. It fails only for an invalid topic (wildcards are not
// allowed) or an event chain deeper than MaxHops, both StatusInvalid.
//
// ctx is not consulted: local delivery never waits. A remote host's link
// that is congested makes the publisher wait for room until m.Deadline,
// when it has one (see mesh.Mesh.Publish); without one the event is
// dropped there at once.
func (r *Router) Publish(ctx context.Context, m *message.Message) (int, error) {
	topic := m.Subject
	if err := abi.ValidateSubject(topic); err != nil {
		return 0, &message.Error{Status: abi.StatusInvalid, Msg: err.Error()}
	}
	// A handler that publishes what it subscribes to would loop forever.
	if m.Hops > r.maxHops {
		return 0, r.tooDeep(m)
	}
	if m.FromNode == "" {
		if m.Seq == 0 {
			m.Seq = r.nextSeq()
		}
	} else if d := r.dedup.Load(); d != nil && !d.Accept(m.FromNode, m.Seq) {
		r.duplicates.Add(1)
		return 0, ErrDuplicate
	}
	r.published.Add(1)
	var accepted, dropped uint64
	for _, o := range r.tab.Load().listeners {
		if !abi.MatchAny(o.topics, topic) {
			continue
		}
		if err := o.ep.Post(m); err != nil {
			if errors.Is(err, ErrGone) {
				continue // removed meanwhile: no longer a subscriber
			}
			dropped++
			r.log.Debug("event dropped", "topic", topic, "owner", o.name, "err", err)
			continue
		}
		accepted++
	}
	for _, s := range *r.subs.Load() {
		if !abi.Match(s.pattern, topic) {
			continue
		}
		switch s.deliver(m) {
		case delivered:
			accepted++
		case full:
			dropped++
		}
	}
	if rm := r.remoteFor(m); rm != nil {
		accepted += uint64(rm.Publish(m))
	}
	if accepted > 0 {
		r.delivered.Add(accepted)
	}
	if dropped > 0 {
		r.dropped.Add(dropped)
	}
	return int(accepted), nil
}

// nextSeq returns the next event number of this host, never 0 (no
// identity).
func (r *Router) nextSeq() uint64 {
	if n := r.seq.Add(1); n != 0 {
		return n
	}
	return r.seq.Add(1)
}

// Stats returns the router's counters. Each counter is read atomically;
// together they are not one consistent snapshot.
func (r *Router) Stats() Stats {
	return Stats{
		Calls:     r.calls.Load(),
		Sends:     r.sends.Load(),
		Published: r.published.Load(),
		Delivered: r.delivered.Load(),
		Dropped:   r.dropped.Load(),
		NoHandler: r.noHandler.Load(),

		Duplicates: r.duplicates.Load(),
	}
}
