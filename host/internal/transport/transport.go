// Package transport runs transport plugins (abi/SPEC.md section 13): the
// host owns every socket of such a plugin, and the plugin is a state
// machine driven by events.
//
// A Transport dials its dial entries (tcp:// or tls://, keeping one
// connection to each up, with backoff) and accepts on its accept entries
// (tcp://, filtered by allow_from), reads and writes with per-connection
// buffer limits, and hands the plugin one event at a time per instance.
// Each instance has one goroutine (its slot) that runs its events in
// order; every connection is pinned to one slot for its life. The
// instances, their deadlines, memory caps and replacement after a trap
// are host/internal/plugin's (Engine.LoadTransport, Version.Event).
//
// To the router a Transport is an Endpoint: the requests, sends and events
// of the services and topics it carries become message events, and the
// plugin answers requests with the respond action.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/message"
)

// Defaults of the limits a Config leaves zero; host/config documents the
// keys that set them (KEYS.md).
const (
	DefaultReadBuffer  = 64 << 10
	DefaultWriteBuffer = 1 << 20
	DefaultMaxConns    = 1024
	// MinBackoff and MaxBackoff bound the wait before a dial entry is
	// dialled again: it doubles from MinBackoff after each failure or
	// short-lived connection, up to MaxBackoff.
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
	// dialTimeout bounds one connection attempt, TLS handshake included.
	dialTimeout = 10 * time.Second
	// slotQueue bounds the events waiting for one instance; routed
	// messages beyond it fail with busy.
	slotQueue = 256
)

// Dial is one dial entry: where the host connects for the plugin.
type Dial struct {
	Raw  string // as configured, e.g. tls://broker:6380
	TLS  bool
	Addr string // host:port
}

// Config is one transport plugin to run.
type Config struct {
	// Spec is the plugin to load (name, module, instances, limits, grants,
	// plugin config).
	Spec   plugin.Spec
	Dial   []Dial
	Accept []string // host:port to accept on (tcp)
	// AllowFrom, when not nil, is every source address an accepted
	// connection may come from; others are closed at once and counted.
	AllowFrom []netip.Prefix
	// TLS is the client config for tls:// entries (its RootCAs the
	// configured CA); nil uses the system roots.
	TLS         *tls.Config
	ReadBuffer  int
	WriteBuffer int
	MaxConns    int
	// MinBackoff overrides MinBackoff (tests).
	MinBackoff time.Duration
	// Origin is this host's node id: added as abi.HeaderOrigin to every
	// message routed out (for an event from a mesh peer, that peer's id
	// instead, with abi.HeaderSeq: the event's identity), and a delivered
	// message carrying it is this host's own coming back, dropped. ""
	// turns all three off.
	Origin string
}

// Transport is one running transport plugin.
type Transport struct {
	name   string
	cfg    Config
	v      *plugin.Version
	host   plugin.Host
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  []*slot
	rr     atomic.Uint32
	ids    atomic.Uint32 // connection ids, from 1
	corrs  atomic.Uint32 // correlation ids of routed requests, from 1

	mu        sync.Mutex
	conns     map[uint32]*conn
	pending   map[uint32]*waiting // routed requests waiting for respond
	listeners []net.Listener
	closes    map[string]uint64 // closed connections by reason
	started   bool
	closed    bool

	stats counters
}

type counters struct {
	accepted, dialed, reconnects, dialErrors, refused atomic.Uint64
	bytesIn, bytesOut                                 atomic.Uint64
	messagesIn, messagesOut, dropped, ownDropped      atomic.Uint64
	duplicates                                        atomic.Uint64
	errors, instanceFailures                          atomic.Uint64
	// events and eventNanos count the plugin's events and the wall time
	// spent in them: the plugin's share of each message.
	events, eventNanos atomic.Uint64
}

// slot is one instance and the goroutine that runs its events.
type slot struct {
	i    int
	jobs chan *job
	// gen counts the instance's failures: what was scheduled for an
	// earlier generation (a timer, a reply) is dropped.
	gen atomic.Uint64

	mu      sync.Mutex
	timers  map[uint32]*time.Timer
	calls   int // deliver requests without their reply yet
	conns   int // open connections pinned here
	running bool
}

