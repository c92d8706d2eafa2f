// Package config loads and validates pycomms.yaml, the file that says what a
// pycomms host runs: its node name, its control API address, where compiled
// modules are cached, how it logs, how it joins the mesh of hosts (listen
// addresses, peers, identity, trust rules and link limits), and which
// plugins it loads with what limits and grants.
//
// Values come in three layers, each overriding the one before: built-in
// defaults, the YAML file, and environment variables named PYCOMMS_ + the
// key path upper-cased with "__" between levels (PYCOMMS_LOG__LEVEL=debug,
// PYCOMMS_PLUGINS__0__INSTANCES=8); a list or mapping may be given whole in
// YAML flow syntax (PYCOMMS_PEERS='[a:1, b:2]'). Load is strict: unknown keys, wrong
// types, out-of-range values and unknown PYCOMMS_* variables are all errors,
// and it reports every problem of a file at once, each with the file, line
// and column, the key path and, for environment values, the variable name.
// KEYS.md in this directory lists every key; keys.go declares each
// once (path, type, default, doc line, reload class), and the decoder's
// known keys, the environment names, KEYS.md's table, Digest and what a
// reload may change are derived from it.
//
// Design note: koanf (github.com/knadh/koanf/v2) does the layering and
// merging, as everywhere in pycomms. It flattens values into plain maps and
// forgets where they came from, so the file is parsed once into a
// go.yaml.in/yaml/v3 node tree; positions are looked up in it by key path,
// and the values koanf layers are built from it (tree.go) rather than by
// koanf's YAML parser, whose decoding is quadratic in the keys of a
// mapping. Lists are leaves to koanf, so overrides of one plugin's keys
// (PYCOMMS_PLUGINS__0__...) are applied to the plugin list by this package.
//
// Loading is linear in the size of the file and bounded: MaxFileSize,
// MaxValues (after aliases are expanded) and MaxDepth refuse what would
// take long, and LoadContext stops when its context ends.
package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"

	"github.com/pycomms/pycomms-host/abi"
)

// Config is a loaded, validated configuration. Treat it as immutable: a
// reload produces a new Config, and Digest tells whether anything changed.
type Config struct {
	File string // absolute path of the config file, "" for built-in defaults
	Node Node
	// Control is where the local control API listens (control.listen):
	// host:port, or "unix://" and an absolute socket path; "" disables it.
	Control string
	// ControlTokenFile is the absolute path of the file holding the token
	// the control API requires (control.token_file); "" when none. The
	// token itself is not kept here, so that no Config dump can show it:
	// the node reads it with control.ReadTokenFile when it starts.
	ControlTokenFile string
	// ControlPublicMetrics serves /metrics without the token
	// (control.public_metrics).
	ControlPublicMetrics bool
	// ControlAllowHosts are the host names (lower-case, without port) the
	// control API accepts in a request's Host header besides IP addresses
	// and localhost (control.allow_hosts); nil when none.
	ControlAllowHosts []string
	CacheDir          string // absolute
	Log               Log
	// DataDir holds the node's persistent state, such as its private key.
	// Absolute; by default per node name, so that several hosts on one
	// machine never share a key.
	DataDir string
	// Listen is where this host accepts links from other hosts.
	Listen Listen
	// Peers are the hosts this host dials, in the order of the file.
	Peers []Peer
	// Identity is this node's key and, with trust.ca, its certificate.
	Identity Identity
	// Trust says which hosts may join the mesh through this one.
	Trust Trust
	// Mesh bounds what one link to a peer may use (the top-level "limits"
	// key; not to be confused with a plugin's Limits).
	Mesh MeshLimits
	// Discovery says how this host finds other hosts beyond its peers.
	Discovery Discovery
	// DrainTimeout (drain_timeout) bounds how long a stopping node waits
	// for the work in flight to finish.
	DrainTimeout time.Duration
	// Queues tunes the delivery of durable queues (queues.*).
	Queues  Queues
	Plugins []Plugin

	src *source // where each value came from, for At
}

