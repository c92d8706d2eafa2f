// Package mesh connects pycomms hosts into one messaging fabric. Every
// host listens on TCP (TLS 1.3) and QUIC, dials the peers its config lists,
// authenticates each connection both ways (host/internal/identity), and then
// exchanges frames of the wire protocol (host/internal/wire, abi/PROTOCOL.md) over
// it: which services and topics each host serves (interest), and the
// requests, replies, sends and events themselves.
//
// Routing design. A host learns what its direct peers serve from their
// interest advertisements, and what every other host serves, where it
// listens and whom it links to from signed membership records flooded over
// the links (members.go, PROTOCOL.md section 14). A message goes straight
// to its destination when there is a link to it, or through a direct peer
// linked to the destination (a relay), and a relay forwards only to its
// own direct peers and only messages that have not been relayed yet. So a
// message crosses at most two links and cannot loop, and a mesh built as a
// chain (A lists B, B lists C) works before A has dialled C. A host that
// sends to a relayed host, or to one further away, links to it directly
// (Discovered, found "gossip"); mDNS (host/internal/discovery) feeds the same
// Discovered. Links follow use rather than forming a full mesh: see
// RATIONALE.md.
//
// Delivery guarantees: request/reply is at-most-once (a request whose
// provider or link dies fails with StatusUnreachable and is never resent),
// sends and events are at-most-once (a full send buffer or a busy
// subscriber drops them, counted), and events from one publisher reach a
// subscriber host in publish order (they share one ordered stream) while
// the path stays the same: events sent through a relay and then over a new
// direct link can overtake each other at the switch.
package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// Local is this host's own router, which the mesh hands the messages that
// arrive for this host. Messages it passes carry message.Message.FromNode,
// so the router never sends them back out.
type Local interface {
	Call(ctx context.Context, m *message.Message) ([]byte, error)
	Send(ctx context.Context, m *message.Message) error
	Publish(ctx context.Context, m *message.Message) (int, error)
	// Interest returns what this host serves.
	Interest() (services, topics []string)
}

// Peer is one configured peer to keep a link to.
type Peer struct {
	Transport string // TCP, QUIC, or "" to try TCP, then QUIC
	Addr      string // host:port
}

// URL is the peer as written in config.
func (p Peer) URL() string {
	if p.Transport == "" {
		return p.Addr
	}
	return p.Transport + "://" + p.Addr
}

// Options configure a Mesh.
type Options struct {
	Identity *identity.Identity
	Policy   *identity.Policy
	Name     string // this node's name
	Local    Local
	Logger   *slog.Logger

	ListenTCP, ListenQUIC string // host:port; "" disables
	Peers                 []Peer

	MaxFrame   int // largest payload accepted from and sent to a peer
	SendBuffer int // bytes queued per link before senders wait
	Inflight   int // requests one peer may have running here at once

	// PingInterval is how often each link is probed for its RTT and
	// liveness; a silent link is closed before it has been silent for
	// DeadAfter (after DeadAfter-PingInterval at the earliest). Defaults 1s
	// and 5s; a PingInterval above half of DeadAfter becomes a fifth of it.
	// A link with requests waiting is probed and closed sooner, from its
	// RTT (liveness.go).
	PingInterval, DeadAfter time.Duration
	// Backoff bounds the delay between dial attempts to one peer; each
	// failure doubles it, with jitter. Defaults 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
}

// Mesh is this host's links to other hosts and the routing table built
// from what they serve. It implements router.Remote.
type Mesh struct {
	id         identity.ID // self.id and self.name, for short
	name       string
	self       self
	local      Local
	log        *slog.Logger
	sendBuffer int
	inflight   int
	ping, dead time.Duration
	bmin, bmax time.Duration

	ln                 listener
	listenTCP, listenQ string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	links   map[identity.ID]*link
	dialers map[string]*dialer // by peer URL
	linkCh  chan struct{}      // closed and replaced when links change
	started bool               // Start ran: dialers run
	// discovering holds the ids discovery reported that are being dialled.
	discovering map[identity.ID]bool
	closing     bool

	table   atomic.Pointer[table]
	tableMu sync.Mutex
	tableCh chan struct{} // closed and replaced when the table is rebuilt
	seq     atomic.Uint64 // interest seqs and ack tokens (ack.go)
	members membership

	advert       coalescer // interest advertisements
	membersFlush coalescer // members frames

	workers workers

	rebuildMu sync.Mutex // serialises rebuildTable

	badFrames, relayed atomic.Uint64
	needAt             sync.Map // node id -> time.Time of the last needDirect
	dialFailed         sync.Map // node id -> error: the last dial of a discovered host gave up
	clashes            sync.Map // name -> struct{}: clashes already logged
}

