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
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/router"
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
	reply []byte
	err   error
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

// --- routed messages (router.Endpoint) ---

var headerEnc, _ = cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()

func (t *Transport) messageEvent(m *message.Message, corr uint32) plugin.Event {
	ev := plugin.Event{Type: abi.EventMessage, ID: corr, Arg: int32(m.Kind), A: []byte(m.Subject), B: m.Payload}
	h := m.Headers
	if _, ok := h[abi.HeaderOrigin]; !ok && t.cfg.Origin != "" {
		// m is shared and read-only: the origin goes into a copy.
		h = make(abi.Headers, len(m.Headers)+2)
		for k, v := range m.Headers {
			h[k] = v
		}
		h[abi.HeaderOrigin] = t.cfg.Origin
		if m.Kind == abi.KindEvent {
			// An event keeps its identity: the host it originated on
			// (a mesh peer's event may go out here, for the apps of a
			// gateway) and its number there. The origin drops it when
			// it comes back, and a host that has it from the mesh too
			// drops the second copy.
			if m.FromNode != "" {
				h[abi.HeaderOrigin] = m.FromNode
			}
			if m.Seq != 0 {
				h[abi.HeaderSeq] = strconv.FormatUint(m.Seq, 10)
			}
		}
	}
	if len(h) > 0 {
		ev.C, _ = headerEnc.Marshal(h) // map[string]string always encodes
	}
	return ev
}

// fromMedium reports whether m came in through a transport that carried
// its origin: such a message is not sent out through a transport again.
func fromMedium(m *message.Message) bool {
	_, ok := m.Headers[abi.HeaderOrigin]
	return ok
}

// Request hands a request to one instance that owns a connection and waits
// for its respond, until m's deadline or the plugin's timeout.
func (t *Transport) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	if t.ctx.Err() != nil {
		return nil, router.ErrGone
	}
	if fromMedium(m) {
		t.stats.dropped.Add(1)
		return nil, message.Errorf(abi.StatusUnreachable, "transport %q: %s: the request came in through a transport (header %s %q); it is not sent out through one again",
			t.name, m.Subject, abi.HeaderOrigin, m.Headers[abi.HeaderOrigin])
	}
	s := t.pick(true)
	if s == nil {
		t.stats.dropped.Add(1)
		return nil, message.Errorf(abi.StatusUnreachable, "transport %q: %s: no connection is open", t.name, m.Subject)
	}
	corr := t.corrs.Add(1)
	if corr == 0 {
		corr = t.corrs.Add(1)
	}
	w := &waiting{slot: s, ch: make(chan result, 1)}
	t.mu.Lock()
	t.pending[corr] = w
	t.mu.Unlock()
	j := &job{ev: t.messageEvent(m, corr), done: func(res int32, err error) {
		if err == nil && res >= 0 {
			return
		}
		if err == nil {
			err = message.Errorf(abi.Status(-res), "transport %q: %s: the plugin refused the message (%s)", t.name, m.Subject, abi.Status(-res))
		} else if !errors.Is(err, errClosed) && !errors.Is(err, errLost) {
			err = message.Errorf(message.StatusOf(err), "transport %q: %s: %v", t.name, m.Subject, err)
		}
		t.settle(corr, result{err: err})
	}}
	select {
	case s.jobs <- j:
		t.stats.messagesOut.Add(1)
	default:
		t.unpend(corr)
		return nil, message.Errorf(abi.StatusBusy, "transport %q is busy: %d events queued for instance %d", t.name, slotQueue, s.i)
	}
	dl := m.Deadline
	if dl.IsZero() {
		dl = time.Now().Add(t.v.Spec().Timeout)
	}
	timer := time.NewTimer(time.Until(dl))
	defer timer.Stop()
	select {
	case r := <-w.ch:
		if errors.Is(r.err, errClosed) || errors.Is(r.err, errLost) {
			return nil, message.Errorf(abi.StatusUnreachable, "transport %q: %s: %v", t.name, m.Subject, r.err)
		}
		return r.reply, r.err
	case <-timer.C:
		t.unpend(corr)
		return nil, message.Errorf(abi.StatusTimeout, "transport %q: %s: no response within the deadline", t.name, m.Subject)
	case <-ctx.Done():
		t.unpend(corr)
		return nil, message.Errorf(abi.StatusTimeout, "transport %q: %s: %v", t.name, m.Subject, ctx.Err())
	}
}