// Listen holds the addresses this host accepts mesh links on, each
// host:port (port 0: any free port); "" disables that transport.
type Listen struct {
	TCP  string
	QUIC string // UDP, so it may share its port number with TCP
}

// Peer is one entry of the peers list: a host to dial.
type Peer struct {
	Index     int    // position in peers[]
	Raw       string // as written
	Transport string // "tcp", "quic", or "" (auto: the host tries TCP, then QUIC)
	Addr      string // host:port; IP addresses in canonical form, host names lower-case
}

// Identity is this node's key pair and, optionally, its certificate.
type Identity struct {
	// Key is the absolute path of the node's ed25519 private key (PEM,
	// PKCS#8). The node id derives from it. It is created on first start
	// when missing.
	Key string
	// Cert is the absolute path of the node certificate (PEM) signed by
	// Trust.CA; "" when not set.
	Cert string
}

// Trust holds the rules a host must pass to join the mesh through this
// one. Rules combine: a peer must pass every rule that is set.
type Trust struct {
	Secret string   // shared cluster secret; "" when unset
	Nodes  []string // pinned node ids (see ValidNodeID); empty when unset
	CA     string   // absolute path of a PEM CA bundle; "" when unset
	// AllowOpen (trust.open) says that running with no rule is meant: it
	// is required for a listener beyond loopback or mDNS without a rule.
	AllowOpen bool
}

// Open reports whether no trust rule is configured: any host that completes
// the handshake may join.
func (t Trust) Open() bool {
	return t.Secret == "" && len(t.Nodes) == 0 && t.CA == ""
}

// MeshLimits bound what one mesh link may use.
type MeshLimits struct {
	MaxFrame uint64 // largest payload of one message on a link, in bytes
	// SendBuffer is how many bytes may be queued for one peer before
	// senders wait (requests) or events are dropped. At least MaxFrame.
	SendBuffer uint64
	Inflight   int // requests one peer may have waiting on this host at once
}

// Node identifies this host among its peers.
type Node struct {
	Name string
}

// Log configures the host log.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
}

// Plugin is one entry of the plugins list.
type Plugin struct {
	Index    int    // position in plugins[]
	Name     string // unique among the plugins
	Path     string // absolute path of the .wasm file, or "builtin:NAME"
	Kind     string // "handler", "transport" or "codec"
	Services []string
	Topics   []string
	// Instances is the size of the instance pool; Queue bounds the messages
	// waiting for a free instance.
	Instances int
	Queue     int
	Watch     bool // reload the plugin when its file changes
	Limits    Limits
	Grants    []abi.Capability
	// Config is the plugin's own configuration, handed to it as is. Nested
	// mappings are map[string]any; values set from the environment are
	// strings.
	Config map[string]any
	// Secrets are the keys of Config (dotted, as config_get reads them)
	// whose values are secret: shown as Redacted wherever the config is
	// shown (/v1/plugins).
	Secrets []string
	// Transport holds the keys of a transport plugin (kind: transport);
	// zero for a handler.
	Transport Transport
	// Accepts are the media types (lower-case type/subtype) the plugin
	// takes; nil: it takes payloads as they are and nothing is converted
	// for it. Encodings are the content codings it takes besides
	// identity. See abi/SPEC.md section 14.5.
	Accepts   []string
	Encodings []string
	// Queues are the durable queues the plugin consumes (handler only).
	Queues []string
}

// Limits bound what one plugin instance may use.
type Limits struct {
	Memory   uint64        // bytes of linear memory per instance
	Timeout  time.Duration // per message
	MaxReply uint64        // bytes
	// MaxModule is the largest .wasm file the plugin may be, in bytes:
	// compiling costs memory and time in proportion to it, and the file
	// is read whole on every change.
	MaxModule uint64
	// ReadBuffer, WriteBuffer and MaxConns bound a transport plugin's
	// connections: bytes kept for the plugin and bytes queued for writing
	// per connection, and connections open at once.
	ReadBuffer  uint64
	WriteBuffer uint64
	MaxConns    int
}