// New checks the options and prepares the mesh; nothing listens or dials
// until Start.
func New(o Options) (*Mesh, error) {
	if o.Identity == nil {
		return nil, errors.New("mesh: no identity")
	}
	if o.Local == nil {
		return nil, errors.New("mesh: no local router")
	}
	if o.Policy == nil {
		o.Policy = &identity.Policy{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = 1 << 20
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = 8 << 20
	}
	if o.Inflight <= 0 {
		o.Inflight = 1024
	}
	if o.PingInterval <= 0 {
		o.PingInterval = time.Second
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 5 * time.Second
	}
	if o.PingInterval > o.DeadAfter/2 {
		// A link is closed when it has missed (DeadAfter-PingInterval)/
		// PingInterval pings: it must be able to miss one.
		o.PingInterval = o.DeadAfter / 5
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mesh{
		id: o.Identity.ID, name: o.Name, local: o.Local,
		self: self{id: o.Identity.ID, name: o.Name, idt: o.Identity, policy: o.Policy, maxFrame: o.MaxFrame,
			clientTLS: o.Policy.ClientTLS(o.Identity)},
		log: o.Logger.With("component", "mesh"), sendBuffer: o.SendBuffer, inflight: o.Inflight,
		ping: o.PingInterval, dead: o.DeadAfter, bmin: o.BackoffMin, bmax: o.BackoffMax,
		listenTCP: o.ListenTCP, listenQ: o.ListenQUIC,
		ctx: ctx, cancel: cancel,
		links: map[identity.ID]*link{}, dialers: map[string]*dialer{}, linkCh: make(chan struct{}),
		discovering: map[identity.ID]bool{},
		tableCh:     make(chan struct{}),
	}
	m.ln.m, m.ln.slots = m, newSlots()
	m.members.byID = map[identity.ID]*member{}
	m.members.known = map[*link]map[identity.ID]uint64{}
	m.members.ttl = memberTTL(o.DeadAfter)
	m.workers = workers{m: m, idle: make(chan job)}
	// Count and log every peer the trust policy refuses, on both
	// transports: quic-go never hands a connection that failed its TLS
	// handshake to Accept, so the verification callback is the one place
	// that sees them all.
	m.ln.serverTLS = o.Policy.ServerTLS(o.Identity)
	if verify := m.ln.serverTLS.VerifyConnection; verify != nil {
		m.ln.serverTLS.VerifyConnection = func(cs tls.ConnectionState) error {
			err := verify(cs)
			if err != nil {
				m.ln.refused.Add(1)
				m.log.Warn("refused a host the trust policy does not admit", "err", err)
			}
			return err
		}
	}
	m.table.Store(buildTable(m.id, m.name, nil, nil, nil))
	for _, p := range o.Peers {
		m.dialers[p.URL()] = &dialer{peer: p, state: control.PeerConnecting}
	}
	return m, nil
}

// ID is this node's id.
func (m *Mesh) ID() identity.ID { return m.id }

// Start listens on the configured addresses and starts dialling peers.
func (m *Mesh) Start() error {
	if err := m.ln.listen(m.listenTCP, m.listenQ); err != nil {
		return err
	}
	// The first own membership record, now that the listen addresses are
	// known.
	m.membersChanged(nil)
	m.mu.Lock()
	m.started = true
	for _, d := range m.dialers {
		m.startDialer(d)
	}
	m.mu.Unlock()
	m.wg.Add(2)
	go m.pingLoop()
	go func() { defer m.wg.Done(); m.workers.reap() }()
	return nil
}

// Close leaves the mesh cleanly: every peer is told (GoAway) so it drops
// this host's routes at once, requests in flight get until ctx ends to
// finish, then everything closes.
func (m *Mesh) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil
	}
	m.closing = true
	links := make([]*link, 0, len(m.links))
	for _, l := range m.links {
		links = append(links, l)
	}
	m.mu.Unlock()
	m.ln.stop()
	m.leaveMembers(links)
	for _, l := range links {
		m.retire(l, wire.ErrShutdown, "node is shutting down")
	}
	for _, l := range links {
		select {
		case <-l.done:
		case <-ctx.Done():
			l.close(errors.New("shutdown"))
		}
	}
	m.cancel()
	m.wg.Wait()
	// Readers and the reaper, the only senders on idle, have stopped:
	// closing it sends every worker home, idle ones at once and busy ones
	// when their request ends (their link's context has ended).
	close(m.workers.idle)
	m.workers.wg.Wait()
	m.ln.close()
	return nil
}

