package config

import (
	"fmt"
	"slices"
	"strings"
)

// Reload is what a reload does with a changed key.
type Reload int

const (
	// reloadUnset is the zero value: a key declared without a class,
	// which TestKeysHaveReloadClass refuses.
	reloadUnset Reload = iota
	// Live keys are applied by a reload.
	Live
	// Restart keys need a restart: a reload that changes one is refused,
	// naming it.
	Restart
)

func (r Reload) String() string {
	switch r {
	case Live:
		return "live"
	case Restart:
		return "restart"
	}
	return "unset"
}

// Type is the kind of value a key holds, as KEYS.md names it.
type Type string

// The types of keys.
const (
	TypeString   Type = "string"
	TypeAddr     Type = "host:port"
	TypePath     Type = "path"
	TypeBool     Type = "bool"
	TypeInt      Type = "integer"
	TypeSize     Type = "size"
	TypeDuration Type = "duration"
	TypeStrings  Type = "list of strings"
	TypeMapping  Type = "mapping"
	TypeControl  Type = "host:port or mapping"
	TypePlugins  Type = "list of mappings"
)

// Key declares one config key: everything about it that is not decoding
// logic lives here, once. The decoder's lists of known keys, the env
// variable names, KEYS.md's key table (TestKeysTable), Digest, the
// restart-or-live decision of a reload (RestartKeysChanged, SamePlugin)
// are all derived from Keys; tests check that the decoder and the
// documented defaults agree with it.
type Key struct {
	// Path is the key path, "plugins[]." for a key of every plugin:
	// "log.level", "plugins[].limits.memory".
	Path    string
	Type    Type
	Default string // Markdown, as KEYS.md shows it
	Doc     string // Markdown, as KEYS.md shows it
	Reload  Reload

	// node returns the value of a key outside the plugin list, plugin the
	// value of a key of one plugin; both nil for a key that only groups
	// others (control, discovery, plugins). Values are compared and
	// digested with digestWriter.value.
	node   func(c *Config) any
	plugin func(p *Plugin) any
}

// Env is the environment variable that sets the key; for a key of a
// plugin, that of plugins[0].
func (k Key) Env() string {
	p := strings.ReplaceAll(k.Path, "[]", ".0")
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(p, ".", "__"))
}

// Keys returns the declaration of every key, in the order of KEYS.md.
func Keys() []Key { return slices.Clone(keys) }

