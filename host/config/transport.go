package config

import (
	"net/netip"
	"slices"
	"strings"
)

// Transport holds the keys of a plugin of kind transport (abi/SPEC.md
// section 13): the sockets the host owns for it.
type Transport struct {
	// Dial are the addresses the host connects to for the plugin, in order:
	// also the plugin's whole allow-list (it opens connections by index).
	Dial []TransportAddr
	// Accept are the addresses the host accepts connections on for it.
	Accept []TransportAddr
	// AllowFrom, when set, are the source networks an accepted connection
	// may come from; nil accepts any (loopback listeners, or open: true).
	AllowFrom []netip.Prefix
	// Open (open: true) says that accepting from anywhere beyond loopback
	// without allow_from is meant.
	Open bool
	// CA is the absolute path of a PEM bundle that verifies tls:// dial
	// entries; "" uses the system roots.
	CA string
}

// TransportAddr is one dial or accept entry.
type TransportAddr struct {
	Raw    string // as written
	Scheme string // "tcp" or "tls"
	Addr   string // host:port
}

// Defaults and bounds of the transport limits; KEYS.md documents them.
const (
	DefaultReadBuffer  = 64 << 10
	DefaultWriteBuffer = 1 << 20
	DefaultMaxConns    = 1024
	minBuffer          = 1 << 10
	maxBuffer          = 64 << 20
	maxMaxConns        = 1000000
)

// Redacted stands for a secret value wherever the config is shown.
const Redacted = "[redacted]"

// transportKeys are the plugin keys only a transport may set.
var transportKeys = []string{"dial", "accept", "allow_from", "open", "ca"}

// transport decodes the transport keys of plugin i; for another kind it
// refuses them by name.
func (d *decoder) transport(p *Plugin, m map[string]any, key func(string) string) {
	d.secrets(p, m, key)
	if p.Kind != "transport" {
		for _, k := range transportKeys {
			if m[k] != nil {
				d.fail(key(k), "only a plugin of kind transport has %s (this one is kind %s)", k, p.Kind)
			}
		}
		return
	}
	t := &p.Transport
	if items, ok := d.strList(key("dial"), m["dial"]); ok {
		t.Dial = d.transportAddrs(key("dial"), items, []string{"tcp", "tls"})
	}
	if items, ok := d.strList(key("accept"), m["accept"]); ok {
		t.Accept = d.transportAddrs(key("accept"), items, []string{"tcp"})
	}
	if items, ok := d.strList(key("allow_from"), m["allow_from"]); ok {
		t.AllowFrom = []netip.Prefix{}
		for _, it := range items {
			pf, err := netip.ParsePrefix(it.s)
			if err != nil {
				if ip, err2 := netip.ParseAddr(it.s); err2 == nil {
					pf = netip.PrefixFrom(ip, ip.BitLen())
				} else {
					d.fail(indexKey(key("allow_from"), it.index), "%s is not a network in CIDR form (e.g. 10.0.0.0/8) or an IP address", quote(it.s))
					continue
				}
			}
			t.AllowFrom = append(t.AllowFrom, pf.Masked())
		}
	}
	if b, ok := d.boolean(key("open"), m["open"]); ok {
		t.Open = b
	}
	if s, ok := d.str(key("ca"), m["ca"]); ok && s != "" {
		if path, ok := d.absPath(key("ca"), s); ok && d.existingFile(key("ca"), path, "CA bundle") && d.caBundle(key("ca"), path) {
			t.CA = path
		}
	}
	if len(t.Dial) == 0 && len(t.Accept) == 0 && m["dial"] == nil && m["accept"] == nil {
		d.fail(key("kind"), "a transport needs dial or accept entries (tcp://host:port), or it has no connection to carry anything")
	}
	if t.AllowFrom == nil && !t.Open {
		for i, a := range t.Accept {
			if !loopbackAddr(a.Addr) {
				d.fail(indexKey(key("accept"), i), "%s accepts connections from other machines: set allow_from (the networks that may connect, e.g. [10.0.0.0/8]) or open: true to accept from anywhere on purpose, or accept on 127.0.0.1", quote(a.Raw))
			}
		}
	}
}