func (t *Transport) unpend(corr uint32) {
	t.mu.Lock()
	delete(t.pending, corr)
	t.mu.Unlock()
}

// settle completes a waiting request once.
func (t *Transport) settle(corr uint32, r result) bool {
	t.mu.Lock()
	w, ok := t.pending[corr]
	delete(t.pending, corr)
	t.mu.Unlock()
	if ok {
		w.ch <- r
	}
	return ok
}

// Post hands a send to one instance that owns a connection and an event
// to every such instance; with none, the message is dropped and counted.
func (t *Transport) Post(m *message.Message) error {
	if t.ctx.Err() != nil {
		return router.ErrGone
	}
	if fromMedium(m) {
		// Its medium has it: sending it out again would publish it twice
		// there, and back and forth between two hosts on one broker.
		return nil
	}
	var targets []*slot
	if m.Kind == abi.KindEvent {
		for _, s := range t.slots {
			s.mu.Lock()
			if s.conns > 0 {
				targets = append(targets, s)
			}
			s.mu.Unlock()
		}
	} else if s := t.pick(true); s != nil {
		targets = []*slot{s}
	}
	// An event that reaches no instance is an error too, so that the
	// router counts it dropped rather than delivered.
	if len(targets) == 0 {
		t.stats.dropped.Add(1)
		return message.Errorf(abi.StatusUnreachable, "transport %q: %s: no connection is open", t.name, m.Subject)
	}
	ev := t.messageEvent(m, 0)
	queued := 0
	for _, s := range targets {
		select {
		case s.jobs <- &job{ev: ev}:
			t.stats.messagesOut.Add(1)
			queued++
		default:
			t.stats.dropped.Add(1)
		}
	}
	if queued == 0 || (queued < len(targets) && m.Kind == abi.KindSend) {
		return message.Errorf(abi.StatusBusy, "transport %q is busy: %d messages queued", t.name, slotQueue)
	}
	return nil
}

// --- actions (plugin.Actions), called on the acting slot's goroutine ---

// owned returns the open connection id if slot owns it.
func (t *Transport) owned(slotIdx int, id uint32, what string) *conn {
	t.mu.Lock()
	c := t.conns[id]
	t.mu.Unlock()
	if c == nil || c.slot.i != slotIdx || c.closed.Load() {
		t.stats.errors.Add(1)
		t.log.Warn("transport plugin acted on a connection it does not own", "action", what, "instance", slotIdx, "conn", id)
		return nil
	}
	return c
}

// Write implements plugin.Actions.
func (t *Transport) Write(slotIdx int, id uint32, b []byte) abi.Status {
	c := t.owned(slotIdx, id, abi.ImportConnWrite)
	if c == nil {
		return abi.StatusNotFound
	}
	if !c.queue(b, t.cfg.WriteBuffer) {
		t.log.Warn("transport connection closed: write buffer full", "conn", id, "limit", t.cfg.WriteBuffer)
		t.closeConn(c, "write buffer full", abi.StatusTooLarge, true, false)
		return abi.StatusTooLarge
	}
	return abi.StatusOK
}

