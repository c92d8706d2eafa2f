package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
)

// The schema: the known keys of every mapping, in the order KEYS.md
// documents them, all from the key table (keys.go). Everything under
// plugins[i].config is free-form.
var (
	topKeys        = childKeys("")
	nodeKeys       = childKeys("node")
	controlKeys    = childKeys("control")
	logKeys        = childKeys("log")
	listenKeys     = childKeys("listen")
	identityKeys   = childKeys("identity")
	trustKeys      = childKeys("trust")
	meshLimitsKeys = childKeys("limits")
	discoveryKeys  = childKeys("discovery")
	pluginKeys     = childKeys("plugins[]")
	limitsKeys     = childKeys("plugins[].limits")
)

var (
	nodeNameRE   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)
	pluginNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	builtinRE    = regexp.MustCompile(`^builtin:[a-z0-9_-]+$`)
	hostnameRE   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$`)
)

// Accepted ranges. They keep one bad line of config from exhausting the
// machine (a million instances, a 1 TiB memory cap) while leaving room for
// every sensible setting.
const (
	minInstances, maxInstances = 1, 256
	minQueue, maxQueue         = 1, 1_000_000
	minMemory, maxMemory       = 64 << 10, 4 << 30
	minTimeout, maxTimeout     = time.Millisecond, time.Hour
	minMaxReply, maxMaxReply   = 1, 64 << 20
	minMaxModule, maxMaxModule = 1 << 10, 1 << 30 // fuel.MaxModule

	minMaxFrame, maxMaxFrame     = 1 << 10, 64 << 20
	minSendBuffer, maxSendBuffer = 64 << 10, 1 << 30
	minInflight, maxInflight     = 1, 1_000_000
	minSecretLen                 = 16
)

// knownKinds are the plugin kinds.
var knownKinds = []string{"handler", "codec", "transport"}

// decoder turns the merged koanf map into a Config, reporting every
// problem it finds rather than stopping at the first.
type decoder struct {
	src  *source
	errs *Errors
	dir  string // directory of the config file; "" when there is none

	services []serviceRef // every valid service, for the cross-plugin check
	consumed []serviceRef // every valid consumed queue, likewise
	// trustGiven says that the config sets a trust rule, valid or not: an
	// invalid one is reported on its own, not as a missing one.
	trustGiven bool
}

type serviceRef struct {
	plugin, item int
	name         string
}

func (d *decoder) fail(key, format string, args ...any) {
	d.errs.Add(d.src.errAt(key, false, fmt.Sprintf(format, args...)))
}

// failCause is fail with an underlying error that errors.Is can find.
func (d *decoder) failCause(key string, cause error, format string, args ...any) {
	e := d.src.errAt(key, false, fmt.Sprintf(format, args...))
	e.Err = cause
	d.errs.Add(e)
}

func (d *decoder) fromEnv(key string) bool {
	_, ok := d.src.envFor(key)
	return ok
}

func (d *decoder) decode(raw map[string]any) *Config {
	cfg := &Config{
		Node:      Node{Name: defaultNodeName()},
		Control:   DefaultControl,
		CacheDir:  defaultCacheDir(),
		Log:       Log{Level: slog.LevelInfo, Format: "text"},
		Listen:    Listen{TCP: defaultListen, QUIC: defaultListen},
		Peers:     []Peer{},
		Trust:     Trust{Nodes: []string{}},
		Mesh:      defaultMeshLimits(),
		Discovery: Discovery{DeadAfter: defaultDeadAfter},
		Plugins:   []Plugin{},

		DrainTimeout: DefaultDrainTimeout,
		Queues: Queues{MaxAttempts: DefaultQueueMaxAttempts, Backoff: DefaultQueueBackoff,
			MaxBackoff: DefaultQueueMaxBackoff, MaxDepth: DefaultQueueMaxDepth},
	}
	d.unknownKeys("", raw, topKeys)

	if m, ok := d.mapping("node", raw["node"]); ok {
		d.unknownKeys("node", m, nodeKeys)
		if s, ok := d.str("node.name", m["name"]); ok {
			if nodeNameRE.MatchString(s) {
				cfg.Node.Name = s
			} else {
				d.fail("node.name", "%s is not a valid node name (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters)", quote(s))
			}
		}
	}

	d.control(cfg, raw["control"])

	if s, ok := d.str("cache_dir", raw["cache_dir"]); ok {
		if s == "" {
			d.fail("cache_dir", "is empty (leave the key out for the default)")
		} else if dir, ok := d.absPath("cache_dir", s); ok {
			cfg.CacheDir = dir
		}
	}

	if m, ok := d.mapping("log", raw["log"]); ok {
		d.unknownKeys("log", m, logKeys)
		if s, ok := d.str("log.level", m["level"]); ok {
			var lvl slog.Level
			switch strings.ToLower(s) {
			case "debug":
				lvl = slog.LevelDebug
			case "info":
				lvl = slog.LevelInfo
			case "warn":
				lvl = slog.LevelWarn
			case "error":
				lvl = slog.LevelError
			default:
				d.fail("log.level", "unknown level %s (use debug, info, warn or error)", quote(s))
			}
			cfg.Log.Level = lvl
		}
		if s, ok := d.str("log.format", m["format"]); ok {
			switch f := strings.ToLower(s); f {
			case "text", "json":
				cfg.Log.Format = f
			default:
				d.fail("log.format", "unknown format %s (use text or json)", quote(s))
			}
		}
	}

	if v, ok := d.duration("drain_timeout", raw["drain_timeout"], 0, maxDrainTimeout); ok {
		cfg.DrainTimeout = v
	}

	d.queues(cfg, raw["queues"])
	d.mesh(cfg, raw)
	d.discovery(cfg, raw)
	d.exposure(cfg)

	switch v := raw["plugins"].(type) {
	case nil:
	case []any:
		for i, e := range v {
			key := indexKey("plugins", i)
			m, ok := e.(map[string]any)
			if !ok {
				d.fail(key, "expected a mapping (a plugin with name, path, ...), got %s", d.src.describe(key, e))
				continue
			}
			cfg.Plugins = append(cfg.Plugins, d.plugin(i, m))
		}
		d.crossCheck(cfg.Plugins)
	default:
		d.fail("plugins", "expected a list of plugins, got %s", d.src.describe("plugins", v))
	}
	return cfg
}

func (d *decoder) plugin(i int, m map[string]any) Plugin {
	base := indexKey("plugins", i)
	key := func(k string) string { return joinKey(base, k) }
	p := Plugin{
		Index:     i,
		Kind:      "handler",
		Services:  []string{},
		Topics:    []string{},
		Instances: DefaultInstances,
		Queue:     DefaultQueue,
		Watch:     true,
		Limits:    defaultLimits(),
		Grants:    abi.DefaultGrants(),
		Config:    map[string]any{},
	}
	d.unknownKeys(base, m, pluginKeys)

	if m["name"] == nil {
		d.fail(key("name"), "missing: every plugin needs a unique name")
	} else if s, ok := d.str(key("name"), m["name"]); ok {
		if pluginNameRE.MatchString(s) {
			p.Name = s
		} else {
			d.fail(key("name"), "%s is not a valid plugin name (lower-case letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters)", quote(s))
		}
	}

	if m["path"] == nil {
		d.fail(key("path"), "missing: every plugin needs a path (a .wasm file, or builtin:NAME)")
	} else if s, ok := d.str(key("path"), m["path"]); ok {
		p.Path = d.pluginPath(key("path"), s)
	}

	if s, ok := d.str(key("kind"), m["kind"]); ok {
		switch {
		case slices.Contains(knownKinds, s):
			p.Kind = s
		default:
			d.fail(key("kind"), "unknown kind %s (known: %s)", quote(s), strings.Join(knownKinds, ", "))
		}
	}

	if items, ok := d.strList(key("services"), m["services"]); ok {
		p.Services = d.subjects(i, "services", items, false)
	}
	if items, ok := d.strList(key("topics"), m["topics"]); ok {
		p.Topics = d.subjects(i, "topics", items, true)
	}
	if items, ok := d.strList(key("queues"), m["queues"]); ok {
		if p.Kind != "handler" {
			d.fail(key("queues"), "only a plugin of kind handler consumes queues (this one is kind %s)", p.Kind)
		} else {
			p.Queues = d.queueNames(i, items)
		}
	}
	if n, ok := d.integer(key("instances"), m["instances"], minInstances, maxInstances); ok {
		p.Instances = n
	}
	if n, ok := d.integer(key("queue"), m["queue"], minQueue, maxQueue); ok {
		p.Queue = n
	}
	if b, ok := d.boolean(key("watch"), m["watch"]); ok {
		p.Watch = b
	}

	if lm, ok := d.mapping(key("limits"), m["limits"]); ok {
		lkey := func(k string) string { return joinKey(key("limits"), k) }
		d.unknownKeys(key("limits"), lm, limitsKeys)
		if n, ok := d.size(lkey("memory"), lm["memory"], minMemory, maxMemory); ok {
			p.Limits.Memory = n
		}
		if t, ok := d.duration(lkey("timeout"), lm["timeout"], minTimeout, maxTimeout); ok {
			p.Limits.Timeout = t
		}
		if n, ok := d.size(lkey("max_reply"), lm["max_reply"], minMaxReply, maxMaxReply); ok {
			p.Limits.MaxReply = n
		}
		if n, ok := d.size(lkey("max_module"), lm["max_module"], minMaxModule, maxMaxModule); ok {
			p.Limits.MaxModule = n
		}
		d.transportLimits(&p, lm, lkey)
	}

	if items, ok := d.strList(key("grants"), m["grants"]); ok {
		p.Grants = d.grants(key("grants"), items)
	}

	if cm, ok := d.mapping(key("config"), m["config"]); ok {
		p.Config = normalize(cm).(map[string]any)
	}
	d.transport(&p, m, key)
	d.contentTypes(&p, m, key)
	return p
}

// control decodes the control key: a mapping {listen, allow_hosts,
// token_file, public_metrics}, or the shorthand of a bare address for
// {listen: ADDR}.
func (d *decoder) control(cfg *Config, v any) {
	listenKey := ""
	listen := func(key string, v any) {
		if s, ok := d.str(key, v); ok {
			listenKey = key
			if reason := checkControlAddr(s); s != "" && reason != "" {
				what := "a host:port address"
				if _, unix := control.UnixPath(s); unix {
					what = "a unix socket address"
				}
				d.fail(key, "%s is not %s: %s (use e.g. 127.0.0.1:7480 or unix:///run/pycomms/control.sock, or \"\" to disable the control API)", quote(s), what, reason)
			}
			cfg.Control = s
		}
	}
	defer func() { d.controlExposure(cfg, listenKey) }()
	m, isMap := v.(map[string]any)
	if !isMap {
		if _, isStr := v.(string); v != nil && !isStr {
			hint := ""
			if p, ok := d.src.pos["control"]; ok && p.node != nil && p.node.Kind == yaml.ScalarNode {
				hint = fmt.Sprintf(" (quote it: %q)", p.node.Value)
			}
			d.fail("control", "expected host:port or a mapping {listen: ADDR, allow_hosts: [NAME, ...]}, got %s%s", d.src.describe("control", v), hint)
			return
		}
		listen("control", v)
		return
	}
	d.unknownKeys("control", m, controlKeys)
	listen("control.listen", m["listen"])
	if s, ok := d.str("control.token_file", m["token_file"]); ok && s != "" {
		if p, ok := d.absPath("control.token_file", s); ok {
			// Read it now, so that validate and a reload report a bad
			// file; the node reads it again when it starts.
			if _, err := control.ReadTokenFile("control.token_file", p); err != nil {
				d.failCause("control.token_file", err, "%s", strings.TrimPrefix(err.Error(), "control.token_file: "))
			} else {
				cfg.ControlTokenFile = p
			}
		}
	}
	if b, ok := d.boolean("control.public_metrics", m["public_metrics"]); ok {
		cfg.ControlPublicMetrics = b
	}
	items, ok := d.strList("control.allow_hosts", m["allow_hosts"])
	if !ok {
		return
	}
	first := map[string]int{}
	for _, it := range items {
		key := indexKey("control.allow_hosts", it.index)
		name := strings.ToLower(strings.TrimSuffix(it.s, "."))
		switch j, dup := first[name]; {
		case net.ParseIP(strings.Trim(it.s, "[]")) != nil:
			d.fail(key, "%s is an IP address, which the control API always accepts as Host: list only host names", quote(it.s))
		case !hostnameRE.MatchString(name):
			d.fail(key, "%s is not a host name (write the name alone, without port or scheme, e.g. node-a.internal)", quote(it.s))
		case dup:
			d.fail(key, "%s is listed twice (first at allow_hosts[%d])", quote(it.s), j)
		default:
			first[name] = it.index
			cfg.ControlAllowHosts = append(cfg.ControlAllowHosts, name)
		}
	}
}

// controlExposure refuses a control API that other machines can reach
// without a token: anyone who connects could call every service, publish,
// and reload the node. A loopback address or a unix socket (guarded by
// its file mode) is local to this machine.
func (d *decoder) controlExposure(cfg *Config, listenKey string) {
	if cfg.Control == "" || cfg.ControlTokenFile != "" || d.errs.has("control.token_file") || d.errs.has(listenKey) {
		return
	}
	if _, unix := control.UnixPath(cfg.Control); unix || loopbackAddr(cfg.Control) {
		return
	}
	if listenKey == "" {
		listenKey = "control"
	}
	d.fail(listenKey, "%s accepts control API connections from other machines, and control.token_file is not set: anyone who reaches it could call every service and reload the node; set control.token_file to a file (mode 0600) holding a token, or listen on 127.0.0.1 or a unix socket (unix:///run/pycomms/control.sock)", quote(cfg.Control))
}

// checkControlAddr is checkAddr for the control API, which may also
// listen on a unix socket: "unix://" and an absolute path short enough for
// a socket address.
func checkControlAddr(s string) string {
	path, ok := control.UnixPath(s)
	if !ok {
		return checkAddr(s)
	}
	switch {
	case !filepath.IsAbs(path):
		return fmt.Sprintf("the socket path %q is not absolute (write unix:///run/pycomms/control.sock)", path)
	case len(path) > maxUnixPath:
		return fmt.Sprintf("the socket path is %d bytes, more than the %d a unix socket address holds", len(path), maxUnixPath)
	}
	return ""
}

// maxUnixPath is the longest socket path Linux accepts (sun_path is 108
// bytes with its terminating NUL; macOS allows 103).
const maxUnixPath = 107

// pluginPath checks a plugin path and resolves a file path to an absolute
// one. Only existence is checked here; whether the file is a usable module
// is the plugin loader's business (it reports with Config.At).
func (d *decoder) pluginPath(key, s string) string {
	if strings.HasPrefix(s, BuiltinPrefix) {
		if !builtinRE.MatchString(s) {
			d.fail(key, "%s is not a valid builtin path (use builtin:NAME, NAME made of a-z, 0-9, '_' and '-')", quote(s))
			return ""
		}
		return s
	}
	if s == "" {
		d.fail(key, "is empty: give the path of a .wasm file, or builtin:NAME")
		return ""
	}
	path, ok := d.absPath(key, s)
	if !ok {
		return ""
	}
	d.existingFile(key, path, ".wasm file")
	return path
}

// absPath resolves s. A relative path in the file is relative to the
// file's directory, so that a config works wherever the host is started;
// one from the environment is relative to the working directory, as it
// would be for a command-line argument.
func (d *decoder) absPath(key, s string) (string, bool) {
	if filepath.IsAbs(s) {
		return filepath.Clean(s), true
	}
	base := d.dir
	if base == "" || d.fromEnv(key) {
		wd, err := osGetwd()
		if err != nil {
			d.failCause(key, err, "cannot resolve the relative path %s: %s", quote(s), err)
			return "", false
		}
		base = wd
	}
	return filepath.Join(base, s), true
}

func pathReason(err error) string {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// listItem is one string of a list with its index in the source list, so
// that errors name the right element even when others are invalid.
type listItem struct {
	index int
	s     string
}

// subjects validates services (wildcards=false) or topics; a subject listed
// twice in one plugin is an error because it would be served or delivered
// twice.
func (d *decoder) subjects(plugin int, field string, items []listItem, wildcards bool) []string {
	listKey := joinKey(indexKey("plugins", plugin), field)
	what := "service"
	if wildcards {
		what = "topic"
	}
	out := []string{}
	first := map[string]int{}
	for _, it := range items {
		key := indexKey(listKey, it.index)
		if reason := checkSubject(it.s, wildcards); reason != "" {
			d.fail(key, "%s is not a valid %s: %s", quote(it.s), what, reason)
			continue
		}
		if strings.HasPrefix(it.s, "$") {
			// The host routes $queue.NAME to its durable queues.
			d.fail(key, "%s is not a valid %s: subjects starting with '$' are reserved for the host (queues are declared with plugins[].queues)", quote(it.s), what)
			continue
		}
		if j, dup := first[it.s]; dup {
			d.fail(key, "%s %q is listed twice (first at %s[%d])", what, it.s, field, j)
			continue
		}
		first[it.s] = it.index
		out = append(out, it.s)
		if !wildcards {
			d.services = append(d.services, serviceRef{plugin: plugin, item: it.index, name: it.s})
		}
	}
	return out
}

func (d *decoder) grants(listKey string, items []listItem) []abi.Capability {
	known := make([]string, 0, len(abi.Capabilities()))
	for _, c := range abi.Capabilities() {
		known = append(known, string(c))
	}
	out := []abi.Capability{}
	first := map[string]int{}
	for _, it := range items {
		key := indexKey(listKey, it.index)
		switch j, dup := first[it.s]; {
		case !slices.Contains(known, it.s):
			if s, ok := suggest(it.s, known); ok {
				d.fail(key, "unknown capability %s (did you mean %q?)", quote(it.s), s)
			} else {
				d.fail(key, "unknown capability %s (known: %s)", quote(it.s), strings.Join(known, ", "))
			}
		case dup:
			d.fail(key, "%q is listed twice (first at grants[%d])", it.s, j)
		default:
			first[it.s] = it.index
			out = append(out, abi.Capability(it.s))
		}
	}
	return out
}

// crossCheck finds problems between plugins: a name used twice, and a
// service served by two plugins (the router would not know which to call),
// a queue consumed by two.
func (d *decoder) crossCheck(plugins []Plugin) {
	byName := map[string]int{}
	names := map[int]string{}
	for _, p := range plugins {
		if p.Name == "" {
			continue
		}
		names[p.Index] = p.Name
		if j, dup := byName[p.Name]; dup {
			d.fail(joinKey(indexKey("plugins", p.Index), "name"), "duplicate plugin name %q (also plugins[%d].name)", p.Name, j)
			continue
		}
		byName[p.Name] = p.Index
	}
	d.oneOwner(d.services, names, "services", "service %q is already served by %s")
	d.oneOwner(d.consumed, names, "queues", "queue %q is already consumed by %s: a queue has one consuming plugin per host")
}

// oneOwner fails every ref whose name an earlier ref (of another plugin,
// or of the same one) already took, naming the first: a service served
// twice, a queue consumed twice. format takes the name and the first
// ref's key.
func (d *decoder) oneOwner(refs []serviceRef, names map[int]string, field, format string) {
	owner := map[string]serviceRef{}
	for _, r := range refs {
		o, taken := owner[r.name]
		if !taken {
			owner[r.name] = r
			continue
		}
		by := indexKey(joinKey(indexKey("plugins", o.plugin), field), o.item)
		if n, ok := names[o.plugin]; ok {
			by += fmt.Sprintf(" (plugin %q)", n)
		}
		d.fail(indexKey(joinKey(indexKey("plugins", r.plugin), field), r.item), format, r.name, by)
	}
}

// queues decodes the queues section.
func (d *decoder) queues(cfg *Config, v any) {
	m, ok := d.mapping("queues", v)
	if !ok {
		return
	}
	d.unknownKeys("queues", m, childKeys("queues"))
	if n, ok := d.integer("queues.max_attempts", m["max_attempts"], 1, maxQueueAttempts); ok {
		cfg.Queues.MaxAttempts = n
	}
	if t, ok := d.duration("queues.backoff", m["backoff"], time.Millisecond, time.Hour); ok {
		cfg.Queues.Backoff = t
	}
	t, ok := d.duration("queues.max_backoff", m["max_backoff"], time.Millisecond, 24*time.Hour)
	switch {
	case ok && t < cfg.Queues.Backoff:
		d.fail("queues.max_backoff", "%v is shorter than queues.backoff (%v): the wait between deliveries only grows", t, cfg.Queues.Backoff)
	case ok:
		cfg.Queues.MaxBackoff = t
	default:
		// Left out: the default, or backoff when that is longer.
		cfg.Queues.MaxBackoff = max(cfg.Queues.MaxBackoff, cfg.Queues.Backoff)
	}
	if n, ok := d.integer("queues.max_depth", m["max_depth"], 1, maxQueueDepth); ok {
		cfg.Queues.MaxDepth = n
	}
}

// queueNames decodes plugins[i].queues: subjects without wildcards, each
// once.
func (d *decoder) queueNames(plugin int, items []listItem) []string {
	listKey := joinKey(indexKey("plugins", plugin), "queues")
	out := []string{}
	first := map[string]int{}
	for _, it := range items {
		key := indexKey(listKey, it.index)
		if reason := checkSubject(it.s, false); reason != "" {
			d.fail(key, "%s is not a valid queue name: %s", quote(it.s), reason)
			continue
		}
		if strings.HasPrefix(it.s, "$") {
			d.fail(key, "%s is not a valid queue name: names starting with '$' are reserved (write the name alone: orders, not $queue.orders)", quote(it.s))
			continue
		}
		if j, dup := first[it.s]; dup {
			d.fail(key, "queue %q is listed twice (first at queues[%d])", it.s, j)
			continue
		}
		first[it.s] = it.index
		out = append(out, it.s)
		d.consumed = append(d.consumed, serviceRef{plugin: plugin, item: it.index, name: it.s})
	}
	return out
}

func (d *decoder) unknownKeys(path string, m map[string]any, known []string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(known, k) {
			continue
		}
		hint := fmt.Sprintf("known keys: %s", strings.Join(known, ", "))
		if s, ok := suggest(k, known); ok {
			hint = fmt.Sprintf("did you mean %q?", s)
		}
		d.errs.Add(d.src.errAt(joinKey(path, k), true, fmt.Sprintf("unknown key (%s)", hint)))
	}
}

// The typed getters below return ok=false both when the value is absent
// (nil, which YAML also gives for "key:" with no value) and when it has the
// wrong type, which they report; either way the caller keeps its default.
// Values from the environment are strings and are parsed here.

func (d *decoder) mapping(key string, v any) (map[string]any, bool) {
	switch m := v.(type) {
	case nil:
		return nil, false
	case map[string]any:
		return m, true
	}
	d.fail(key, "expected a mapping, got %s", d.src.describe(key, v))
	return nil, false
}

func (d *decoder) str(key string, v any) (string, bool) {
	switch s := v.(type) {
	case nil:
		return "", false
	case string:
		return s, true
	}
	hint := ""
	if p, ok := d.src.pos[key]; ok && p.node != nil && p.node.Kind == yaml.ScalarNode {
		hint = fmt.Sprintf(" (quote it: %q)", p.node.Value)
	}
	d.fail(key, "expected a string, got %s%s", d.src.describe(key, v), hint)
	return "", false
}

func (d *decoder) strList(key string, v any) ([]listItem, bool) {
	switch l := v.(type) {
	case nil:
		return nil, false
	case []any:
		items := make([]listItem, 0, len(l))
		for i, e := range l {
			if s, ok := e.(string); ok {
				items = append(items, listItem{i, s})
			} else {
				d.fail(indexKey(key, i), "expected a string, got %s", d.src.describe(indexKey(key, i), e))
			}
		}
		return items, true
	case string:
		if d.fromEnv(key) {
			items := []listItem{}
			if strings.TrimSpace(l) == "" {
				return items, true
			}
			for i, s := range strings.Split(l, ",") {
				items = append(items, listItem{i, strings.TrimSpace(s)})
			}
			return items, true
		}
		d.fail(key, "expected a list, got %s (write [%s])", quote(l), l)
		return nil, false
	}
	d.fail(key, "expected a list, got %s", d.src.describe(key, v))
	return nil, false
}

func (d *decoder) integer(key string, v any, lo, hi int) (int, bool) {
	var n int64
	switch x := v.(type) {
	case nil:
		return 0, false
	case int:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		d.fail(key, "%d is out of range (%d..%d)", x, lo, hi)
		return 0, false
	case float64:
		// YAML reads an integer literal too large for int64 as a float.
		if x == math.Trunc(x) && math.Abs(x) >= math.MaxInt64 {
			d.fail(key, "%s is out of range (%d..%d)", d.src.describe(key, v), lo, hi)
		} else {
			d.fail(key, "expected an integer, got %s", d.src.describe(key, v))
		}
		return 0, false
	case string:
		parsed, err := strconv.ParseInt(x, 10, 64)
		if err != nil || !d.fromEnv(key) {
			d.fail(key, "expected an integer, got %s", d.src.describe(key, v))
			return 0, false
		}
		n = parsed
	default:
		d.fail(key, "expected an integer, got %s", d.src.describe(key, v))
		return 0, false
	}
	if n < int64(lo) || n > int64(hi) {
		d.fail(key, "%d is out of range (%d..%d)", n, lo, hi)
		return 0, false
	}
	return int(n), true
}

func (d *decoder) boolean(key string, v any) (bool, bool) {
	switch x := v.(type) {
	case nil:
		return false, false
	case bool:
		return x, true
	case string:
		if d.fromEnv(key) {
			if b, err := strconv.ParseBool(x); err == nil {
				return b, true
			}
		}
	}
	d.fail(key, "expected true or false, got %s", d.src.describe(key, v))
	return false, false
}

func (d *decoder) size(key string, v any, lo, hi uint64) (uint64, bool) {
	var n uint64
	switch x := v.(type) {
	case nil:
		return 0, false
	case int:
		if x < 0 {
			d.fail(key, "%d is not a size: sizes cannot be negative", x)
			return 0, false
		}
		n = uint64(x)
	case int64:
		if x < 0 {
			d.fail(key, "%d is not a size: sizes cannot be negative", x)
			return 0, false
		}
		n = uint64(x)
	case uint64:
		n = x
	case string:
		parsed, err := ParseSize(x)
		if err != nil {
			d.fail(key, "%s", err)
			return 0, false
		}
		n = parsed
	default:
		d.fail(key, "%s is not a size (use e.g. 512KiB, 16MiB)", d.src.describe(key, v))
		return 0, false
	}
	if n < lo || n > hi {
		d.fail(key, "%s is out of range (%s..%s)", FormatSize(n), FormatSize(lo), FormatSize(hi))
		return 0, false
	}
	return n, true
}

func (d *decoder) duration(key string, v any, lo, hi time.Duration) (time.Duration, bool) {
	s, isStr := v.(string)
	if v == nil {
		return 0, false
	}
	t, err := time.ParseDuration(s)
	if !isStr || err != nil {
		d.fail(key, "%s is not a duration (use e.g. 500ms, 2s)", d.src.describe(key, v))
		return 0, false
	}
	if t < lo || t > hi {
		d.fail(key, "%s is out of range (%s..%s)", formatDuration(t), formatDuration(lo), formatDuration(hi))
		return 0, false
	}
	return t, true
}

// normalize makes every mapping of a plugin config a map[string]any: the
// YAML decoder leaves mappings with non-string keys as map[any]any, and
// koanf converts those only at some depths.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

// checkAddr returns why s is not a usable host:port listen address, or "".
func checkAddr(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
			return ae.Err
		}
		return err.Error()
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("port %q is not a number from 0 to 65535 (0: any free port)", port)
	}
	if host != "" && net.ParseIP(host) == nil && !hostnameRE.MatchString(host) {
		return fmt.Sprintf("host %q is neither an IP address nor a host name", host)
	}
	return ""
}

// defaultNodeName is the host name when it is a valid node name, else its
// first label (a fully qualified name can exceed 63 characters), else
// "pycomms".
func defaultNodeName() string {
	h, err := osHostname()
	if err != nil {
		return "pycomms"
	}
	if nodeNameRE.MatchString(h) {
		return h
	}
	if first, _, _ := strings.Cut(h, "."); nodeNameRE.MatchString(first) {
		return first
	}
	return "pycomms"
}

func defaultCacheDir() string {
	if dir, err := osUserCacheDir(); err == nil && filepath.IsAbs(dir) {
		return filepath.Join(dir, "pycomms-host")
	}
	return filepath.Join(os.TempDir(), "pycomms-host-cache")
}