// transportAddrs parses scheme://host:port entries.
func (d *decoder) transportAddrs(listKey string, items []listItem, schemes []string) []TransportAddr {
	var out []TransportAddr
	first := map[string]int{}
	for _, it := range items {
		k := indexKey(listKey, it.index)
		scheme, addr, ok := strings.Cut(it.s, "://")
		if !ok || !slices.Contains(schemes, scheme) {
			forms := make([]string, len(schemes))
			for i, sc := range schemes {
				forms[i] = sc + "://host:port"
			}
			d.fail(k, "%s is not a %s address", quote(it.s), strings.Join(forms, " or "))
			continue
		}
		if reason := checkAddr(addr); reason != "" {
			d.fail(k, "%s: %s", quote(it.s), reason)
			continue
		}
		if j, dup := first[it.s]; dup {
			d.fail(k, "%s is listed twice (first at [%d])", quote(it.s), j)
			continue
		}
		first[it.s] = it.index
		out = append(out, TransportAddr{Raw: it.s, Scheme: scheme, Addr: addr})
	}
	return out
}

// transportLimits decodes the limits only a transport has.
func (d *decoder) transportLimits(p *Plugin, lm map[string]any, lkey func(string) string) {
	for _, k := range []string{"read_buffer", "write_buffer", "max_conns"} {
		if lm[k] != nil && p.Kind != "transport" {
			d.fail(lkey(k), "only a plugin of kind transport has limits.%s (this one is kind %s)", k, p.Kind)
		}
	}
	if n, ok := d.size(lkey("read_buffer"), lm["read_buffer"], minBuffer, maxBuffer); ok {
		p.Limits.ReadBuffer = n
	}
	if n, ok := d.size(lkey("write_buffer"), lm["write_buffer"], minBuffer, maxBuffer); ok {
		p.Limits.WriteBuffer = n
	}
	if n, ok := d.integer(lkey("max_conns"), lm["max_conns"], 1, maxMaxConns); ok {
		p.Limits.MaxConns = n
	}
}

// secrets decodes the secrets key (any kind of plugin): each must name a
// key of the plugin's config.
func (d *decoder) secrets(p *Plugin, m map[string]any, key func(string) string) {
	items, ok := d.strList(key("secrets"), m["secrets"])
	if !ok {
		return
	}
	flat := flatKeys(p.Config, "")
	for _, it := range items {
		if !slices.Contains(flat, it.s) {
			d.fail(indexKey(key("secrets"), it.index), "%s is not a key of config (write it as config_get reads it, e.g. auth.password)", quote(it.s))
			continue
		}
		p.Secrets = append(p.Secrets, it.s)
	}
}

// RedactedConfig returns the plugin's config with the values of its
// secrets replaced by Redacted: what may be shown.
func (p Plugin) RedactedConfig() map[string]any {
	return redact(p.Config, "", p.Secrets).(map[string]any)
}

func redact(v any, path string, secrets []string) any {
	if path != "" && slices.Contains(secrets, path) {
		return Redacted
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		p := k
		if path != "" {
			p = path + "." + k
		}
		out[k] = redact(x, p, secrets)
	}
	return out
}

// flatKeys lists the dotted paths of config's values, mappings included.
func flatKeys(m map[string]any, prefix string) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = append(out, p)
		if sub, ok := v.(map[string]any); ok {
			out = append(out, flatKeys(sub, p)...)
		}
	}
	return out
}

func addrsRaw(a []TransportAddr) []string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = x.Raw
	}
	return out
}

func prefixesRaw(p []netip.Prefix) []string {
	if p == nil {
		return nil
	}
	out := make([]string, len(p))
	for i, x := range p {
		out[i] = x.String()
	}
	return out
}