type job struct {
	ev   plugin.Event
	conn *conn  // the connection the event is about, nil for none
	gen  uint64 // the slot generation it was made for; 0: any
	done func(res int32, err error)
}

type waiting struct {
	slot *slot
	ch   chan result
}

type result struct {
	reply   []byte
	headers abi.Headers // the reply's (respond_h); nil with err
	err     error
}

// New loads the plugin of cfg and returns the transport, not yet
// connected: Start dials and listens. host receives what the plugin
// delivers.
func New(ctx context.Context, engine *plugin.Engine, cfg Config, host plugin.Host, logger *slog.Logger) (*Transport, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.WriteBuffer <= 0 {
		cfg.WriteBuffer = DefaultWriteBuffer
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = MinBackoff
	}
	t := &Transport{
		name:    cfg.Spec.Name,
		cfg:     cfg,
		host:    host,
		log:     logger.With("transport", cfg.Spec.Name),
		conns:   map[uint32]*conn{},
		pending: map[uint32]*waiting{},
		closes:  map[string]uint64{},
	}
	v, err := engine.LoadTransport(ctx, cfg.Spec, t)
	if err != nil {
		return nil, err
	}
	t.v = v
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.slots = make([]*slot, v.Slots())
	for i := range t.slots {
		t.slots[i] = &slot{i: i, jobs: make(chan *job, slotQueue), timers: map[uint32]*time.Timer{}}
		t.slots[i].gen.Store(1)
	}
	return t, nil
}

// Name is the plugin's name.
func (t *Transport) Name() string { return t.name }

// Version is the loaded plugin version.
func (t *Transport) Version() *plugin.Version { return t.v }

// Start runs the slots, listens on every accept entry and dials every dial
// entry. A listener that cannot be opened fails Start (and closes what it
// opened); a dial that fails is retried with backoff.
func (t *Transport) Start() error {
	t.mu.Lock()
	if t.started || t.closed {
		t.mu.Unlock()
		return fmt.Errorf("transport %q: already started or closed", t.name)
	}
	t.started = true
	t.mu.Unlock()
	for _, s := range t.slots {
		t.wg.Add(1)
		go t.runSlot(s)
	}
	for i, addr := range t.cfg.Accept {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Close()
			return fmt.Errorf("transport %q: accept[%d] %s: %w", t.name, i, addr, err)
		}
		t.mu.Lock()
		t.listeners = append(t.listeners, ln)
		t.mu.Unlock()
		t.wg.Add(1)
		go t.acceptLoop(i, ln)
	}
	for i := range t.cfg.Dial {
		t.wg.Add(1)
		go t.keepDialled(i)
	}
	return nil
}

// Addrs returns the addresses the accept listeners are bound to, in
// accept order (a configured port 0 shows the chosen port).
func (t *Transport) Addrs() []net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]net.Addr, len(t.listeners))
	for i, ln := range t.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// Close closes the listeners and every connection, fails waiting requests
// and unloads the plugin.
func (t *Transport) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	lns := t.listeners
	conns := make([]*conn, 0, len(t.conns))
	for _, c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	t.cancel()
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		t.closeConn(c, "shutdown", abi.StatusInternal, false, false)
	}
	for _, s := range t.slots {
		s.mu.Lock()
		for id, tm := range s.timers {
			tm.Stop()
			delete(s.timers, id)
		}
		s.mu.Unlock()
	}
	t.failPending(nil, message.Errorf(abi.StatusUnreachable, "transport %q closed", t.name))
	t.wg.Wait()
	t.v.Close()
}

// runSlot runs the events of one instance, one at a time.
func (t *Transport) runSlot(s *slot) {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			t.drainSlot(s)
			return
		case j := <-s.jobs:
			t.runJob(s, j)
		}
	}
}

// drainSlot answers what is still queued once the transport closes, so
// that no waiter waits for a slot that stopped.
func (t *Transport) drainSlot(s *slot) {
	for {
		select {
		case j := <-s.jobs:
			if j.done != nil {
				j.done(0, errClosed)
			}
		default:
			return
		}
	}
}

var errClosed = errors.New("transport closed")

