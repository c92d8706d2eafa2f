// Package cluster runs N pycomms hosts for a test, in this process (through
// host/node) or as `pycomms-host run` processes, on loopback, linked in a
// chain or fully, directly or through the proxies of package hosttest, and
// lets the test kill, freeze, thaw and restart them while it checks, host
// by host, what each one sees.
//
//	c := cluster.Start(t, cluster.Options{Hosts: 2, Transport: "tcp", Proxied: true,
//		Plugins: map[string]string{"a": cluster.WatEcho("echo")}})
//	hosttest.CheckFor(t, 10*time.Second, func() error { return c.Host("b").HasRoute("echo") })
//
// Links: host i dials the hosts before it (Chain: host i-1 only; Full: all
// of them), so a host starts after those it dials. Everything a cluster
// starts (nodes, processes, proxies, temp dirs) ends with the test.
//
// Hosts may differ: the transport of the links each dials, its trust, its
// listen address, its plugins and more config (Options, Host.SetPlugins,
// SetExtra, EditConfig); a test rewrites a running host's config and
// makes it reload (WriteConfig, RewriteConfig, then Reload, or Signal with
// SIGHUP), reads its log by record (Host.Records) and finds hosts whose
// names repeat by number (HostAt). Process hosts may run another program
// than the one the cluster builds (Options.Binary: the CLI's tests run
// their own test binary) and through a wrapper (Options.Wrap: ip netns
// exec).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Mode says where the hosts run.
type Mode int

const (
	// InProcess runs each host as a host/node.Node in the test process.
	InProcess Mode = iota
	// Process runs each host as a `pycomms-host run` process, built once
	// per test binary (see Main).
	Process
)

func (m Mode) String() string {
	if m == Process {
		return "process"
	}
	return "in-process"
}

// Topology says which hosts list which as peers.
type Topology int

const (
	// Chain: each host dials the one before it (b dials a, c dials b).
	Chain Topology = iota
	// Full: each host dials every host before it.
	Full
	// None: no host lists a peer; the test links them (Host.SetPeers).
	None
)

// Options describe a cluster. The zero value is two in-process hosts, a
// and b, b dialling a over TCP.
type Options struct {
	// Hosts is how many hosts (default: as many as Names, else 2), named
	// a, b, c, ... unless Names is set.
	Hosts int
	Names []string
	Mode  Mode
	// Transport of the links the topology makes: "tcp" (default) or "quic".
	Transport string
	// Transports holds, by host name, the transport of the links that
	// host dials, where it differs from Transport (a chain whose links
	// mix TCP and QUIC).
	Transports map[string]string
	Topology   Topology
	// Proxied puts every link the topology makes through its own proxy
	// (a TCPProxy for tcp, a UDPProxy for quic; Cluster.TCPProxy and
	// UDPProxy find them), so that a test can delay, drop and partition
	// it. Hosts also link to the members they send to (gossip, at the
	// listen address a member announces), which bypasses the proxies: with
	// two hosts that never happens (a host is a member only through a
	// live link), with more it can; CheckProxied tells.
	Proxied bool
	// DeadAfter is discovery.dead_after (default: the mesh's 5s).
	DeadAfter time.Duration
	// ForgetAfter is node.Options.ForgetAfter, how long a host keeps a
	// peer that left or was lost (default: the mesh's, at least a
	// minute). InProcess only: it is no config key.
	ForgetAfter time.Duration
	// Secret is trust.secret (default: a fixed test secret).
	Secret string
	// Trust holds, by host name, the value of the host's trust: key (YAML,
	// such as "{nodes: [ID]}") in place of {secret: Secret}; an empty value
	// writes no trust: key at all.
	Trust map[string]string
	// Plugins holds, by host name, the items of its plugins: list (YAML,
	// each line indented by two spaces, as WatEcho returns).
	Plugins map[string]string
	// Extra holds, by host name, more top-level config YAML.
	Extra map[string]string
	// CacheDir is the compile cache the hosts share (default: one temp dir
	// per cluster).
	CacheDir string
	// Binary is the program a Process host runs as `Binary run -c FILE`
	// (default: ./cmd/pycomms-host, built once per test binary). The CLI's
	// tests pass their own test binary, which runs as the host when Env
	// says so: no build step, and the hosts have the test's -race.
	Binary string
	// Env is added to a Process host's environment (which otherwise is
	// the test's, without PYCOMMS_* variables).
	Env []string
	// Wrap, if set, may change the command of a Process host before it
	// starts: run it through a wrapper that execs it (`ip netns exec NS
	// ...`), add to its Env. The cluster sets its output, its parent-death
	// signal and its working directory.
	Wrap func(h *Host, cmd *exec.Cmd)
	// ListenHost holds, by host name, the IP address its mesh listens on
	// (default 127.0.0.1; its control API stays on 127.0.0.1): a host in
	// a network namespace of the test's, on a LAN address or on 0.0.0.0.
	ListenHost map[string]string
}

