package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/discovery"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/mesh"
	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// newMesh loads this node's identity and trust policy and prepares its
// mesh; errors name the config key they come from.
func (n *Node) newMesh() error {
	cfg := n.cfg
	id, err := identity.LoadOrCreate(cfg.Identity.Key, cfg.Identity.Cert)
	if err != nil {
		key := "identity.key"
		if cfg.Identity.Cert != "" {
			key = "identity.cert"
		}
		return &config.Errors{List: []*config.Error{cfg.At(key, "%v", err)}}
	}
	policy, err := policyOf(cfg.Trust)
	if err != nil {
		return &config.Errors{List: []*config.Error{cfg.At("trust.ca", "%v", err)}}
	}
	// discovery.dead_after decides when a silent peer is dropped; pings
	// go out at a fifth of it so that a few lost ones are not a death.
	dead, ping := cfg.Discovery.DeadAfter, cfg.Discovery.DeadAfter/5
	if n.opts.DeadAfter > 0 {
		dead = n.opts.DeadAfter
	}
	if n.opts.PingInterval > 0 {
		ping = n.opts.PingInterval
	}
	m, err := mesh.New(mesh.Options{
		Identity: id, Policy: policy, Name: cfg.Node.Name, Local: n.router, Logger: n.logger,
		ListenTCP: cfg.Listen.TCP, ListenQUIC: cfg.Listen.QUIC, Peers: peersOf(cfg.Peers),
		MaxFrame: int(cfg.Mesh.MaxFrame), SendBuffer: int(cfg.Mesh.SendBuffer), Inflight: cfg.Mesh.Inflight,
		PingInterval: ping, DeadAfter: dead, ForgetAfter: n.opts.ForgetAfter,
	})
	if err != nil {
		return err
	}
	n.mesh = m
	n.router.SetRemote(m)
	return nil
}

func policyOf(t config.Trust) (*identity.Policy, error) {
	p := &identity.Policy{}
	if t.Secret != "" {
		p.Secret = []byte(t.Secret)
	}
	if len(t.Nodes) > 0 {
		p.Nodes = map[identity.ID]bool{}
		for _, s := range t.Nodes {
			p.Nodes[identity.ID(s)] = true
		}
	}
	if t.CA != "" {
		pool, err := identity.LoadCA(t.CA)
		if err != nil {
			return nil, err
		}
		p.CA = pool
	}
	return p, nil
}

func peersOf(ps []config.Peer) []mesh.Peer {
	out := make([]mesh.Peer, len(ps))
	for i, p := range ps {
		out[i] = mesh.Peer{Transport: p.Transport, Addr: p.Addr}
	}
	return out
}

// ID is this node's id.
func (n *Node) ID() string { return string(n.mesh.ID()) }

// InMesh reports whether this node takes part in a mesh (control.Mesh): it
// accepts links, runs mDNS discovery, or knows another host (configured
// peers count from the start, and a link outlives a reload that removes
// its peer). A node that does none of these answers the control API's
// mesh routes with no_handler, as API.md says.
func (n *Node) InMesh() bool {
	return n.meshOn || len(n.mesh.Peers()) > 0
}

// CallNode routes a request to the named node (control.Backend). While
// the node drains it is refused with busy.
func (n *Node) CallNode(ctx context.Context, ref string, m *message.Message) ([]byte, error) {
	done, err := n.admit("calls", m.Subject)
	if err != nil {
		return nil, err
	}
	defer done()
	self, err := n.mesh.Target(ref)
	if err != nil {
		return nil, err
	}
	if self {
		return n.router.Call(ctx, local(m))
	}
	return n.mesh.CallTo(ctx, ref, m)
}

// SendNode delivers a one-way message to the named node (control.Backend).
// While the node drains it is refused with busy.
func (n *Node) SendNode(ctx context.Context, ref string, m *message.Message) error {
	done, err := n.admit("sends", m.Subject)
	if err != nil {
		return err
	}
	defer done()
	self, err := n.mesh.Target(ref)
	if err != nil {
		return err
	}
	if self {
		return n.router.Send(ctx, local(m))
	}
	return n.mesh.SendTo(ctx, ref, m)
}

// local marks m so that the router serves it here or not at all: a message
// for this node must not be passed on to another.
func local(m *message.Message) *message.Message {
	c := *m
	c.Local = true
	return &c
}