// BuiltinPrefix starts a plugin path that names a plugin embedded in the
// host binary instead of a file.
const BuiltinPrefix = "builtin:"

// Builtin returns the builtin name when Path is "builtin:NAME".
func (p Plugin) Builtin() (string, bool) {
	name, ok := strings.CutPrefix(p.Path, BuiltinPrefix)
	if !ok {
		return "", false
	}
	return name, true
}

// DefaultControl is the control API address when the config sets none;
// clients use it too when neither --control nor PYCOMMS_CONTROL is given.
const DefaultControl = "127.0.0.1:7480"

// DefaultMaxModule is plugins[].limits.max_module when unset: room for a
// Go plugin with its debug sections (2-30 MB) while keeping what one file
// can make the compiler chew on bounded.
const DefaultMaxModule = 64 << 20

// Defaults of plugin keys. KEYS.md documents them (TestDefaultsAsDocumented
// holds it to these), and host/internal/plugin uses them for a Spec field left
// zero, so that an embedder of the engine gets the documented defaults.
const (
	DefaultInstances = 2
	DefaultQueue     = 1024
	DefaultMemory    = 16 << 20
	DefaultTimeout   = 5 * time.Second
	DefaultMaxReply  = 1 << 20
)

// Defaults of mesh keys; KEYS.md documents them.
const (
	// defaultListen is for TCP and QUIC alike (QUIC is UDP). Loopback, so
	// that a node started with no config cannot be joined from the
	// network; listening beyond it needs a trust rule or trust.open.
	defaultListen     = "127.0.0.1:7400"
	defaultMaxFrame   = 1 << 20
	defaultSendBuffer = 8 << 20
	defaultInflight   = 1024
	defaultKeyFile    = "node.key" // in the data directory
)

// Discovery configures how hosts find each other.
type Discovery struct {
	// MDNS announces this host and browses for others with mDNS/DNS-SD on
	// the local network segment. Off by default: a host announces itself
	// on a network only when asked to.
	MDNS bool
	// DeadAfter is how long a peer may stay silent before its link is
	// closed and its routes removed.
	DeadAfter time.Duration
}

// Defaults and bounds of discovery.dead_after: a second is about the
// shortest that survives a loaded machine's scheduling hiccups; past a
// minute a dead host keeps its routes for too long to be useful.
const (
	defaultDeadAfter           = 5 * time.Second
	minDeadAfter, maxDeadAfter = time.Second, 10 * time.Minute
)

// Default and bounds of drain_timeout. An hour is past any sensible
// call deadline (the control API's longest is an hour too); 0 stops
// without waiting.
const (
	DefaultDrainTimeout = 10 * time.Second
	maxDrainTimeout     = time.Hour
)

func defaultMeshLimits() MeshLimits {
	return MeshLimits{MaxFrame: defaultMaxFrame, SendBuffer: defaultSendBuffer, Inflight: defaultInflight}
}

func defaultLimits() Limits {
	return Limits{Memory: DefaultMemory, Timeout: DefaultTimeout, MaxReply: DefaultMaxReply, MaxModule: DefaultMaxModule,
		ReadBuffer: DefaultReadBuffer, WriteBuffer: DefaultWriteBuffer, MaxConns: DefaultMaxConns}
}

// builtinDefaults is the configuration used when there is no config file:
// one echo handler, so that a fresh install answers `pycomms-host call
// echo` and greets on `greetings.>` out of the box.
func builtinDefaults() map[string]any {
	return map[string]any{
		"plugins": []any{map[string]any{
			"name":      "echo",
			"path":      BuiltinPrefix + "echo",
			"kind":      "handler",
			"services":  []any{"echo"},
			"topics":    []any{"greetings.>"},
			"instances": DefaultInstances,
			"grants":    []any{"log", "publish", "call", "send"},
			"config":    map[string]any{"prefix": ">> "},
		}},
	}
}