// Cluster is a set of hosts started for one test.
type Cluster struct {
	t       testing.TB
	opts    Options
	hosts   []*Host
	tcpProx map[[2]string]*hosttest.TCPProxy
	udpProx map[[2]string]*hosttest.UDPProxy
}

// DefaultSecret is the trust.secret of a cluster whose Options set none.
const DefaultSecret = "hosttest-cluster-secret-0123456789"

// StartTimeout bounds a host's start, a cold plugin compile included, on
// a loaded two-core machine under -race.
const StartTimeout = 120 * time.Second

// New prepares a cluster without starting it: each host's directory and
// config. Start them with StartAll or one by one (Host.Start).
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Hosts == 0 {
		opts.Hosts = len(opts.Names)
		if opts.Hosts == 0 {
			opts.Hosts = 2
		}
	}
	if opts.Names == nil {
		for i := range opts.Hosts {
			opts.Names = append(opts.Names, string(rune('a'+i)))
		}
	}
	if len(opts.Names) != opts.Hosts {
		t.Fatalf("cluster: %d names for %d hosts", len(opts.Names), opts.Hosts)
	}
	if opts.Transport == "" {
		opts.Transport = "tcp"
	}
	for _, tr := range append([]string{opts.Transport}, slices.Collect(maps.Values(opts.Transports))...) {
		if tr != "tcp" && tr != "quic" {
			t.Fatalf("cluster: transport %q, want tcp or quic", tr)
		}
	}
	if opts.ForgetAfter > 0 && opts.Mode == Process {
		t.Fatalf("cluster: ForgetAfter is a node.Options field, which a Process host cannot take")
	}
	if opts.Secret == "" {
		opts.Secret = DefaultSecret
	}
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	c := &Cluster{t: t, opts: opts, tcpProx: map[[2]string]*hosttest.TCPProxy{}, udpProx: map[[2]string]*hosttest.UDPProxy{}}
	for i, name := range opts.Names {
		if slices.Index(opts.Names, name) != i && opts.Proxied {
			t.Fatalf("cluster: host name %q repeats, and proxies are found by host name: a Proxied cluster needs distinct names", name)
		}
		h := &Host{Name: name, Index: i, c: c, dir: t.TempDir(), Logs: &hosttest.SyncBuffer{}, Records: &hosttest.LogRecords{},
			plugins: opts.Plugins[name], extra: opts.Extra[name]}
		h.trust, h.ownTrust = opts.Trust[name]
		c.hosts = append(c.hosts, h)
	}
	t.Cleanup(func() {
		// Last started, first stopped: dialers go before what they dial.
		for _, h := range slices.Backward(c.hosts) {
			h.stop()
		}
		for _, h := range c.hosts {
			// A host built with -race reports data races in its output
			// (its exit status is lost to SIGKILL).
			logs := h.Logs.String()
			if i := strings.Index(logs, "WARNING: DATA RACE"); i >= 0 {
				t.Errorf("host %s reported a data race:\n%s", h, logs[i:min(len(logs), i+8000)])
			}
		}
		if t.Failed() {
			for _, h := range c.hosts {
				t.Logf("host %s (%s), last log lines:\n%s", h, opts.Mode, tail(h.Logs.String(), 40))
			}
		}
	})
	return c
}

// Start is New then StartAll.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c := New(t, opts)
	c.StartAll()
	return c
}

// StartAll starts the hosts in order, each one dialling those before it
// as the topology says, and fails the test if one does not start.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for i, h := range c.hosts {
		var dials []*Host
		switch c.opts.Topology {
		case Chain:
			if i > 0 {
				dials = c.hosts[i-1 : i]
			}
		case Full:
			dials = c.hosts[:i]
		}
		var peers []string
		for _, to := range dials {
			peers = append(peers, c.link(h, to))
		}
		h.peers = peers
		if err := h.Start(); err != nil {
			c.t.Fatal(err)
		}
	}
}

// link returns the peer URL from uses to reach to: to's own address, or
// that of a new proxy in front of it.
func (c *Cluster) link(from, to *Host) string {
	tr := c.opts.Transport
	if t, ok := c.opts.Transports[from.Name]; ok {
		tr = t
	}
	if !c.opts.Proxied {
		return to.PeerURL(tr)
	}
	key := [2]string{from.Name, to.Name}
	if tr == "tcp" {
		p := hosttest.NewTCPProxy(c.t, to.tcp)
		c.tcpProx[key] = p
		return "tcp://" + p.Addr()
	}
	p := hosttest.NewUDPProxy(c.t, to.quic)
	c.udpProx[key] = p
	return "quic://" + p.Addr()
}