// Peers lists the hosts this node knows (control.Backend). The service and
// topic lists are cloned because the mesh shares them with its routing
// table, and a caller may keep or change what it is handed.
func (n *Node) Peers() []control.PeerInfo {
	ps := n.mesh.Peers()
	if ps == nil {
		return []control.PeerInfo{}
	}
	for i := range ps {
		ps[i].Services, ps[i].Topics = slices.Clone(ps[i].Services), slices.Clone(ps[i].Topics)
	}
	return ps
}

// startMesh listens and dials, and starts mDNS discovery when configured;
// it logs the trust mode, warning when the node runs open.
func (n *Node) startMesh() error {
	if err := n.mesh.Start(); err != nil {
		// Start fails only to listen; say on which key and address.
		var oe *net.OpError
		switch {
		case errors.As(err, &oe) && strings.HasPrefix(oe.Net, "udp"):
			return listenError("listen.quic", n.cfg.Listen.QUIC, err)
		case errors.As(err, &oe):
			return listenError("listen.tcp", n.cfg.Listen.TCP, err)
		}
		return fmt.Errorf("mesh: %w", err)
	}
	if n.cfg.Discovery.MDNS {
		if err := n.startMDNS(); err != nil {
			n.closeMesh()
			return fmt.Errorf("discovery.mdns: %w", err)
		}
	}
	for _, w := range n.cfg.Warnings() {
		n.logger.Warn(w)
	}
	tcpURL, quicURL := n.mesh.Addrs()
	n.meshOn = tcpURL != "" || quicURL != "" || n.mdns != nil
	n.logger.Info("mesh listening", "id", n.mesh.ID(), "tcp", tcpURL, "quic", quicURL, "peers", len(n.cfg.Peers), "trust", trustMode(n.cfg.Trust))
	return nil
}

func trustMode(t config.Trust) string {
	var modes []string
	if t.Secret != "" {
		modes = append(modes, "secret")
	}
	if len(t.Nodes) > 0 {
		modes = append(modes, "nodes")
	}
	if t.CA != "" {
		modes = append(modes, "ca")
	}
	if len(modes) == 0 {
		return "open"
	}
	return fmt.Sprint(modes)
}

// startMDNS announces this node on every multicast-capable interface of
// its network namespace and hands every host it finds to the mesh, which
// dials it and admits it only if it passes the trust check.
func (n *Node) startMDNS() error {
	ifaces, err := discovery.MulticastInterfaces()
	if err != nil {
		return err
	}
	if len(ifaces) == 0 {
		return fmt.Errorf("no up, multicast-capable, non-loopback interface to announce on")
	}
	rec := discovery.Record{ID: n.ID(), Name: n.cfg.Node.Name, MinProto: wire.MinVersion, MaxProto: wire.MaxVersion}
	tcpAddr, quicAddr := n.mesh.ListenAddrs()
	rec.TCPPort, rec.QUICPort = int(tcpAddr.Port()), int(quicAddr.Port())
	// Announce only addresses the listeners are bound to: a host listening
	// on one interface's address must not send peers to another's.
	var listen []net.IP
	for _, ap := range []netip.AddrPort{tcpAddr, quicAddr} {
		// A zoned (link-local) listen address is not passed on: discovery
		// compares plain IPs.
		if ap.IsValid() && ap.Addr().Zone() == "" {
			listen = append(listen, net.IP(ap.Addr().AsSlice()))
		}
	}
	svc, err := discovery.Start(discovery.Options{Self: rec, Interfaces: ifaces, Listen: listen, Logger: n.logger,
		OnFound: func(f discovery.Found) {
			if f.MaxProto < wire.MinVersion || f.MinProto > wire.MaxVersion {
				n.logger.Debug("mdns: host speaks no common protocol version", "node", f.Name, "proto", fmt.Sprintf("%d..%d", f.MinProto, f.MaxProto))
				return
			}
			n.mesh.Discovered(mesh.Candidate{ID: identity.ID(f.ID), Name: f.Name, Addrs: f.Addrs,
				TCPPort: f.TCPPort, QUICPort: f.QUICPort, Source: mesh.FoundMDNS})
		}})
	if err != nil {
		return err
	}
	names := make([]string, len(ifaces))
	for i, ifc := range ifaces {
		names[i] = ifc.Name
	}
	n.logger.Info("mdns discovery on", "service", discovery.ServiceType, "interfaces", names)
	n.mdns = svc
	return nil
}

// closeMesh leaves the mesh with the usual grace for the links' requests
// (after a Drain it is closed already, and this does nothing).
func (n *Node) closeMesh() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.leaveMesh(ctx); err != nil {
		n.logger.Warn("mesh closed with requests in flight", "err", err)
	}
}
