package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pycomms/pycomms-host/host/internal/identity"
)

// The mesh keys: where this host listens, which hosts it dials, who it is,
// whom it trusts, and what one link may use.

// ValidNodeID returns nil when s is a node id: exactly 32 characters of
// lower-case RFC 4648 base32 (a-z and 2-7, no padding), the form in which
// host/internal/identity derives ids from node keys. Otherwise the error quotes s
// and says what is wrong, so it can be shown as is.
func ValidNodeID(s string) error {
	_, err := identity.ParseID(s)
	return err
}

// peerSchemes are the transports a peer address may name.
var peerSchemes = []string{"tcp", "quic"}

// parsePeer splits a peers entry, "tcp://HOST:PORT", "quic://HOST:PORT" or
// "HOST:PORT", into its transport ("" for the bare form) and a canonical
// host:port, so that two spellings of one address compare equal. It
// returns why s is not a peer address otherwise.
func parsePeer(s string) (transport, addr, reason string) {
	const example = " (write HOST:PORT, e.g. 10.0.0.2:7400, optionally after tcp:// or quic://)"
	if s == "" {
		return "", "", "it is empty" + example
	}
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		transport = strings.ToLower(scheme)
		if !slices.Contains(peerSchemes, transport) {
			return "", "", fmt.Sprintf("unknown scheme %q (use tcp://HOST:PORT, quic://HOST:PORT, or HOST:PORT to try TCP, then QUIC)", scheme)
		}
		rest = after
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
			if ae.Err == "missing port in address" {
				return "", "", "the port is missing" + example
			}
			return "", "", ae.Err + example
		}
		return "", "", err.Error() + example
	}
	if port == "" {
		return "", "", "the port is missing" + example
	}
	n, err := strconv.Atoi(port)
	switch {
	case err != nil || n < 0 || n > 65535 || strings.ContainsAny(port, "+-"):
		return "", "", fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	case n == 0:
		return "", "", "port 0 is not allowed for a peer (0 means any free port, which only makes sense in listen)"
	}
	if host == "" {
		return "", "", "the host is empty" + example
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	} else if hostnameRE.MatchString(host) {
		host = strings.ToLower(host) // host names are case-insensitive
	} else {
		return "", "", fmt.Sprintf("host %q is neither an IP address nor a host name", host)
	}
	return transport, net.JoinHostPort(host, strconv.Itoa(n)), ""
}