// These are variables so that tests can pin the defaults that depend on
// the machine.
var (
	osHostname     = os.Hostname
	osUserCacheDir = os.UserCacheDir
	osUserDataDir  = userDataDir
	osGetwd        = os.Getwd
)

// userDataDir returns the base directory for user-specific data files:
// $XDG_DATA_HOME when it is an absolute path (the XDG spec says to ignore
// a relative one), else ~/.local/share.
func userDataDir() (string, error) {
	if dir := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(dir) {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "share"), nil
}

// Load reads path (or built-in defaults when path is ""), applies env
// overrides (only PYCOMMS_* entries of env, which has the form of
// os.Environ()), validates, and returns either a Config or an *Errors
// holding every problem.
func Load(path string, env []string) (*Config, error) {
	return LoadContext(context.Background(), path, env)
}

// LoadContext is Load that gives up when ctx ends, returning ctx's error:
// a host told to stop while it reads a config (from a pipe that never
// ends, or a file at the size limit) stops at once. A file larger than
// MaxFileSize is refused before it is parsed.
func LoadContext(ctx context.Context, path string, env []string) (*Config, error) {
	errs := &Errors{}
	k := koanf.New(".")
	src := newSource(path)
	var abs string
	if path == "" {
		if err := k.Load(confmap.Provider(builtinDefaults(), ""), nil); err != nil {
			errs.Add(&Error{Msg: "loading the built-in defaults: " + err.Error(), Err: err})
			return nil, errs
		}
	} else {
		var err error
		if abs, err = filepath.Abs(path); err != nil {
			errs.Add(&Error{File: path, Msg: "cannot resolve the path: " + err.Error(), Err: err})
			return nil, errs
		}
		data, err := readFile(ctx, path)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if e := (*Error)(nil); errors.As(err, &e) {
				errs.Add(e)
				return nil, errs
			}
			reason := err.Error()
			if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
				reason = pe.Err.Error()
			}
			errs.Add(&Error{File: path, Msg: "cannot read the config file: " + reason, Err: err})
			return nil, errs
		}
		top := parseYAML(data, src, errs)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(errs.List) == 0 && top != nil {
			src.duplicateKeys(top, nil, errs)
		}
		if len(errs.List) > 0 {
			return nil, errs.orNil()
		}
		if top != nil {
			// The node tree parseYAML made is turned into values here
			// rather than parsed a second time by koanf's YAML parser,
			// whose duplicate-key check is quadratic (see treeBuilder).
			raw := buildTree(ctx, top, src, errs)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if len(errs.List) > 0 {
				return nil, errs.orNil()
			}
			if err := k.Load(mapProvider(raw), nil); err != nil {
				errs.Add(&Error{File: path, Msg: "loading the config file: " + err.Error(), Err: err})
				return nil, errs
			}
		}
		src.index(top)
	}

	applyEnv(k, env, src, path == "", errs)

	d := &decoder{src: src, errs: errs}
	if abs != "" {
		d.dir = filepath.Dir(abs)
	}
	cfg := d.decode(k.Raw())
	cfg.File = abs
	cfg.src = src
	if loadWork != nil {
		loadWork(src.work)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loadWork, when set by a test, receives the work count of each Load that
// gets as far as decoding.
var loadWork func(steps int)

// mapProvider hands koanf values built by buildTree. Unlike confmap's
// provider it does not copy them first: nothing else holds them.
type mapProvider map[string]any

func (p mapProvider) Read() (map[string]any, error) { return p, nil }

func (p mapProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("mapProvider has no bytes, only values")
}

// readFile reads path, refusing a file larger than MaxFileSize with an
// *Error that names the file, its size and the limit. It returns ctx's
// error as soon as ctx ends, which matters for a pipe or FIFO given as the
// config file: opening a FIFO waits for a writer, and reading one waits
// for data.
func readFile(ctx context.Context, path string) ([]byte, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		ch <- opened{f, err}
	}()
	var f *os.File
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, o.err
		}
		f = o.f
	case <-ctx.Done():
		// The open returns when a writer comes, or never; either way
		// nothing waits for it but this goroutine.
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, ctx.Err()
	}
	defer f.Close()
	limit := fmt.Sprintf("the limit of %s (%d bytes)", FormatSize(MaxFileSize), MaxFileSize)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("the config file is %d bytes, more than %s", fi.Size(), limit)}
	}
	// A deadline in the past wakes a read blocked on a pipe; regular files
	// never block for long, and refuse deadlines, which is harmless here.
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if len(data) > MaxFileSize {
		// Not a regular file, or one that grew since Stat.
		return nil, &Error{File: path, Msg: "the config file is larger than " + limit}
	}
	return data, nil
}