// Addrs returns the addresses actually listened on ("" when disabled), as
// URLs: tcp://HOST:PORT and quic://HOST:PORT.
func (m *Mesh) Addrs() (tcpURL, quicURL string) { return m.ln.addrs() }

// ListenAddrs returns the addresses actually listened on, as IP and port
// (the zero netip.AddrPort when that transport is disabled): what Addrs
// formats as URLs, for callers that need the parts.
func (m *Mesh) ListenAddrs() (tcpAddr, quicAddr netip.AddrPort) { return m.ln.listenAddrs() }

// handshake runs the Hello exchange on c and makes the link of it.
func (m *Mesh) handshake(ctx context.Context, c conn, dialed bool) (*link, error) {
	g, err := m.self.handshake(ctx, c, dialed, m.ln.urls())
	if err != nil {
		return nil, err
	}
	return newLink(m, c, dialed, g), nil
}

// RefusedCount is how many inbound connections failed authentication or
// the handshake.
func (m *Mesh) RefusedCount() uint64 { return m.ln.refused.Load() }

// BadFrames is how many links were closed for a malformed or oversized
// frame.
func (m *Mesh) BadFrames() uint64 { return m.badFrames.Load() }

// ControlBytesOut is how many bytes of control frames (interest,
// membership records, pings, pongs) this host has written on the links it
// holds now; a closed link's count goes with it. It measures what
// membership and liveness cost on the wire, as the membership benchmark
// reports it.
func (m *Mesh) ControlBytesOut() uint64 {
	var n uint64
	for _, l := range m.allLinks() {
		n += l.out.control.Load()
	}
	return n
}

// up registers a handshaken link, or retires it when a link to the same
// node exists and wins. Of two links between the same pair, both sides
// keep the one dialled by the lower node id, so simultaneous dials settle
// on one link without another round trip; a new link from the same dialer
// replaces the old one (which is likely half-dead).
func (m *Mesh) up(l *link) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		l.close(errors.New("node is shutting down"))
		return
	}
	old := m.links[l.peer]
	loser := old
	if old != nil && m.dialerOf(old) != m.dialerOf(l) && m.dialerOf(old) < m.dialerOf(l) {
		loser = l
	}
	if loser != l {
		m.links[l.peer] = l
	}
	m.signalLinks()
	// Counted under m.mu, where Close sets closing, so that Close's Wait
	// always includes this link's loops.
	loops := 2
	if l.c.transport() == QUIC {
		loops = 3
	}
	m.wg.Add(loops)
	m.mu.Unlock()

	go func() { defer m.wg.Done(); l.out.writeLoop() }()
	go func() { defer m.wg.Done(); l.readLoop(l.reader); l.reader = nil }()
	if loops == 3 {
		go func() { defer m.wg.Done(); l.soloLoop() }()
	}
	if loser == l {
		m.log.Debug("duplicate link retired", "node", l.name, "id", l.peer.Short(), "transport", l.c.transport())
		m.retire(l, wire.ErrDuplicate, "a link to this node exists already")
		return
	}
	m.log.Info("peer connected", "node", l.name, "id", l.peer.Short(), "addr", l.addr, "transport", l.c.transport(), "dialed", l.dialed, "version", l.version)
	if old != nil {
		m.retire(old, wire.ErrDuplicate, "replaced by a newer link")
	}
	l.sentMu.Lock()
	l.lastSent = ""
	l.sentMu.Unlock()
	m.topologyChanged()
}

func (m *Mesh) dialerOf(l *link) identity.ID {
	if l.dialed {
		return m.id
	}
	return l.peer
}

