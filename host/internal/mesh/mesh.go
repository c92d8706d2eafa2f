package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

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
	// ForgetAfter is how long a member that is lost or left stays known
	// (listed by Members and Peers, its figures kept by PeerTraffic)
	// before it is forgotten. Default: 12 DeadAfter, at least a minute.
	ForgetAfter time.Duration
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

	// The parts (doc.go): each owns its state and lock.
	links     linkSet
	dialers   dialers
	members   membership
	routes    routes
	adverts   adverts
	inbound   inbound
	deadlines deadlines

	seq atomic.Uint64 // interest seqs and ack tokens (ack.go)
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
	}
	m.links.init(m)
	m.dialers.init(m, o.Peers)
	m.ln.m, m.ln.slots = m, newSlots()
	m.members.m = m
	m.members.byID = map[identity.ID]*member{}
	m.members.known = map[*link]map[identity.ID]uint64{}
	m.members.ttl = memberTTL(o.DeadAfter)
	if o.ForgetAfter > 0 {
		m.members.ttl = o.ForgetAfter
	}
	m.inbound.m, m.inbound.pool.m, m.inbound.pool.idle = m, m, make(chan job)
	m.inbound.inline.wake = make(chan struct{}, 1)
	m.deadlines.m, m.deadlines.wake, m.deadlines.links = m, make(chan struct{}, 1), map[*link]struct{}{}
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
	m.routes.init(m)
	m.adverts.m = m
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
	m.members.changed(nil)
	m.dialers.start()
	m.wg.Add(4)
	go m.deadlines.loop()
	go m.tick()
	go func() { defer m.wg.Done(); m.inbound.pool.reap() }()
	go m.inbound.watch()
	return nil
}

// Close leaves the mesh cleanly: every peer is told (its last membership
// record, marked left, then GoAway) so it drops this host's routes at
// once and sends no new requests. Requests in flight in either direction
// get until ctx ends to finish (a link closes as soon as it has none), then
// everything closes. When ctx ended while links still had requests in
// flight, the error says how many were cut off; the mesh is closed either
// way. A second Close returns nil at once.
func (m *Mesh) Close(ctx context.Context) error {
	links, ok := m.links.shut()
	if !ok {
		return nil
	}
	m.ln.stop()
	m.members.leave(links)
	// A drain longer than the usual grace keeps the links that long: a
	// link must not be cut before the caller's deadline.
	grace := retireGrace
	if dl, ok := ctx.Deadline(); ok {
		grace = max(grace, time.Until(dl))
	}
	for _, l := range links {
		m.links.retireWithin(l, wire.ErrShutdown, "node is shutting down", grace)
	}
	cut, requests := 0, 0
	for _, l := range links {
		select {
		case <-l.done:
		case <-ctx.Done():
			if n := l.outstanding(); n > 0 {
				cut++
				requests += n
			}
			l.close(errors.New("shutdown"))
		}
	}
	m.cancel()
	m.wg.Wait()
	// Readers and the reaper, the only senders on idle, have stopped:
	// closing it sends every worker home, idle ones at once and busy ones
	// when their request ends (their link's context has ended).
	close(m.inbound.pool.idle)
	m.inbound.pool.wg.Wait()
	m.ln.close()
	if cut > 0 {
		return fmt.Errorf("mesh: %d link(s) closed with %d request(s) still in flight: %w", cut, requests, ctx.Err())
	}
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

// Untried returns the URLs of the configured peers this host has not
// finished dialling once yet (connected or failed), sorted: a node is not
// ready before it knows whether its peers answer. A dial ends within the
// handshake timeout.
func (m *Mesh) Untried() []string { return m.dialers.untried() }

// SetPeers changes the configured peers: new ones are dialled, removed
// ones stop being redialled (their links stay until they fail).
func (m *Mesh) SetPeers(peers []Peer) { m.dialers.set(peers) }

// tick runs the periodic work of the mesh every ping interval: members
// not alive for long are forgotten (and with them the traffic figures of
// peers without a link, linkSet.forgetPeers), and every link is checked for
// liveness (linkSet.sweep).
func (m *Mesh) tick() {
	defer m.wg.Done()
	t := time.NewTicker(m.ping)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			m.members.gc(now)
			m.links.forgetPeers()
			m.links.sweep(now)
		}
	}
}

// RefusedCount is how many inbound connections failed authentication or
// the handshake.
func (m *Mesh) RefusedCount() uint64 { return m.ln.refused.Load() }

// BadFrames is how many links were closed for a malformed or oversized
// frame.
func (m *Mesh) BadFrames() uint64 { return m.links.badFrames.Load() }

// ControlBytesOut is how many bytes of control frames (interest,
// membership records, pings, pongs) this host has written on the links it
// holds now; a closed link's count goes with it. It measures what
// membership and liveness cost on the wire, as the membership benchmark
// reports it.
func (m *Mesh) ControlBytesOut() uint64 {
	var n uint64
	for _, l := range m.links.all() {
		n += l.out.control.Load()
	}
	return n
}

// topologyChanged brings the own membership record up to date, rebuilds
// the routing table and schedules an interest advertisement; it is called
// when a link comes or goes and when a peer advertises.
func (m *Mesh) topologyChanged() {
	m.members.logEvents(m.members.changed(m.links.all()))
	m.routes.rebuild()
	m.adverts.schedule()
}

// LocalChanged tells the mesh that what this host serves changed (a plugin
// was loaded, reloaded or removed, a subscription opened or closed).
func (m *Mesh) LocalChanged() {
	m.members.changed(m.links.all())
	m.adverts.schedule()
}
