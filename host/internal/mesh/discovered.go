package mesh

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/identity"
)

// How a peer was found, as PeerInfo.Found reports it.
const (
	FoundConfigured = "configured" // listed in peers:
	FoundInbound    = "inbound"    // it dialled this host
	FoundMDNS       = "mdns"       // announced on the local network
	FoundGossip     = "gossip"     // learnt from a peer's interest, dialled when first used
)

// Candidate is a host that discovery reports: who it claims to be and
// where it says it listens. Nothing about it is trusted: a link to it is
// authenticated and checked against the trust policy like any other.
type Candidate struct {
	ID       identity.ID
	Name     string
	Addrs    []net.IP
	TCPPort  int // 0: no TCP
	QUICPort int // 0: no QUIC
	Source   string
	// Now skips the lower-id-first wait: the host needs the link (it is
	// about to send through a relay), not merely knows of it.
	Now bool
}

// discoveredTries bounds how long a discovered host is dialled before the
// mesh gives up until discovery reports it again.
const discoveredTries = 4

// Discovered asks the mesh to connect to a host that discovery found. It
// returns at once. A host already linked, this host itself, or one being
// dialled already is ignored. Of two hosts that find each other, the one
// with the lower id dials first; the other dials only if no link has
// formed a few seconds later, so that both do not race to open two links
// for the duplicate rule to settle.
func (m *Mesh) Discovered(c Candidate) { m.dialers.discovered(c) }

func (ds *dialers) discovered(c Candidate) {
	m := ds.m
	if c.ID == m.id || (c.TCPPort == 0 && c.QUICPort == 0) || len(c.Addrs) == 0 {
		return
	}
	ds.mu.Lock()
	// hold counts the dial in the WaitGroup Close waits on, unless Close
	// has begun.
	if !ds.started || ds.discovering[c.ID] || m.links.has(c.ID) || !m.links.hold(1) {
		ds.mu.Unlock()
		return
	}
	ds.discovering[c.ID] = true
	ds.mu.Unlock()
	m.log.Info("peer found", "source", c.Source, "node", c.Name, "id", c.ID.Short(), "addrs", c.Addrs)
	go func() {
		defer m.wg.Done()
		var err error // the last dial's, when the dialling gave up
		defer func() {
			ds.mu.Lock()
			delete(ds.discovering, c.ID)
			ds.mu.Unlock()
			if err != nil && m.ctx.Err() == nil {
				// Messages waiting for this link learn at once that it will
				// not come, instead of at their deadline.
				ds.failed.Store(c.ID, err)
				m.routes.wake()
			}
		}()
		if m.id > c.ID && !c.Now {
			select {
			case <-time.After(jitter(3 * time.Second)):
			case <-m.ctx.Done():
				return
			}
		}
		backoff := m.bmin
		for try := 0; try < discoveredTries; try++ {
			if m.ctx.Err() != nil || m.links.has(c.ID) {
				err = nil
				return
			}
			var l *link
			l, err = ds.dialCandidate(c)
			if err == nil {
				ds.failed.Delete(c.ID)
				l.found = c.Source
				m.links.up(l)
				return
			}
			m.log.Debug("dial of a discovered host failed", "node", c.Name, "id", c.ID.Short(), "err", err)
			if try == discoveredTries-1 {
				break
			}
			select {
			case <-time.After(jitter(backoff)):
			case <-m.ctx.Done():
				return
			}
			backoff = min(backoff*2, m.bmax)
		}
	}()
}

// dialling reports whether a discovered host is being dialled.
func (ds *dialers) dialling(id identity.ID) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.discovering[id]
}

// gaveUp returns why the last dialling of discovered host id gave up, if
// it did and no dialling runs now.
func (ds *dialers) gaveUp(id identity.ID) (error, bool) {
	err, failed := ds.failed.Load(id)
	if !failed || ds.dialling(id) {
		return nil, false
	}
	return err.(error), true
}

// dialCandidate tries each address, TCP first, and checks that the host
// that answers is the one that was announced.
func (ds *dialers) dialCandidate(c Candidate) (*link, error) {
	var errs []error
	for _, ip := range c.Addrs {
		for _, p := range []Peer{{Transport: TCP, Addr: net.JoinHostPort(ip.String(), strconv.Itoa(c.TCPPort))},
			{Transport: QUIC, Addr: net.JoinHostPort(ip.String(), strconv.Itoa(c.QUICPort))}} {
			if (p.Transport == TCP && c.TCPPort == 0) || (p.Transport == QUIC && c.QUICPort == 0) {
				continue
			}
			l, err := ds.dialAs(p, c.ID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("no address of node %s answered: %v", c.ID.Short(), errs)
}

// reachable returns the peer's listen URLs as this host reaches it: an
// unspecified listen host (0.0.0.0, ::) becomes the address the peer's
// link comes from.
func (l *link) reachable() []string {
	seen, _, _ := net.SplitHostPort(l.addr)
	var out []string
	for _, u := range l.listen {
		scheme, hostport, ok := strings.Cut(u, "://")
		if !ok || (scheme != TCP && scheme != QUIC) {
			continue
		}
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = seen
		}
		out = append(out, scheme+"://"+net.JoinHostPort(host, port))
	}
	return out
}

// needDirect asks for a direct link to a node this host reaches through a
// relay, from the listen URLs the relay reported, at most once per
// redialGap per node: a host links to the members it actually talks to
// (the "gossip" in peers), and the router prefers the direct link from
// then on.
func (ds *dialers) needDirect(nd *node) {
	if nd.direct != nil || len(nd.listen) == 0 {
		return
	}
	now := time.Now()
	if last, ok := ds.needAt.Load(nd.id); ok && now.Sub(last.(time.Time)) < redialGap {
		return
	}
	ds.needAt.Store(nd.id, now)
	ds.discovered(candidateOf(nd))
}

// candidateOf makes a Candidate of the listen URLs a relay or membership
// reported for nd, keeping only addresses that can be dialled.
func candidateOf(nd *node) Candidate {
	c := Candidate{ID: nd.id, Name: nd.name, Source: FoundGossip, Now: true}
	for _, u := range nd.listen {
		scheme, hostport, _ := strings.Cut(u, "://")
		host, port, err := net.SplitHostPort(hostport)
		ip := net.ParseIP(host)
		p, perr := strconv.Atoi(port)
		if err != nil || ip == nil || ip.IsUnspecified() || perr != nil || p <= 0 || p > 65535 {
			continue
		}
		if !slices.ContainsFunc(c.Addrs, ip.Equal) {
			c.Addrs = append(c.Addrs, ip)
		}
		if scheme == TCP {
			c.TCPPort = p
		} else if scheme == QUIC {
			c.QUICPort = p
		}
	}
	return c
}

// redialGap is how long after asking for a direct link to a node the mesh
// asks again, if messages still go through a relay.
const redialGap = 30 * time.Second