// parseYAML parses data into a node tree and returns the top-level mapping,
// or nil for an empty file. Syntax errors, a top level that is not a
// mapping and a second document are added to errs.
func parseYAML(data []byte, src *source, errs *Errors) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err != io.EOF {
			addYAMLError(err, src, errs)
		}
		return nil
	}
	// koanf reads only the first document; anything in a later one would be
	// silently ignored. An empty trailing document ("---" at the end) is
	// harmless and accepted.
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if err == io.EOF {
			break
		}
		if err != nil {
			addYAMLError(err, src, errs)
			break
		}
		if len(extra.Content) == 0 {
			continue
		}
		if at := extra.Content[0]; at.Kind != yaml.ScalarNode || at.ShortTag() != "!!null" {
			errs.Add(&Error{File: src.file, Line: at.Line, Col: at.Column,
				Msg: "a second YAML document: the config file must hold exactly one"})
			break
		}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	top := resolve(doc.Content[0])
	switch {
	case top.Kind == yaml.MappingNode:
		return top
	case top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null":
		return nil
	}
	errs.Add(&Error{File: src.file, Line: top.Line, Col: top.Column,
		Msg: fmt.Sprintf("the config file must be a mapping of keys (%s), not %s", strings.Join(topKeys, ", "), src.describeNode(top))})
	return nil
}

// yamlLineRE matches the "line N: problem" form the YAML library uses.
var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// addYAMLError turns an error of the YAML library into positioned errors.
// The library knows the line of a problem but not its column.
func addYAMLError(err error, src *source, errs *Errors) {
	var lines []string
	if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	for _, l := range lines {
		e := &Error{File: src.file, Msg: "invalid YAML: " + l, Err: err}
		if m := yamlLineRE.FindStringSubmatch(l); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = "invalid YAML: " + m[2]
		}
		errs.Add(e)
	}
}