// mesh decodes the mesh keys into cfg. It runs after node.name, which the
// default data directory depends on.
func (d *decoder) mesh(cfg *Config, raw map[string]any) {
	if s, ok := d.str("data_dir", raw["data_dir"]); ok {
		if s == "" {
			d.fail("data_dir", "is empty (leave the key out for the default)")
		} else if dir, ok := d.absPath("data_dir", s); ok {
			cfg.DataDir = dir
		}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir(cfg.Node.Name)
	}

	if m, ok := d.mapping("listen", raw["listen"]); ok {
		d.unknownKeys("listen", m, listenKeys)
		for _, l := range []struct {
			key, name string
			dst       *string
		}{{"tcp", "TCP", &cfg.Listen.TCP}, {"quic", "QUIC", &cfg.Listen.QUIC}} {
			key := joinKey("listen", l.key)
			if s, ok := d.str(key, m[l.key]); ok {
				if reason := checkAddr(s); s != "" && reason != "" {
					d.fail(key, "%s is not a host:port address: %s (use e.g. %s, or \"\" to disable %s)", quote(s), reason, defaultListen, l.name)
				}
				*l.dst = s
			}
		}
	}

	if items, ok := d.strList("peers", raw["peers"]); ok {
		cfg.Peers = d.peers(items)
	}

	cfg.Identity.Key = filepath.Join(cfg.DataDir, defaultKeyFile)
	certSet := false
	if m, ok := d.mapping("identity", raw["identity"]); ok {
		d.unknownKeys("identity", m, identityKeys)
		if s, ok := d.str("identity.key", m["key"]); ok {
			// The key need not exist: the host creates it at first start.
			if s == "" {
				d.fail("identity.key", "is empty (leave the key out for the default, %s in data_dir)", defaultKeyFile)
			} else if p, ok := d.absPath("identity.key", s); ok {
				cfg.Identity.Key = p
			}
		}
		if s, ok := d.str("identity.cert", m["cert"]); ok && s != "" {
			certSet = true
			if p, ok := d.absPath("identity.cert", s); ok && d.existingFile("identity.cert", p, "certificate file") {
				cfg.Identity.Cert = p
			}
		}
	}

	caSet := false
	if m, ok := d.mapping("trust", raw["trust"]); ok {
		d.unknownKeys("trust", m, trustKeys)
		d.secret(cfg, m["secret"])
		if items, ok := d.strList("trust.nodes", m["nodes"]); ok {
			cfg.Trust.Nodes = d.nodeIDs(items)
		}
		if b, ok := d.boolean("trust.open", m["open"]); ok {
			cfg.Trust.AllowOpen = b
		}
		d.trustGiven = !empty(m["secret"]) || !empty(m["nodes"]) || !empty(m["ca"])
		if s, ok := d.str("trust.ca", m["ca"]); ok && s != "" {
			caSet = true
			if p, ok := d.absPath("trust.ca", s); ok && d.existingFile("trust.ca", p, "PEM file") && d.caBundle("trust.ca", p) {
				cfg.Trust.CA = p
			}
		}
	}
	if cfg.Trust.AllowOpen && d.trustGiven {
		d.fail("trust.open", "true says to run without trust rules, but trust.secret, trust.nodes or trust.ca sets one: remove trust.open, or the rules")
	}
	switch {
	case caSet && !certSet:
		d.fail("trust.ca", "needs identity.cert: this node's certificate signed by that CA")
	case certSet && !caSet:
		d.fail("identity.cert", "only used with trust.ca: set trust.ca to the CA that signed it, or leave identity.cert out")
	}

	if m, ok := d.mapping("limits", raw["limits"]); ok {
		d.unknownKeys("limits", m, meshLimitsKeys)
		frameOK, bufOK := true, true
		if n, ok := d.size("limits.max_frame", m["max_frame"], minMaxFrame, maxMaxFrame); ok {
			cfg.Mesh.MaxFrame = n
		} else {
			frameOK = m["max_frame"] == nil
		}
		if n, ok := d.size("limits.send_buffer", m["send_buffer"], minSendBuffer, maxSendBuffer); ok {
			cfg.Mesh.SendBuffer = n
		} else {
			bufOK = m["send_buffer"] == nil
		}
		if n, ok := d.integer("limits.inflight", m["inflight"], minInflight, maxInflight); ok {
			cfg.Mesh.Inflight = n
		}
		// Only compare two valid values: a bad one was reported already
		// and its default stands in for it.
		if frameOK && bufOK && cfg.Mesh.SendBuffer < cfg.Mesh.MaxFrame {
			const why = "the send buffer must hold at least one whole message (raise limits.send_buffer or lower limits.max_frame)"
			if m["send_buffer"] != nil {
				d.fail("limits.send_buffer", "%s is smaller than limits.max_frame (%s): %s", FormatSize(cfg.Mesh.SendBuffer), FormatSize(cfg.Mesh.MaxFrame), why)
			} else {
				d.fail("limits.max_frame", "%s is larger than limits.send_buffer (%s, the default): %s", FormatSize(cfg.Mesh.MaxFrame), FormatSize(cfg.Mesh.SendBuffer), why)
			}
		}
	}
}

// discovery decodes the discovery mapping.
func (d *decoder) discovery(cfg *Config, raw map[string]any) {
	m, ok := d.mapping("discovery", raw["discovery"])
	if !ok {
		return
	}
	d.unknownKeys("discovery", m, discoveryKeys)
	if b, ok := d.boolean("discovery.mdns", m["mdns"]); ok {
		cfg.Discovery.MDNS = b
	}
	if v, ok := d.duration("discovery.dead_after", m["dead_after"], minDeadAfter, maxDeadAfter); ok {
		cfg.Discovery.DeadAfter = v
	}
}

// empty reports a trust value that sets no rule: absent, "" or [].
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	}
	return false
}