func (t *Transport) runJob(s *slot, j *job) {
	if c := j.conn; c != nil {
		switch j.ev.Type {
		case abi.EventDialed, abi.EventAccepted:
			if !c.closed.Load() {
				c.opened = true // only this slot's goroutine touches it
			}
		case abi.EventClosed:
			if !c.opened {
				// The plugin never saw it open: it has nothing to close.
				if j.done != nil {
					j.done(0, errStale)
				}
				return
			}
		}
	}
	if (j.conn != nil && j.conn.closed.Load() && j.ev.Type != abi.EventClosed) || (j.gen != 0 && j.gen != s.gen.Load()) {
		// Its connection closed, or its instance was replaced, after it
		// was queued: the instance that would know about it is gone.
		if j.done != nil {
			j.done(0, errStale)
		}
		return
	}
	if !t.v.SlotAlive(s.i) {
		if j.done != nil {
			j.done(0, errLost)
		}
		return
	}
	t0 := time.Now()
	res, err := t.v.Event(s.i, &j.ev)
	t.stats.eventNanos.Add(uint64(time.Since(t0)))
	t.stats.events.Add(1)
	if err != nil {
		t.instanceFailed(s, err)
	} else if res < 0 && j.ev.Type != abi.EventMessage && j.ev.Type != abi.EventData {
		t.stats.errors.Add(1)
		t.log.Warn("transport event failed", "event", j.ev.Type.String(), "id", j.ev.ID, "status", abi.Status(-res).String())
	}
	if j.done != nil {
		j.done(res, err)
	}
}

var (
	errStale = errors.New("stale event")
	errLost  = errors.New("instance lost")
)

// instanceFailed handles an instance that trapped, overran its deadline or
// broke the ABI and was replaced: its connections, timers and waiting
// requests belonged to the state that is gone.
func (t *Transport) instanceFailed(s *slot, cause error) {
	t.stats.instanceFailures.Add(1)
	s.gen.Add(1)
	t.log.Warn("transport instance failed: closing its connections", "instance", s.i, "err", cause)
	s.mu.Lock()
	for id, tm := range s.timers {
		tm.Stop()
		delete(s.timers, id)
	}
	s.mu.Unlock()
	t.mu.Lock()
	var mine []*conn
	for _, c := range t.conns {
		if c.slot == s {
			mine = append(mine, c)
		}
	}
	t.mu.Unlock()
	for _, c := range mine {
		t.closeConn(c, "instance failed", abi.StatusTrap, false, false)
	}
	t.failPending(s, message.Errorf(abi.StatusTrap, "transport %q: %v", t.name, cause))
}

func (t *Transport) failPending(s *slot, err error) {
	t.mu.Lock()
	var fail []*waiting
	for corr, w := range t.pending {
		if s == nil || w.slot == s {
			fail = append(fail, w)
			delete(t.pending, corr)
		}
	}
	t.mu.Unlock()
	for _, w := range fail {
		w.ch <- result{err: err}
	}
}

// post queues j on s, waiting while the slot's queue is full; false when
// the transport closed first.
func (t *Transport) post(s *slot, j *job) bool {
	select {
	case s.jobs <- j:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// postAsync queues j from a goroutine of its own: for actions, which run
// on the slot's goroutine and must not wait for its queue.
func (t *Transport) postAsync(s *slot, j *job) {
	// Under mu, against Close: a timer firing as Close waits must not add
	// to the wait group once Wait may have seen it at zero.
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.post(s, j)
	}()
}

// pick returns the next live slot round-robin; with withConns, only one
// that owns an open connection (nil when none does).
func (t *Transport) pick(withConns bool) *slot {
	n := len(t.slots)
	start := int(t.rr.Add(1))
	for k := range n {
		s := t.slots[(start+k)%n]
		if !t.v.SlotAlive(s.i) {
			continue
		}
		if withConns {
			s.mu.Lock()
			has := s.conns > 0
			s.mu.Unlock()
			if !has {
				continue
			}
		}
		return s
	}
	return nil
}

// countClose records why a connection closed.
func (t *Transport) countClose(reason string) {
	t.mu.Lock()
	t.closes[reason]++
	t.mu.Unlock()
}