// applyEnv loads the PYCOMMS_* overrides of env into k and records which
// keys they set. builtin says there is no config file. A list or mapping
// given whole (YAML flow syntax) replaces the key's value; overrides apply
// outermost first, so PYCOMMS_TRUST='{...}' and PYCOMMS_TRUST__NODES=...
// together mean the second refines the first.
func applyEnv(k *koanf.Koanf, environ []string, src *source, builtin bool, errs *Errors) {
	overrides, envErrs := parseEnv(environ)
	for _, e := range envErrs {
		errs.Add(e)
	}
	slices.SortStableFunc(overrides, func(a, b envOverride) int { return a.depth() - b.depth() })
	controlShorthand(k, overrides)
	scalars := map[string]envOverride{}
	var perPlugin []envOverride
	pluginsFromEnv := false
	for _, ov := range overrides {
		switch {
		case ov.plugin >= 0:
			perPlugin = append(perPlugin, ov)
			continue
		case ov.parsed != nil:
			k.Delete(ov.koanfKey)
			if err := k.Set(ov.koanfKey, ov.parsed); err != nil {
				errs.Add(&Error{Env: ov.name, Key: ov.key, Msg: "applying the value: " + err.Error(), Err: err})
			}
			pluginsFromEnv = pluginsFromEnv || ov.koanfKey == "plugins"
		default:
			scalars[ov.name] = ov
		}
		src.env[ov.key] = ov.name
	}
	if len(scalars) > 0 {
		p := env.Provider(".", env.Opt{
			Prefix:      EnvPrefix,
			EnvironFunc: func() []string { return environ },
			TransformFunc: func(name, value string) (string, any) {
				if ov, ok := scalars[name]; ok {
					return ov.koanfKey, value
				}
				return "", nil // handled above or below, or already reported
			},
		})
		if err := k.Load(p, nil); err != nil {
			errs.Add(&Error{Msg: "loading environment overrides: " + err.Error(), Err: err})
		}
	}
	if len(perPlugin) == 0 {
		return
	}
	if builtin && !pluginsFromEnv {
		for _, ov := range perPlugin {
			errs.Add(&Error{Env: ov.name, Key: ov.key,
				Msg: "there is no config file, so no listed plugin to override (the built-in plugin list cannot be changed by index; PYCOMMS_PLUGINS can replace it whole)"})
		}
		return
	}
	raw := k.Get("plugins")
	list, ok := raw.([]any)
	if !ok && raw != nil {
		return // "plugins" is not a list: the decoder reports it in the file
	}
	for _, ov := range perPlugin {
		key, err := applyPluginEnv(list, ov)
		if err != nil {
			errs.Add(err)
			continue
		}
		if key != "" {
			src.env[key] = ov.name
		}
	}
	if list != nil {
		if err := k.Set("plugins", list); err != nil {
			errs.Add(&Error{Msg: "applying environment overrides to plugins: " + err.Error(), Err: err})
		}
	}
}

// controlShorthand reconciles the two forms of control with the overrides
// of env: a bare address in the file becomes {listen: ADDR} when a variable
// sets control.listen or control.allow_hosts, and PYCOMMS_CONTROL=ADDR over
// a mapping sets its listen, so that the shorthand variable moves the port
// without dropping the file's allow_hosts.
func controlShorthand(k *koanf.Koanf, overrides []envOverride) {
	sub := slices.ContainsFunc(overrides, func(ov envOverride) bool { return strings.HasPrefix(ov.koanfKey, "control.") })
	if s, ok := k.Get("control").(string); ok && sub {
		k.Delete("control")
		k.Set("control.listen", s)
	}
	_, isMap := k.Get("control").(map[string]any)
	for i, ov := range overrides {
		if ov.koanfKey == "control" && ov.parsed == nil && (sub || isMap) {
			overrides[i].koanfKey = "control.listen"
		}
	}
}

// At returns an *Error positioned at key (for callers such as the loader
// that validates modules later and wants file/line for "plugins[2].path").
// A key that the file does not have is placed at its nearest ancestor; a
// value set from the environment names the variable.
func (c *Config) At(key string, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if c.src == nil {
		return &Error{File: c.File, Key: key, Msg: msg}
	}
	return c.src.errAt(key, false, msg)
}

// openWarning is the Warnings text for a node that runs without trust rules.
const openWarning = "trust: none configured: this node runs open, any host that completes the handshake may join the mesh (set trust.secret, trust.nodes or trust.ca)"

// openOnPurposeWarning is the Warnings text when trust.open says so.
const openOnPurposeWarning = "trust.open: true: this node runs open on purpose, any host that completes the handshake may join the mesh"