// signalLinks wakes whoever waits for a change of links; m.mu is held.
func (m *Mesh) signalLinks() {
	close(m.linkCh)
	m.linkCh = make(chan struct{})
}

// retire stops routing over l, tells the peer (GoAway with code), and
// closes l once its requests in both directions are answered, or after a
// grace period.
func (m *Mesh) retire(l *link, code wire.ErrorCode, reason string) {
	if l.leaving.Swap(true) {
		return
	}
	m.mu.Lock()
	if m.links[l.peer] == l {
		delete(m.links, l.peer)
		m.signalLinks()
	}
	m.mu.Unlock()
	m.topologyChanged()
	if reason != "" {
		l.enqueueControl(wire.FrameGoAway, &wire.ErrorFrame{Code: code, Msg: reason})
	}
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for l.outstanding() > 0 && time.Now().Before(deadline) {
			select {
			case <-l.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		l.flushAndClose(fmt.Errorf("link retired: %s", reasonOr(reason, "peer left")))
	}()
}

func reasonOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// linkDown is called once when a link has closed.
func (m *Mesh) linkDown(l *link, cause error) {
	m.mu.Lock()
	was := m.links[l.peer] == l
	if was {
		delete(m.links, l.peer)
		m.signalLinks()
	}
	m.mu.Unlock()
	m.forgetLink(l)
	if was {
		m.log.Info("peer disconnected", "node", l.name, "id", l.peer.Short(), "transport", l.c.transport(), "cause", cause)
		m.topologyChanged()
	}
}

// pingLoop probes every link for RTT and closes the silent ones.
func (m *Mesh) pingLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.ping)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			m.gcMembers(now)
			for _, l := range m.allLinks() {
				// seenAt trails the last frame by up to one tick, so a link
				// is closed once seenAt is dead-ping old: silent for at
				// least dead-ping and less than dead, which keeps the
				// promise that a dead peer is noticed within the dead time.
				if n := l.heard(); n != l.seenHeard {
					l.seenHeard, l.seenAt = n, now
					l.lastSeen.Store(now.UnixNano())
				} else if silent := now.Sub(l.seenAt); silent >= m.dead-m.ping {
					m.log.Warn("peer silent, closing its link", "node", l.name, "id", l.peer.Short(), "silent", silent.Round(time.Millisecond))
					l.close(fmt.Errorf("no frame for %v (dead after %v)", silent.Round(time.Millisecond), m.dead))
					continue
				}
				if !l.out.busy.Load() {
					l.writeSeenAt = time.Time{}
				} else if w := l.out.writes.Load(); w != l.seenWrite || l.writeSeenAt.IsZero() {
					l.seenWrite, l.writeSeenAt = w, now
				} else if now.Sub(l.writeSeenAt) > m.dead {
					m.log.Warn("peer stopped reading, closing its link", "node", l.name, "id", l.peer.Short())
					l.close(fmt.Errorf("a write blocked for more than %v: the peer stopped reading", m.dead))
					continue
				}
				l.enqueueControl(wire.FramePing, &wire.Ping{Nonce: uint64(now.UnixNano())})
			}
		}
	}
}

func (m *Mesh) allLinks() []*link {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*link, 0, len(m.links))
	for _, l := range m.links {
		out = append(out, l)
	}
	return out
}

// link returns the live link to id, or nil.
func (m *Mesh) link(id identity.ID) *link {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.links[id]
}

// dialer keeps one configured peer connected.
type dialer struct {
	peer Peer

	mu        sync.Mutex
	state     control.PeerState // connecting, up, retrying, stopped
	lastErr   string
	transport string
	id        identity.ID
	stop      chan struct{}
}

func (d *dialer) set(f func(d *dialer)) {
	d.mu.Lock()
	f(d)
	d.mu.Unlock()
}

// down records that d's link ended: the peer is being redialled, and the
// reason is shown until a dial succeeds or fails.
func (d *dialer) down(l *link) {
	cause := l.reqs.err()
	d.set(func(d *dialer) { d.state, d.lastErr = control.PeerConnecting, fmt.Sprintf("link ended: %v", cause) })
}

// startDialer starts d's loop; m.mu is held.
func (m *Mesh) startDialer(d *dialer) {
	d.stop = make(chan struct{})
	m.wg.Add(1)
	go m.dialLoop(d)
}