// exposure refuses a node that other machines could join without any
// trust rule, unless trust.open says that is meant: a listener on an
// address other than loopback, or mDNS, which announces the node on the
// network. Without this, one line of config (listen.tcp: 0.0.0.0:7400)
// would let any host on the LAN call every service.
func (d *decoder) exposure(cfg *Config) {
	if !cfg.Trust.Open() || cfg.Trust.AllowOpen || d.trustGiven {
		return
	}
	const fix = "set trust.secret, trust.nodes or trust.ca (KEYS.md, \"Trust rules\"), or trust.open: true to run open on purpose"
	for _, l := range []struct{ key, addr string }{{"listen.tcp", cfg.Listen.TCP}, {"listen.quic", cfg.Listen.QUIC}} {
		if l.addr != "" && !loopbackAddr(l.addr) {
			d.fail(l.key, "%s accepts mesh links from other machines, and no trust rule is set: any host that reaches it could join the mesh and call every service; %s, or listen on 127.0.0.1", quote(l.addr), fix)
		}
	}
	if cfg.Discovery.MDNS {
		d.fail("discovery.mdns", "announces this node on the local network, and no trust rule is set: any host there could join the mesh and call every service; %s", fix)
	}
}

// loopbackAddr reports whether a listen address accepts connections from
// this machine only: a loopback IP or localhost. An empty host means every
// interface, and another name may resolve to anything.
func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// peers validates the peers list; an address listed twice with the same
// transport is an error because the host would open two links to it.
func (d *decoder) peers(items []listItem) []Peer {
	out := []Peer{}
	first := map[string]listItem{}
	for _, it := range items {
		key := indexKey("peers", it.index)
		transport, addr, reason := parsePeer(it.s)
		if reason != "" {
			d.fail(key, "%s is not a peer address: %s", quote(it.s), reason)
			continue
		}
		id := transport + " " + addr
		if f, dup := first[id]; dup {
			if f.s == it.s {
				d.fail(key, "%s is listed twice (first at peers[%d])", quote(it.s), f.index)
			} else {
				d.fail(key, "%s is the same peer as peers[%d] (%s)", quote(it.s), f.index, quote(f.s))
			}
			continue
		}
		first[id] = it
		out = append(out, Peer{Index: it.index, Raw: it.s, Transport: transport, Addr: addr})
	}
	return out
}

// secret checks trust.secret without ever putting its value in a message.
func (d *decoder) secret(cfg *Config, v any) {
	const key = "trust.secret"
	switch s := v.(type) {
	case nil:
	case string:
		if s != "" && len(s) < minSecretLen {
			d.fail(key, "is %d bytes long: a secret shorter than %d bytes is guessable (use a long random string, e.g. the output of openssl rand -hex 32)", len(s), minSecretLen)
			return
		}
		cfg.Trust.Secret = s
	default:
		what := "a value that is not a string"
		switch s.(type) {
		case []any:
			what = "a list"
		case map[string]any, map[any]any:
			what = "a mapping"
		case int, int64, uint64, float64:
			what = "a number"
		case bool:
			what = "a boolean"
		}
		d.fail(key, "expected a string, got %s (quote the secret; its value is not shown here)", what)
	}
}

func (d *decoder) nodeIDs(items []listItem) []string {
	out := []string{}
	first := map[string]int{}
	for _, it := range items {
		key := indexKey("trust.nodes", it.index)
		if err := ValidNodeID(it.s); err != nil {
			d.fail(key, "%s", err)
			continue
		}
		if j, dup := first[it.s]; dup {
			d.fail(key, "node id %q is listed twice (first at trust.nodes[%d])", it.s, j)
			continue
		}
		first[it.s] = it.index
		out = append(out, it.s)
	}
	return out
}

// existingFile reports whether path is an existing file that is not a
// directory, and why not otherwise; what names the kind of file expected.
func (d *decoder) existingFile(key, path, what string) bool {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.failCause(key, err, "file %s does not exist", path)
	case err != nil:
		d.failCause(key, err, "cannot use %s: %s", path, pathReason(err))
	case fi.IsDir():
		d.fail(key, "%s is a directory, not a %s", path, what)
	default:
		return true
	}
	return false
}

// caBundle reports whether the file at path is a CA bundle the mesh can
// use, by loading it the way the host does at start: one or more PEM
// certificates and nothing else, each a valid X.509 certificate.
func (d *decoder) caBundle(key, path string) bool {
	if _, err := identity.LoadCA(path); err != nil {
		d.failCause(key, err, "%s", err)
		return false
	}
	return true
}

// defaultDataDir is pycomms-host/NODE in the user data directory, else in
// the temporary directory. The node name keeps hosts that share a machine
// (and a user) from sharing a key.
func defaultDataDir(node string) string {
	if dir, err := osUserDataDir(); err == nil && filepath.IsAbs(dir) {
		return filepath.Join(dir, "pycomms-host", node)
	}
	return filepath.Join(os.TempDir(), "pycomms-host-data", node)
}