// Open implements plugin.Actions.
func (t *Transport) Open(slotIdx int, index int32) (uint32, abi.Status) {
	if index < 0 || int(index) >= len(t.cfg.Dial) {
		t.stats.errors.Add(1)
		t.log.Warn("transport plugin asked to dial outside its dial list", "instance", slotIdx, "index", index, "entries", len(t.cfg.Dial))
		return 0, abi.StatusInvalid
	}
	t.mu.Lock()
	full := len(t.conns) >= t.cfg.MaxConns
	t.mu.Unlock()
	if full {
		return 0, abi.StatusBusy
	}
	id := t.ids.Add(1)
	s := t.slots[slotIdx]
	gen := s.gen.Load()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		c, err := t.dial(int(index), id, s)
		if err != nil {
			t.post(s, &job{ev: plugin.Event{Type: abi.EventClosed, ID: id, Arg: int32(abi.StatusUnreachable)}, gen: gen})
			return
		}
		<-c.done
	}()
	return id, abi.StatusOK
}

// CloseConn implements plugin.Actions.
func (t *Transport) CloseConn(slotIdx int, id uint32) abi.Status {
	c := t.owned(slotIdx, id, abi.ImportConnClose)
	if c == nil {
		return abi.StatusNotFound
	}
	t.closeConn(c, "closed by plugin", abi.StatusOK, false, true)
	return abi.StatusOK
}

// SetTimer implements plugin.Actions.
func (t *Transport) SetTimer(slotIdx int, id uint32, ms int32) abi.Status {
	s := t.slots[slotIdx]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.timers[id]; ok {
		old.Stop()
		delete(s.timers, id)
	}
	if ms <= 0 {
		return abi.StatusOK
	}
	if len(s.timers) >= abi.MaxTimers {
		return abi.StatusBusy
	}
	gen := s.gen.Load()
	var tm *time.Timer
	tm = time.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
		s.mu.Lock()
		current := s.timers[id] == tm
		if current {
			delete(s.timers, id)
		}
		s.mu.Unlock()
		if current {
			t.postAsync(s, &job{ev: plugin.Event{Type: abi.EventTimer, ID: id}, gen: gen})
		}
	})
	s.timers[id] = tm
	return abi.StatusOK
}

// Deliver implements plugin.Actions.
func (t *Transport) Deliver(slotIdx int, corr uint32, m *message.Message) abi.Status {
	if t.cfg.Origin != "" && m.Headers[abi.HeaderOrigin] == t.cfg.Origin {
		// This host's own message, back through the medium: it has been
		// delivered here already.
		t.stats.ownDropped.Add(1)
		return abi.StatusOK
	}
	switch m.Kind {
	case abi.KindSend:
		t.stats.messagesIn.Add(1)
		return message.StatusOf(t.host.Send(t.ctx, m))
	case abi.KindEvent:
		if origin := m.Headers[abi.HeaderOrigin]; origin != "" {
			// Another host's event: it has its identity, by which the
			// router drops a copy that came by the mesh too, and it
			// stays on this host (the origin reaches its mesh peers
			// itself; the mesh would not carry its identity on).
			m.FromNode = origin
			m.Seq, _ = strconv.ParseUint(m.Headers[abi.HeaderSeq], 10, 64) // none or not a number: no identity
		}
		_, err := t.host.Publish(t.ctx, m)
		if errors.Is(err, router.ErrDuplicate) {
			t.stats.duplicates.Add(1)
			return abi.StatusOK
		}
		t.stats.messagesIn.Add(1)
		return message.StatusOf(err)
	}
	t.stats.messagesIn.Add(1)
	s := t.slots[slotIdx]
	s.mu.Lock()
	if s.calls >= abi.MaxPendingCalls {
		s.mu.Unlock()
		return abi.StatusBusy
	}
	s.calls++
	s.mu.Unlock()
	gen := s.gen.Load()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ctx, cancel := context.WithDeadline(t.ctx, m.Deadline)
		reply, err := t.host.Call(ctx, m)
		cancel()
		s.mu.Lock()
		s.calls--
		s.mu.Unlock()
		ev := plugin.Event{Type: abi.EventReply, ID: corr, Arg: int32(abi.StatusOK), A: reply}
		if err != nil {
			ev.Arg, ev.A = int32(message.StatusOf(err)), []byte(err.Error())
		}
		t.post(s, &job{ev: ev, gen: gen})
	}()
	return abi.StatusOK
}