// Warnings returns problems of a valid configuration that the host should
// log at start and on reload: settings that work but are probably not what
// the operator wants. It returns nil when there are none.
func (c *Config) Warnings() []string {
	meshing := c.Listen.TCP != "" || c.Listen.QUIC != "" || len(c.Peers) > 0
	switch {
	case meshing && c.Trust.Open() && c.Trust.AllowOpen:
		return []string{openOnPurposeWarning}
	case meshing && c.Trust.Open():
		return []string{openWarning}
	}
	return nil
}

// Digest returns a stable sha256 hex digest of the effective configuration:
// equal for two loads that would run the same host (comments, key order,
// spelling of sizes and environment-versus-file do not matter), different
// otherwise. A reload whose digest is unchanged is a no-op.
func (c *Config) Digest() string {
	w := digestWriter{h: newHash()}
	w.str("pycomms-config/3")
	w.str(c.File)
	for _, k := range keys {
		if k.node != nil {
			w.str(k.Path)
			w.value(k.node(c))
		}
	}
	w.int(int64(len(c.Plugins)))
	for i := range c.Plugins {
		p := &c.Plugins[i]
		w.int(int64(p.Index))
		for _, k := range keys {
			if k.plugin != nil {
				w.str(k.Path)
				w.value(k.plugin(p))
			}
		}
	}
	return hex.EncodeToString(w.h.Sum(nil))
}

func newHash() hash.Hash { return sha256.New() }

// digestWriter feeds a hash with a self-delimiting encoding: every item is
// tagged and strings are length-prefixed, so that no two different configs
// produce the same byte stream.
type digestWriter struct{ h hash.Hash }

func (w digestWriter) tag(t byte) { w.h.Write([]byte{t}) }

func (w digestWriter) uint(n uint64) {
	w.tag('u')
	w.h.Write(binary.BigEndian.AppendUint64(nil, n))
}

func (w digestWriter) int(n int64) {
	w.tag('i')
	w.h.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
}

func (w digestWriter) str(s string) {
	w.tag('s')
	w.h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
	io.WriteString(w.h, s)
}

func (w digestWriter) strs(list []string) {
	w.int(int64(len(list)))
	for _, s := range list {
		w.str(s)
	}
}

// value encodes the values YAML decoding produces; maps in key order.
func (w digestWriter) value(v any) {
	switch v := v.(type) {
	case nil:
		w.tag('n')
	case bool:
		w.tag('b')
		if v {
			w.tag(1)
		} else {
			w.tag(0)
		}
	case int:
		w.int(int64(v))
	case int64:
		w.int(v)
	case uint64:
		w.uint(v)
	case float64:
		w.tag('f')
		w.h.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(v)))
	case string:
		w.str(v)
	case []string:
		w.strs(v)
	case []abi.Capability:
		w.int(int64(len(v)))
		for _, c := range v {
			w.str(string(c))
		}
	case slog.Level:
		w.int(int64(v))
	case time.Duration:
		w.int(int64(v))
	case time.Time:
		w.tag('t')
		w.str(v.UTC().Format(time.RFC3339Nano))
	case []byte:
		w.tag('y')
		w.str(string(v))
	case []any:
		w.tag('l')
		w.int(int64(len(v)))
		for _, e := range v {
			w.value(e)
		}
	case map[string]any:
		w.tag('m')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.int(int64(len(keys)))
		for _, k := range keys {
			w.str(k)
			w.value(v[k])
		}
	default:
		// Not produced by the YAML decoder; encoded so that it still
		// counts, if less canonically.
		w.tag('x')
		w.str(fmt.Sprintf("%T:%#v", v, v))
	}
}

// Queues is the queues section: how durable queues are delivered.
type Queues struct {
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	MaxDepth    int
}

// Defaults and bounds of the queues section.
const (
	DefaultQueueMaxAttempts = 5
	DefaultQueueBackoff     = time.Second
	DefaultQueueMaxBackoff  = time.Minute
	DefaultQueueMaxDepth    = 100_000
	maxQueueAttempts        = 1000
	maxQueueDepth           = 100_000_000
)
