package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// dialers keeps this host linked to the peers its config lists (one
// dialer each, redialling with backoff) and dials the hosts discovery and
// gossip report (discovered.go). It owns the dialers and the record of
// what is being dialled.
type dialers struct {
	m *Mesh

	mu      sync.Mutex
	byURL   map[string]*dialer // configured peers, by URL
	started bool               // Start ran: dialers run
	// discovering holds the ids discovery reported that are being dialled.
	discovering map[identity.ID]bool

	needAt sync.Map // node id -> time.Time of the last needDirect
	failed sync.Map // node id -> error: the last dial of a discovered host gave up
}

func (ds *dialers) init(m *Mesh, peers []Peer) {
	ds.m, ds.byURL, ds.discovering = m, map[string]*dialer{}, map[identity.ID]bool{}
	for _, p := range peers {
		ds.byURL[p.URL()] = &dialer{peer: p, state: control.PeerConnecting}
	}
}

// start starts every configured peer's dialer.
func (ds *dialers) start() {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.started = true
	for _, d := range ds.byURL {
		ds.run(d)
	}
}

// run starts d's loop unless the mesh is closing; ds.mu is held.
func (ds *dialers) run(d *dialer) {
	d.stop = make(chan struct{})
	if ds.m.links.hold(1) {
		go ds.loop(d)
	}
}

// set changes the configured peers: new ones are dialled, removed ones
// stop being redialled (their links stay until they fail).
func (ds *dialers) set(peers []Peer) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	want := map[string]Peer{}
	for _, p := range peers {
		want[p.URL()] = p
	}
	for u, d := range ds.byURL {
		if _, ok := want[u]; !ok {
			if d.stop != nil { // nil until Start runs the dialer
				close(d.stop)
			}
			delete(ds.byURL, u)
		}
	}
	for u, p := range want {
		if _, ok := ds.byURL[u]; !ok {
			d := &dialer{peer: p, state: control.PeerConnecting}
			ds.byURL[u] = d
			if ds.started {
				ds.run(d)
			}
		}
	}
}

// list returns the configured peers' dialers.
func (ds *dialers) list() []*dialer {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	out := make([]*dialer, 0, len(ds.byURL))
	for _, d := range ds.byURL {
		out = append(out, d)
	}
	return out
}

// untried returns the URLs of the configured peers whose first dial has
// not ended yet, sorted.
func (ds *dialers) untried() []string {
	var out []string
	for _, d := range ds.list() {
		d.mu.Lock()
		if !d.tried {
			out = append(out, d.peer.URL())
		}
		d.mu.Unlock()
	}
	slices.Sort(out)
	return out
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
	// tried is set once the first dial ended, in a link or an error:
	// until then the node is not ready (Mesh.Untried).
	tried bool
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

// dialLoop connects to d's peer, waits while the link (or another link to
// the same node) is up, and reconnects with jittered exponential backoff.
func (ds *dialers) loop(d *dialer) {
	m := ds.m
	defer m.wg.Done()
	backoff := m.bmin
	for {
		if m.ctx.Err() != nil {
			return
		}
		// Connected through a link the peer dialled: nothing to do until it
		// goes.
		if d.id != "" {
			l, ch := m.links.watch(d.id)
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
		l, err := ds.dial(d.peer)
		d.set(func(d *dialer) { d.tried = true })
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
		m.links.up(l)
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
func (ds *dialers) dial(p Peer) (*link, error) { return ds.dialAs(p, "") }

// dialAs is dial that, when expect is set, refuses in the TLS handshake a
// host that is not node expect: before either side has a link, so that a
// wrong address cannot replace the peer's link to the right host.
func (ds *dialers) dialAs(p Peer, expect identity.ID) (*link, error) {
	m := ds.m
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