// childKeys returns the names of the keys directly under prefix ("" for
// the top level, "plugins[]", "plugins[].limits"), in table order. A key
// that has keys under it but no row of its own (node, log, ...) is still
// listed, where its first child is.
func childKeys(prefix string) []string {
	var out []string
	for _, k := range keys {
		rest := k.Path
		if prefix != "" {
			var ok bool
			if rest, ok = strings.CutPrefix(k.Path, prefix+"."); !ok {
				continue
			}
		}
		if strings.HasPrefix(rest, "plugins[]") && prefix == "" {
			rest = "plugins"
		}
		name, _, _ := strings.Cut(rest, ".")
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// keyPaths returns the paths of the keys of type t.
func keyPaths(t Type) []string {
	var out []string
	for _, k := range keys {
		if k.Type == t {
			out = append(out, k.Path)
		}
	}
	return out
}

// RestartKeysChanged returns the paths of the Restart keys whose values
// differ between a and b, in table order: what a reload from a to b
// cannot apply.
func RestartKeysChanged(a, b *Config) []string {
	var out []string
	for _, k := range keys {
		if k.Reload == Restart && k.node != nil && !sameValue(k.node(a), k.node(b)) {
			out = append(out, k.Path)
		}
	}
	return out
}

// SamePlugin reports whether a and b are the same plugin with the same
// settings: every plugins[] key equal, the position in the list aside.
func SamePlugin(a, b Plugin) bool {
	for _, k := range keys {
		if k.plugin != nil && !sameValue(k.plugin(&a), k.plugin(&b)) {
			return false
		}
	}
	return true
}

// sameValue compares two values of a key by their digest encoding, so
// that reload and Digest never disagree on what changed.
func sameValue(a, b any) bool {
	return digestOf(a) == digestOf(b)
}

func digestOf(v any) string {
	w := digestWriter{h: newHash()}
	w.value(v)
	return string(w.h.Sum(nil))
}

// peerAddrs is what identifies the peers list: each peer's transport and
// address. Raw is left out: "tcp://A:7400" and "tcp://a:7400" dial the
// same.
func peerAddrs(peers []Peer) []string {
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = fmt.Sprintf("%s %s", p.Transport, p.Addr)
	}
	return out
}

var keys = []Key{
	{
		Path: "node.name", Type: TypeString, Reload: Restart,
		Default: "the host name (its first label if the full name is not valid), else `pycomms`",
		Doc:     "This host's name among its peers. 1–63 characters: letters, digits, `.`, `_`, `-`; starts with a letter or digit.",
		node:    func(c *Config) any { return c.Node.Name },
	},
	{
		Path: "control", Type: TypeControl, Reload: Restart,
		Default: "`127.0.0.1:7480`",
		Doc:     "The local control API, used by `pycomms-host call/pub/sub/reload`: a mapping of the keys below, or a bare address, short for `{listen: ADDR}`.",
	},
	{
		Path: "control.listen", Type: TypeAddr, Reload: Restart,
		Default: "`127.0.0.1:7480`",
		Doc:     "Where the control API listens: `host:port`, or `unix://` and an absolute socket path (`unix:///run/pycomms/control.sock`, at most 107 bytes; the socket is made mode 0600, owner only). `\"\"` disables it. An address other than loopback (`0.0.0.0:7480`, `:7480`, `10.0.0.1:7480`, a host name) is refused at start without `control.token_file` (host/control/API.md, \"Security\").",
		node:    func(c *Config) any { return c.Control },
	},
	{
		Path: "control.allow_hosts", Type: TypeStrings, Reload: Restart,
		Default: "`[]`",
		Doc:     "Host names (without port) the control API accepts in a request's `Host` header, besides IP addresses and `localhost`, which it always accepts. Any other name is refused with `403 denied` naming this key, because a web page can make a browser send its own name to a local port (DNS rebinding). List the names the API is reached by, e.g. from a container network: `[pycomms.internal]`. Case does not matter; each name once.",
		node:    func(c *Config) any { return c.ControlAllowHosts },
	},
	{
		Path: "control.token_file", Type: TypePath, Reload: Live,
		Default: "none",
		Doc:     "A file holding the token the control API requires, sent by clients as `Authorization: Bearer TOKEN` (the CLI: `--token-file FILE` or `PYCOMMS_CONTROL_TOKEN`). Required when `control.listen` is not loopback or a unix socket; when set, required on every listener. The file must be mode 0600 or stricter (refused if wider, naming its mode), hold 16–4096 bytes of printable ASCII (surrounding white space is ignored), and is read at start and again at every reload, whether or not the path changed: write a new token into the file (or point the key at another) and reload to rotate it. Requests already admitted finish; later ones need the new token, the CLI's next command included. Requests without it are answered `401 denied`; `/healthz` and `/readyz` need no token. A relative path is relative to the config file's directory.",
		node:    func(c *Config) any { return c.ControlTokenFile },
	},
	{
		Path: "control.public_metrics", Type: TypeBool, Reload: Live,
		Default: "`false`",
		Doc:     "`true` serves `/metrics` without the token, for a scraper that cannot send one. The metrics show plugin and service names and traffic counts, nothing else.",
		node:    func(c *Config) any { return c.ControlPublicMetrics },
	},
	{
		Path: "cache_dir", Type: TypePath, Reload: Restart,
		Default: "`pycomms-host` in the user cache directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux), else `pycomms-host-cache` in the temporary directory",
		Doc:     "Where compiled modules are cached so that a restart does not compile again. A relative path is relative to the config file's directory.",
		node:    func(c *Config) any { return c.CacheDir },
	},
	{
		Path: "data_dir", Type: TypePath, Reload: Restart,
		Default: "`pycomms-host/NODE` in the user data directory (`$XDG_DATA_HOME` when it is absolute, else `~/.local/share`), NODE being `node.name`; else `pycomms-host-data/NODE` in the temporary directory",
		Doc:     "Where the node keeps its state, such as its private key. The default is per node name so that several hosts on one machine never share a key. A relative path is relative to the config file's directory.",
		node:    func(c *Config) any { return c.DataDir },
	},
	{
		Path: "log.level", Type: TypeString, Reload: Restart,
		Default: "`info`",
		Doc:     "`debug`, `info`, `warn` or `error`.",
		node:    func(c *Config) any { return c.Log.Level },
	},
	{
		Path: "log.format", Type: TypeString, Reload: Restart,
		Default: "`text`",
		Doc:     "`text` or `json`.",
		node:    func(c *Config) any { return c.Log.Format },
	},
	{
		Path: "listen.tcp", Type: TypeAddr, Reload: Restart,
		Default: "`127.0.0.1:7400`",
		Doc:     "`host:port` where this host accepts mesh links over TCP; port `0` picks any free port. `\"\"` disables TCP. The default accepts links from this machine only; an address other than loopback (`0.0.0.0:7400`, `10.0.0.1:7400`, `:7400`, a host name) needs a trust rule, or `trust.open: true`. Setting only one of `listen.tcp` and `listen.quic` leaves the other at its default.",
		node:    func(c *Config) any { return c.Listen.TCP },
	},
	{
		Path: "listen.quic", Type: TypeAddr, Reload: Restart,
		Default: "`127.0.0.1:7400`",
		Doc:     "The same for QUIC. QUIC runs over UDP, so it may use the same port number as `listen.tcp`. `\"\"` disables QUIC.",
		node:    func(c *Config) any { return c.Listen.QUIC },
	},
	{
		Path: "peers", Type: TypeStrings, Reload: Live,
		Default: "`[]` (dial nobody)",
		Doc:     "Hosts this host dials: `tcp://HOST:PORT`, `quic://HOST:PORT`, or `HOST:PORT` to try TCP, then QUIC. HOST is an IP address (IPv6 in brackets: `[fd00::5]:7400`) or a host name; the port is required and cannot be 0. The same address twice with the same transport is an error. Peers are also seeds: through any one of them a host learns every member of the mesh (membership records flooded over the links) and links to the members it sends to.",
		node:    func(c *Config) any { return peerAddrs(c.Peers) },
	},
	{
		Path: "identity.key", Type: TypePath, Reload: Restart,
		Default: "`node.key` in `data_dir`",
		Doc:     "The node's ed25519 private key (PEM, PKCS#8), from which its node id derives. Created at first start when missing. A relative path is relative to the config file's directory.",
		node:    func(c *Config) any { return c.Identity.Key },
	},
	{
		Path: "identity.cert", Type: TypePath, Reload: Restart,
		Default: "none",
		Doc:     "This node's certificate (PEM), signed by `trust.ca`. The file must exist. Required by `trust.ca`, and an error without it.",
		node:    func(c *Config) any { return c.Identity.Cert },
	},
	{
		Path: "trust.secret", Type: TypeString, Reload: Restart,
		Default: "none",
		Doc:     "A shared cluster secret that peers must also hold. At least 16 bytes: a shorter one is guessable. Errors about it never show its value.",
		node:    func(c *Config) any { return c.Trust.Secret },
	},
	{
		Path: "trust.nodes", Type: TypeStrings, Reload: Restart,
		Default: "`[]`",
		Doc:     "Node ids of the hosts allowed to join, each listed once. A node id is exactly 32 characters of lower-case base32: `a-z` and `2-7`.",
		node:    func(c *Config) any { return c.Trust.Nodes },
	},
	{
		Path: "trust.ca", Type: TypePath, Reload: Restart,
		Default: "none",
		Doc:     "A PEM bundle of one or more CA certificates: peers must present a certificate signed by one of them. The file must exist and hold only valid X.509 certificates. Needs `identity.cert`.",
		node:    func(c *Config) any { return c.Trust.CA },
	},
	{
		Path: "trust.open", Type: TypeBool, Reload: Restart,
		Default: "`false`",
		Doc:     "`true` runs the node with no trust rule on purpose. Without a rule, a listener on an address other than loopback (`listen.tcp`, `listen.quic`) or `discovery.mdns: true` is refused unless this is `true`, because any host that reaches the node could join the mesh and call every service. An error together with `trust.secret`, `trust.nodes` or `trust.ca`.",
		node:    func(c *Config) any { return c.Trust.AllowOpen },
	},
	{
		Path: "limits.max_frame", Type: TypeSize, Reload: Restart,
		Default: "`1MiB`",
		Doc:     "Largest payload of one message on a mesh link, 1KiB–64MiB. (Top-level `limits` bound mesh links; a plugin's bounds are `plugins[].limits`.)",
		node:    func(c *Config) any { return c.Mesh.MaxFrame },
	},
	{
		Path: "limits.send_buffer", Type: TypeSize, Reload: Restart,
		Default: "`8MiB`",
		Doc:     "Bytes queued for one peer before senders wait (requests) or events are dropped, 64KiB–1GiB, and at least `limits.max_frame`.",
		node:    func(c *Config) any { return c.Mesh.SendBuffer },
	},
	{
		Path: "limits.inflight", Type: TypeInt, Reload: Restart,
		Default: "`1024`",
		Doc:     "Requests one peer may have waiting on this host at once, 1–1000000.",
		node:    func(c *Config) any { return c.Mesh.Inflight },
	},
	{
		Path: "discovery", Type: TypeMapping, Reload: Restart,
		Default: "—",
		Doc:     "How this host finds other hosts besides `peers`.",
	},
	{
		Path: "discovery.mdns", Type: TypeBool, Reload: Restart,
		Default: "`false`",
		Doc:     "Announce this host and browse for others with mDNS / DNS-SD (`_pycomms._udp`) on the local network segment, and connect to the hosts found. Off by default: a host announces itself on a network only when asked to. Hosts found this way still pass the trust check of `trust.*`, and `true` needs a trust rule (or `trust.open: true`): a node announced on the network with no rule could be joined by any host there. The mesh must also listen on an address the other hosts reach, such as `0.0.0.0:7400`, which needs the rule anyway.",
		node:    func(c *Config) any { return c.Discovery.MDNS },
	},
	{
		Path: "discovery.dead_after", Type: TypeDuration, Reload: Restart,
		Default: "`5s`",
		Doc:     "How long a peer may stay silent (no frame, or a write blocked) before its link is closed and its routes removed, 1s–10m. Pings go out at a fifth of it, and a silent link is closed after four fifths to all of it. A link on which requests wait goes faster, whatever this key: it is probed, gets no new requests once a probe is unanswered for four round trips (at least 250ms), and is closed after four times that (abi/PROTOCOL.md section 9). Hosts further away are marked lost as soon as their neighbours' membership records say so, so within the same time; a host that stops cleanly is marked left at once.",
		node:    func(c *Config) any { return c.Discovery.DeadAfter },
	},
	{
		Path: "drain_timeout", Type: TypeDuration, Reload: Live,
		Default: "`10s`",
		Doc:     "How long a stopping node (SIGTERM or SIGINT) waits for the work in flight to finish, 0s–1h: calls and sends that came in through the control API or a transport, and requests from peers. Meanwhile new ones are refused with `busy` (\"draining\"), `/readyz` answers `503`, and the peers are told the node leaves (abi/PROTOCOL.md section 9). `run` exits 0 when everything finished, 11 when this timeout cut work off (cmd/pycomms-host/EXITCODES.md). `0s` stops without waiting. A reload applies it to the next stop.",
		node:    func(c *Config) any { return c.DrainTimeout },
	},
	{
		Path: "queues.max_attempts", Type: TypeInt, Reload: Live,
		Default: "`5`",
		Doc:     "Durable queues (abi/SPEC.md section 15) keep their messages in `queues.db` in `data_dir` until acknowledged; `queues.*` says how they are delivered. This key: deliveries of one message, 1–1000, before it is moved to its queue's dead letters (`pycomms-host queues dead NAME`). A delivery fails when the handler returns any status but `ok`; one the consumer never ran (`busy`, a plugin being replaced) is not counted.",
		node:    func(c *Config) any { return c.Queues.MaxAttempts },
	},
	{
		Path: "queues.backoff", Type: TypeDuration, Reload: Live,
		Default: "`1s`",
		Doc:     "The wait before a failed message is delivered again, 1ms–1h; it doubles with each failed attempt, up to `queues.max_backoff`. Other messages of the queue are delivered meanwhile.",
		node:    func(c *Config) any { return c.Queues.Backoff },
	},
	{
		Path: "queues.max_backoff", Type: TypeDuration, Reload: Live,
		Default: "`1m`",
		Doc:     "The longest wait between two deliveries of a failing message, 1ms–24h; at least `queues.backoff`. Left out, it is `1m` or `queues.backoff` when that is longer.",
		node:    func(c *Config) any { return c.Queues.MaxBackoff },
	},
	{
		Path: "queues.max_depth", Type: TypeInt, Reload: Live,
		Default: "`100000`",
		Doc:     "The most messages one queue holds on this host (dead letters aside), 1–100000000. An enqueue beyond it fails with `busy`.",
		node:    func(c *Config) any { return c.Queues.MaxDepth },
	},
	{
		Path: "plugins", Type: TypePlugins, Reload: Live,
		Default: "`[]` (no plugins)",
		Doc:     "The plugins this host runs, in order. Error messages count list indexes from 0: `plugins[0]`.",
	},
	{
		Path: "plugins[].name", Type: TypeString, Reload: Live,
		Default: "required",
		Doc:     "Unique name of the plugin, used in logs and errors. 1–63 characters: `a-z`, `0-9`, `_`, `-`; starts with a letter or digit.",
		plugin:  func(p *Plugin) any { return p.Name },
	},
	{
		Path: "plugins[].path", Type: TypePath, Reload: Live,
		Default: "required",
		Doc:     "The `.wasm` file, relative to the config file's directory; or `builtin:NAME` for a plugin embedded in the host binary. The file must exist.",
		plugin:  func(p *Plugin) any { return p.Path },
	},
	{
		Path: "plugins[].kind", Type: TypeString, Reload: Live,
		Default: "`handler`",
		Doc:     "The plugin kind: `handler`, `transport` (a wire protocol whose sockets the host owns, abi/SPEC.md section 13; it needs `dial` or `accept`) or `codec` (converts payloads between content types or encodings for the plugins that declare `accepts`, abi/SPEC.md section 14; it has no `services`, `topics`, `accepts` or `encodings`). The module's exports must match it.",
		plugin:  func(p *Plugin) any { return p.Kind },
	},
	{
		Path: "plugins[].accepts", Type: TypeStrings, Reload: Live,
		Default: "none: payloads are delivered as they are",
		Doc:     "Media types the plugin takes, in order of preference, lower-case `type/subtype` without parameters, e.g. `[application/cbor]`. A message whose `content-type` header is another type is converted for it by a codec plugin (to the first type listed that a codec reaches) before delivery, and the reply converted back to the caller's type or to what its `accept` header asks for; with no codec the caller gets `unsupported_type` (abi/SPEC.md section 14.5). A message without `content-type` is delivered as it is.",
		plugin:  func(p *Plugin) any { return p.Accepts },
	},
	{
		Path: "plugins[].encodings", Type: TypeStrings, Reload: Live,
		Default: "`[]` (only `identity`)",
		Doc:     "Content codings the plugin takes as they are, e.g. `[gzip]`, besides `identity` (none). A message with another `content-encoding` is decoded by a codec plugin first. Needs `accepts`.",
		plugin:  func(p *Plugin) any { return p.Encodings },
	},
	{
		Path: "plugins[].queues", Type: TypeStrings, Reload: Live,
		Default: "`[]`",
		Doc:     "Handler only: durable queues the plugin consumes (abi/SPEC.md section 15), names such as `orders` (subject syntax, no wildcards). This host then keeps those queues: an enqueue (`pycomms-host enqueue orders ...`, or a call to `$queue.orders` from anywhere in the mesh) is stored on disk before it is acknowledged, and delivered to the plugin as a send on subject `$queue.orders` until the handler returns `ok` (at least once; see `queues.*` for retries and dead letters). A queue has one consuming plugin per host.",
		plugin:  func(p *Plugin) any { return p.Queues },
	},
	{
		Path: "plugins[].services", Type: TypeStrings, Reload: Live,
		Default: "`[]`",
		Doc:     "Services the plugin serves (request/reply and one-way sends): subjects such as `inventory` or `orders.v1`, tokens separated by `.`, printable ASCII without spaces, no wildcards. A service belongs to one plugin only.",
		plugin:  func(p *Plugin) any { return p.Services },
	},
	{
		Path: "plugins[].topics", Type: TypeStrings, Reload: Live,
		Default: "`[]`",
		Doc:     "Topic patterns the plugin subscribes to: `*` matches one whole token, `>` (last token only) one or more, e.g. `greetings.>`, `orders.*.created`.",
		plugin:  func(p *Plugin) any { return p.Topics },
	},
	{
		Path: "plugins[].instances", Type: TypeInt, Reload: Live,
		Default: "`2`",
		Doc:     "Size of the instance pool, 1–256: how many messages the plugin handles at the same time.",
		plugin:  func(p *Plugin) any { return p.Instances },
	},
	{
		Path: "plugins[].queue", Type: TypeInt, Reload: Live,
		Default: "`1024`",
		Doc:     "How many messages may wait for a free instance, 1–1000000; beyond that, senders get `busy`.",
		plugin:  func(p *Plugin) any { return p.Queue },
	},
	{
		Path: "plugins[].watch", Type: TypeBool, Reload: Live,
		Default: "`true`",
		Doc:     "Reload the plugin when its file changes.",
		plugin:  func(p *Plugin) any { return p.Watch },
	},
	{
		Path: "plugins[].limits.memory", Type: TypeSize, Reload: Live,
		Default: "`16MiB`",
		Doc:     "Linear memory cap per instance, 64KiB–4GiB.",
		plugin:  func(p *Plugin) any { return p.Limits.Memory },
	},
	{
		Path: "plugins[].limits.timeout", Type: TypeDuration, Reload: Live,
		Default: "`5s`",
		Doc:     "Time limit per message, 1ms–1h.",
		plugin:  func(p *Plugin) any { return p.Limits.Timeout },
	},
	{
		Path: "plugins[].limits.max_reply", Type: TypeSize, Reload: Live,
		Default: "`1MiB`",
		Doc:     "Largest reply the plugin may set, 1B–64MiB.",
		plugin:  func(p *Plugin) any { return p.Limits.MaxReply },
	},
	{
		Path: "plugins[].limits.max_module", Type: TypeSize, Reload: Live,
		Default: "`64MiB`",
		Doc:     "Largest `.wasm` file the plugin may be, 1KiB–1GiB. A larger file is refused before it is read whole (at start, on reload and by `validate`), with an error naming both sizes; the old version keeps serving. The counts inside a module have fixed maximums (abi/SPEC.md §\"Module limits\").",
		plugin:  func(p *Plugin) any { return p.Limits.MaxModule },
	},
	{
		Path: "plugins[].limits.read_buffer", Type: TypeSize, Reload: Live,
		Default: "`64KiB`",
		Doc:     "Transport only: bytes the host keeps per connection for the plugin to consume, 1KiB–64MiB. A connection whose plugin consumes nothing of a full buffer is closed (an oversized frame closes that connection only).",
		plugin:  func(p *Plugin) any { return p.Limits.ReadBuffer },
	},
	{
		Path: "plugins[].limits.write_buffer", Type: TypeSize, Reload: Live,
		Default: "`1MiB`",
		Doc:     "Transport only: bytes queued for writing per connection, 1KiB–64MiB; a write past it closes the connection.",
		plugin:  func(p *Plugin) any { return p.Limits.WriteBuffer },
	},
	{
		Path: "plugins[].limits.max_conns", Type: TypeInt, Reload: Live,
		Default: "`1024`",
		Doc:     "Transport only: connections open at once, 1–1000000; further accepted ones are closed at once.",
		plugin:  func(p *Plugin) any { return p.Limits.MaxConns },
	},
	{
		Path: "plugins[].grants", Type: TypeStrings, Reload: Live,
		Default: "`[log]`",
		Doc:     "Capabilities granted to the plugin, each at most once: `log`, `publish`, `call`, `send`. `[]` grants none.",
		plugin:  func(p *Plugin) any { return p.Grants },
	},
	{
		Path: "plugins[].config", Type: TypeMapping, Reload: Live,
		Default: "`{}`",
		Doc:     "Free-form mapping handed to the plugin as is (read with the `config` and `config_get` host functions).",
		plugin:  func(p *Plugin) any { return p.Config },
	},
	{
		Path: "plugins[].dial", Type: TypeStrings, Reload: Live,
		Default: "`[]`",
		Doc:     "Transport only: `tcp://host:port` or `tls://host:port` addresses the host connects to for the plugin, keeping one connection to each open (redialled with backoff, 100ms doubling to 5s). Also the plugin's whole allow-list: it opens more connections by index into this list, never by address.",
		plugin:  func(p *Plugin) any { return addrsRaw(p.Transport.Dial) },
	},
	{
		Path: "plugins[].accept", Type: TypeStrings, Reload: Live,
		Default: "`[]`",
		Doc:     "Transport only: `tcp://host:port` addresses the host accepts connections on for the plugin (port 0: any free port). Beyond loopback it needs `allow_from` or `open: true`.",
		plugin:  func(p *Plugin) any { return addrsRaw(p.Transport.Accept) },
	},
	{
		Path: "plugins[].allow_from", Type: TypeStrings, Reload: Live,
		Default: "unset (any source)",
		Doc:     "Transport only: networks (CIDR, or single IP addresses) an accepted connection may come from; others are closed at once and counted.",
		plugin:  func(p *Plugin) any { return prefixesRaw(p.Transport.AllowFrom) },
	},
	{
		Path: "plugins[].open", Type: TypeBool, Reload: Live,
		Default: "`false`",
		Doc:     "Transport only: accept from any source on a non-loopback `accept` address without `allow_from`, on purpose.",
		plugin:  func(p *Plugin) any { return p.Transport.Open },
	},
	{
		Path: "plugins[].ca", Type: TypePath, Reload: Live,
		Default: "unset (system roots)",
		Doc:     "Transport only: PEM CA bundle that verifies the servers of `tls://` dial entries.",
		plugin:  func(p *Plugin) any { return p.Transport.CA },
	},
	{
		Path: "plugins[].secrets", Type: TypeStrings, Reload: Live,
		Default: "`[]`",
		Doc:     "Keys of `config` (dotted, e.g. `auth.password`) whose values are secret: shown as `[redacted]` where the config is shown (`/v1/plugins` shows a transport's; a handler's config is not shown). Each must be a key of `config`.",
		plugin:  func(p *Plugin) any { return p.Secrets },
	},
}