// SetPeers changes the configured peers: new ones are dialled, removed
// ones stop being redialled (their links stay until they fail).
func (m *Mesh) SetPeers(peers []Peer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]Peer{}
	for _, p := range peers {
		want[p.URL()] = p
	}
	for u, d := range m.dialers {
		if _, ok := want[u]; !ok {
			close(d.stop)
			delete(m.dialers, u)
		}
	}
	for u, p := range want {
		if _, ok := m.dialers[u]; !ok {
			d := &dialer{peer: p, state: control.PeerConnecting}
			m.dialers[u] = d
			if m.started && !m.closing {
				m.startDialer(d)
			}
		}
	}
}

// dialLoop connects to d's peer, waits while the link (or another link to
// the same node) is up, and reconnects with jittered exponential backoff.
func (m *Mesh) dialLoop(d *dialer) {
	defer m.wg.Done()
	backoff := m.bmin
	for {
		if m.ctx.Err() != nil {
			return
		}
		// Connected through a link the peer dialled: nothing to do until it
		// goes.
		if d.id != "" {
			m.mu.Lock()
			l, ch := m.links[d.id], m.linkCh
			m.mu.Unlock()
			if l != nil {
				d.set(func(d *dialer) { d.state, d.transport = control.PeerUp, l.c.transport() })
				select {
				case <-ch:
				case <-l.done:
					d.down(l)
				case <-d.stop:
					return
				case <-m.ctx.Done():
					return
				}
				continue
			}
		}
		l, err := m.dial(d.peer)
		if err != nil {
			wait := jitter(backoff)
			var re *RefusedError
			if errors.As(err, &re) && re.Code == wire.ErrSelf {
				m.log.Warn("peer is this host itself; not dialling it again", "peer", d.peer.URL())
				d.set(func(d *dialer) { d.state, d.lastErr = control.PeerStopped, err.Error() })
				return
			}
			m.log.Debug("dial failed", "peer", d.peer.URL(), "err", err, "retry_in", wait)
			d.set(func(d *dialer) { d.state, d.lastErr = control.PeerRetrying, err.Error() })
			backoff = min(backoff*2, m.bmax)
			select {
			case <-time.After(wait):
			case <-d.stop:
				return
			case <-m.ctx.Done():
				return
			}
			continue
		}
		backoff = m.bmin
		d.set(func(d *dialer) { d.id, d.state, d.lastErr, d.transport = l.peer, control.PeerUp, "", l.c.transport() })
		l.found = FoundConfigured
		m.up(l)
		select {
		case <-l.done:
			d.down(l)
		case <-d.stop:
			return
		case <-m.ctx.Done():
			return
		}
		// A short pause so that a peer that accepts and drops at once is not
		// hammered.
		select {
		case <-time.After(jitter(m.bmin)):
		case <-d.stop:
			return
		case <-m.ctx.Done():
			return
		}
	}
}

// jitter spreads d over [d/2, d) so that peers that lost each other at the
// same moment do not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// dial connects to p and runs the dialer's side of the handshake.
func (m *Mesh) dial(p Peer) (*link, error) { return m.dialAs(p, "") }