// Respond implements plugin.Actions.
func (t *Transport) Respond(slotIdx int, corr uint32, st abi.Status, b []byte) abi.Status {
	t.mu.Lock()
	w, ok := t.pending[corr]
	if ok && w.slot.i != slotIdx {
		ok = false
	}
	if ok {
		delete(t.pending, corr)
	}
	t.mu.Unlock()
	if !ok {
		return abi.StatusNotFound
	}
	if st == abi.StatusOK {
		w.ch <- result{reply: append([]byte{}, b...)}
	} else {
		w.ch <- result{err: message.Errorf(st, "transport %q: %s", t.name, b)}
	}
	return abi.StatusOK
}

// --- stats ---

// ConnInfo describes one open connection.
type ConnInfo struct {
	ID       uint32
	Entry    string // "dial[0] tls://a:1" or "accept[0] tcp://..."
	Remote   string
	Instance int
	BytesIn  uint64
	BytesOut uint64
	Since    time.Time
}

// Stats is a snapshot of a transport's state and counters.
type Stats struct {
	Conns                            []ConnInfo
	Accepted, Dialed, Reconnects     uint64
	DialErrors, Refused              uint64
	BytesIn, BytesOut                uint64
	MessagesIn, MessagesOut, Dropped uint64
	// OwnDropped counts messages delivered with this host's origin: its
	// own, come back, dropped.
	OwnDropped uint64
	// Duplicates counts events delivered with another host's identity
	// that this host had received already (through the mesh or another
	// transport), dropped.
	Duplicates               uint64
	Errors, InstanceFailures uint64
	// Events counts the plugin's events and EventTime the time spent in
	// them (guest code and the actions it took).
	Events                              uint64
	EventTime                           time.Duration
	Closes                              map[string]uint64
	Listening                           []string
	DialEntries                         []string
	Instances, InstancesAlive, Restarts int
}

// Stats returns the transport's connections and counters.
func (t *Transport) Stats() Stats {
	st := Stats{
		Accepted: t.stats.accepted.Load(), Dialed: t.stats.dialed.Load(), Reconnects: t.stats.reconnects.Load(),
		DialErrors: t.stats.dialErrors.Load(), Refused: t.stats.refused.Load(),
		BytesIn: t.stats.bytesIn.Load(), BytesOut: t.stats.bytesOut.Load(),
		MessagesIn: t.stats.messagesIn.Load(), MessagesOut: t.stats.messagesOut.Load(), Dropped: t.stats.dropped.Load(), OwnDropped: t.stats.ownDropped.Load(),
		Duplicates: t.stats.duplicates.Load(),
		Errors:     t.stats.errors.Load(), InstanceFailures: t.stats.instanceFailures.Load(),
		Events: t.stats.events.Load(), EventTime: time.Duration(t.stats.eventNanos.Load()),
		Closes:    map[string]uint64{},
		Instances: len(t.slots), Restarts: int(t.v.Restarts()),
	}
	for _, s := range t.slots {
		if t.v.SlotAlive(s.i) {
			st.InstancesAlive++
		}
	}
	for _, d := range t.cfg.Dial {
		st.DialEntries = append(st.DialEntries, d.Raw)
	}
	for _, a := range t.Addrs() {
		st.Listening = append(st.Listening, "tcp://"+a.String())
	}
	t.mu.Lock()
	for r, n := range t.closes {
		st.Closes[r] = n
	}
	for _, c := range t.conns {
		st.Conns = append(st.Conns, ConnInfo{ID: c.id, Entry: c.entry, Remote: c.remote, Instance: c.slot.i,
			BytesIn: c.in.Load(), BytesOut: c.out.Load(), Since: c.since})
	}
	t.mu.Unlock()
	sort.Slice(st.Conns, func(i, j int) bool { return st.Conns[i].ID < st.Conns[j].ID })
	return st
}