// TCPProxy is the proxy of the link from host from to host to (Proxied
// over tcp); the test fails if there is none.
func (c *Cluster) TCPProxy(from, to string) *hosttest.TCPProxy {
	c.t.Helper()
	p := c.tcpProx[[2]string{from, to}]
	if p == nil {
		c.t.Fatalf("cluster: no tcp proxy on the link from %s to %s", from, to)
	}
	return p
}

// UDPProxy is the proxy of the link from host from to host to (Proxied
// over quic); the test fails if there is none.
func (c *Cluster) UDPProxy(from, to string) *hosttest.UDPProxy {
	c.t.Helper()
	p := c.udpProx[[2]string{from, to}]
	if p == nil {
		c.t.Fatalf("cluster: no udp proxy on the link from %s to %s", from, to)
	}
	return p
}

// CheckProxied returns an error naming the link unless every link that a
// host of the cluster dialled to another goes through a proxy of the
// cluster: a fault test's proof that its proxies carry the traffic it
// disturbs. A link has a dialling side, so checking those covers all.
func (c *Cluster) CheckProxied() error {
	proxies := map[string]bool{}
	for _, p := range c.tcpProx {
		proxies[p.Addr()] = true
	}
	for _, p := range c.udpProx {
		proxies[p.Addr()] = true
	}
	for _, h := range c.hosts {
		if !h.Running() {
			continue
		}
		ps, err := h.Peers()
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.State == control.PeerUp && p.Dialed && !proxies[p.Addr] {
				return fmt.Errorf("host %q: link to %s at %s/%s bypasses the proxies (found: %s; peers %s)", h, p.Name, p.Transport, p.Addr, p.Found, peersString(ps))
			}
		}
	}
	return nil
}

// Host returns the host named name; the test fails if there is none, or
// more than one (HostAt finds hosts whose names repeat).
func (c *Cluster) Host(name string) *Host {
	c.t.Helper()
	var found *Host
	for _, h := range c.hosts {
		if h.Name == name {
			if found != nil {
				c.t.Fatalf("cluster: hosts %d and %d are both named %q: use HostAt", found.Index, h.Index, name)
			}
			found = h
		}
	}
	if found == nil {
		c.t.Fatalf("cluster: no host %q", name)
	}
	return found
}

// HostAt returns host number i (0-based, in start order).
func (c *Cluster) HostAt(i int) *Host {
	c.t.Helper()
	if i < 0 || i >= len(c.hosts) {
		c.t.Fatalf("cluster: no host number %d of %d", i, len(c.hosts))
	}
	return c.hosts[i]
}

// Hosts returns the hosts in start order.
func (c *Cluster) Hosts() []*Host { return slices.Clone(c.hosts) }

// WatEcho is a plugins: item running testdata/wat/echo.wasm (it upper-cases
// a request's payload) under the name and services given.
func WatEcho(name string, services ...string) string {
	return fmt.Sprintf("  - {name: %s, path: %q, services: [%s], instances: 1, watch: false}\n",
		name, TestdataPath("wat", "echo.wasm"), strings.Join(services, ", "))
}

// TestdataPath is the absolute path of a file under the repository's
// testdata directory.
func TestdataPath(parts ...string) string {
	root, err := repoRoot()
	if err != nil {
		panic(err)
	}
	return filepath.Join(append([]string{root, "testdata"}, parts...)...)
}

// repoRoot finds the pycomms-host module's directory above the working
// directory (a nested module, such as the benchmarks', is skipped).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/pycomms/pycomms-host\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cluster: no pycomms-host go.mod above the working directory")
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ctx is a context for one control request from a check.
func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// peersString summarises a peer list for an error message.
func peersString(ps []control.PeerInfo) string {
	var b strings.Builder
	b.WriteString("[")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		name := p.Name
		if name == "" {
			name = p.Config
		}
		fmt.Fprintf(&b, "%s %s", name, p.State)
		if p.Addr != "" {
			fmt.Fprintf(&b, " %s/%s", p.Transport, p.Addr)
		}
		if len(p.Services) > 0 {
			fmt.Fprintf(&b, " %v", p.Services)
		}
		if p.Error != "" {
			fmt.Fprintf(&b, " (%s)", p.Error)
		}
	}
	b.WriteString("]")
	return b.String()
}