// dialAs is dial that, when expect is set, refuses in the TLS handshake a
// host that is not node expect: before either side has a link, so that a
// wrong address cannot replace the peer's link to the right host.
func (m *Mesh) dialAs(p Peer, expect identity.ID) (*link, error) {
	ctx, cancel := context.WithTimeout(m.ctx, handshakeTimeout)
	defer cancel()
	cfg := m.self.clientTLS
	if expect != "" {
		cfg = cfg.Clone()
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if id, err := identity.PeerID(cs); err == nil && id != expect {
				return fmt.Errorf("announced as node %s, is node %s", expect, id)
			}
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
	}
	transports := []string{p.Transport}
	if p.Transport == "" {
		transports = []string{TCP, QUIC}
	}
	var errs []error
	for _, t := range transports {
		var c conn
		var err error
		if t == TCP {
			c, err = dialTCP(ctx, p.Addr, cfg)
		} else {
			c, err = m.ln.dialQUIC(ctx, p.Addr, cfg)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t, err))
			continue
		}
		l, err := m.handshake(ctx, c, true)
		if err != nil {
			c.close(err.Error())
			return nil, fmt.Errorf("%s://%s: %w", t, p.Addr, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("dial %s: %w", p.URL(), errors.Join(errs...))
}

// PeerInfo describes one host this host knows: a direct peer, a configured
// peer not connected yet, a host reached through a relay, or a member known
// through membership only. It is the control API's type, filled here, so
// GET /v1/peers shows what the mesh knows without a copy field by field.
type PeerInfo = control.PeerInfo

// Peers lists what this host knows of the mesh, sorted by name then id.
func (m *Mesh) Peers() []PeerInfo {
	m.mu.Lock()
	links := make([]*link, 0, len(m.links))
	for _, l := range m.links {
		links = append(links, l)
	}
	dialers := make([]*dialer, 0, len(m.dialers))
	for _, d := range m.dialers {
		dialers = append(dialers, d)
	}
	m.mu.Unlock()
	var out []PeerInfo
	byID := map[identity.ID]int{}
	for _, l := range links {
		if l.gone.Load() {
			// Closed, about to leave m.links: its dialer, if any, says what
			// happens next.
			continue
		}
		p := PeerInfo{ID: string(l.peer), Name: l.name, Addr: l.addr, Transport: l.c.transport(), State: control.PeerUp,
			Dialed: l.dialed, Found: l.found, RTT: time.Duration(l.rtt.Load()), MsgsIn: l.msgsIn.Load(), MsgsOut: l.out.msgs.Load(),
			Dropped: l.dropped.Load(), Since: l.since, Silent: time.Since(time.Unix(0, l.lastSeen.Load())).Truncate(time.Millisecond)}
		if l.leaving.Load() {
			p.State = control.PeerLeaving
		}
		if at := l.suspect.Load(); at != 0 {
			p.Error = fmt.Sprintf("no answer to a probe for %v: new requests go to other providers", time.Since(time.Unix(0, at)).Round(time.Millisecond))
		}
		if in := l.interest.Load(); in != nil {
			p.Services, p.Topics = in.Services, in.Topics
		}
		byID[l.peer] = len(out)
		out = append(out, p)
	}
	for _, d := range dialers {
		d.mu.Lock()
		id, state, lastErr, u := d.id, d.state, d.lastErr, d.peer.URL()
		d.mu.Unlock()
		if i, ok := byID[id]; ok && id != "" {
			out[i].Config = u
			continue
		}
		if state == control.PeerUp {
			// Its link is gone and the dialer has not caught up yet.
			state = control.PeerConnecting
		}
		if id != "" {
			// A configured peer known by membership too is listed once,
			// with the dialler's state (retrying, and why).
			byID[id] = len(out)
		}
		out = append(out, PeerInfo{ID: string(id), Addr: d.peer.Addr, Transport: d.peer.Transport, State: state, Error: lastErr, Config: u, Found: FoundConfigured})
	}
	for _, n := range m.table.Load().nodes {
		if n.direct != nil || n.far() {
			continue
		}
		byID[n.id] = len(out)
		out = append(out, PeerInfo{ID: string(n.id), Name: n.name, State: control.PeerRelayed, Via: n.via.name, Found: "relayed",
			Services: n.services, Topics: n.topics})
	}
	// Everything else membership knows: live members further away, and
	// the lost and left ones until they are forgotten.
	for _, mb := range m.Members() {
		if i, ok := byID[identity.ID(mb.ID)]; ok {
			out[i].Hops = mb.Hops
			if out[i].Name == "" {
				out[i].Name = mb.Name
			}
			continue
		}
		p := PeerInfo{ID: mb.ID, Name: mb.Name, State: control.PeerState(mb.State), Found: FoundGossip, Hops: mb.Hops, Since: mb.Since,
			Services: mb.Services, Topics: mb.Topics}
		if mb.State == MemberAlive {
			p.State = control.PeerMember
		}
		if len(mb.Listen) > 0 {
			p.Addr = mb.Listen[0]
		}
		out = append(out, p)
	}
	// Make a name clash visible where the operator looks, not only in the
	// log.
	clash := m.table.Load().clash
	for i, p := range out {
		for _, id := range clash[p.Name] {
			if p.ID != "" && string(id) != p.ID {
				out[i].Clash = append(out[i].Clash, string(id))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID+out[i].Config < out[j].ID+out[j].Config
	})
	return out
}
