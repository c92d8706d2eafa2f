// Package node assembles a running pycomms host from its parts: the config
// (host/config), the plugin runtime, the in-host router, the file watcher
// for hot reload, the mesh and mDNS discovery (all under host/internal/)
// and the local control API (host/control). It owns their lifecycle: start,
// hot reload of a plugin file, reload of the config, and graceful shutdown
// ([Node.Drain], then [Node.Close]), and reports it to systemd when asked
// (Options.Systemd).
//
// # Embedding and what is stable
//
// A Go program embeds a host with [New], [Node.Start] and [Node.Close],
// calls it with [Node.Call], [Node.Send], [Node.Publish] and
// [Node.Subscribe], and serves services from plain Go functions with
// [Node.Serve] (see the examples). The packages an embedder imports, and
// the API this project keeps compatible for them, are: this package, abi
// (the plugin ABI and the protocol version range), host/config (the config,
// its keys and their errors), host/message (the message and its status
// errors) and host/control (the control API's client and types). Compatible
// means that new fields, methods and functions may appear, while a removed
// or changed one is a deliberate, announced change.
//
// Everything under host/internal/ (the mesh, the wire protocol, fuel, the
// plugin runtime, the router, the watcher, node identity, discovery) is an
// implementation detail: Go refuses to import it from outside this module,
// so it can change with any release. What an embedder needs from it is
// exported here instead: the node id of a key file ([LoadID], [CheckID]),
// and the protocol range as abi.ProtocolMinVersion and
// abi.ProtocolMaxVersion.
//
// The data path is short on purpose: control API -> Node.Call ->
// router.Call -> plugin.Plugin.Request -> an instance of the current version
// -> the guest's pycomms_handle, and back.
//
// # Metrics
//
// The node serves Prometheus metrics on the control API's /metrics
// (host/control/API.md, "Metrics") through
// github.com/prometheus/client_golang, the reference implementation of
// the format every scraper reads; metrics.go says why that library, which
// values are read at scrape time and which are observed per call, and why
// the labels stay bounded.
package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/codec"
	"github.com/pycomms/pycomms-host/host/internal/discovery"
	"github.com/pycomms/pycomms-host/host/internal/mesh"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/internal/watch"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/plugins"
)

// Options say where a node's configuration comes from.
type Options struct {
	// ConfigPath is the config file; "" means built-in defaults.
	ConfigPath string
	// Env is the environment the PYCOMMS_* overrides are read from
	// (usually os.Environ()); passed in so tests are hermetic.
	Env []string
	// Logger overrides the logger built from the config's log settings.
	Logger *slog.Logger
	// LogOutput is where the config-built logger writes; default stderr.
	LogOutput io.Writer
	// Version is the build version reported by health and version.
	Version control.VersionInfo
	// WatchSettle is how long a changed plugin file must stay unchanged
	// before it is loaded; default 250ms.
	WatchSettle time.Duration
	// PingInterval and DeadAfter tune how fast a silent peer's link is
	// closed; zero means the mesh defaults (1s, 5s).
	PingInterval, DeadAfter time.Duration
	// ForgetAfter is how long a peer that left or was lost stays known
	// (in GET /v1/peers and in the per-peer link metrics) before it is
	// forgotten; zero means the mesh default (12 dead_after, at least a
	// minute).
	ForgetAfter time.Duration
	// Strict makes New fail when a plugin cannot be loaded (`run
	// --strict`). Otherwise the node starts without it: the plugin is in
	// state failed, is loaded again when its file changes, and the node
	// reports not ready until it serves.
	Strict bool
	// Systemd makes the node a systemd service: when the process has a
	// NOTIFY_SOCKET it reports READY, RELOADING, STOPPING and, when
	// WATCHDOG_USEC is set, WATCHDOG pings there (systemd.go). These two
	// variables are read from the process environment, not Env.
	Systemd bool
}

// Node is a running (or ready to run) pycomms host.
type Node struct {
	opts    Options
	logger  *slog.Logger
	engine  *plugin.Engine
	router  *router.Router
	mesh    *mesh.Mesh
	mdns    *discovery.Service // nil unless discovery.mdns; guarded by mdnsMu after Start
	mdnsMu  sync.Mutex
	started time.Time

	// reloadMu serialises config reloads (and Close against one). No
	// watcher callback takes it, so a reload may wait for the watcher
	// while holding it.
	reloadMu sync.Mutex
	// mu guards cfg, plugins and gen. It is held only to read or replace
	// them, never while loading a plugin or waiting for anything.
	mu      sync.Mutex
	cfg     *config.Config
	plugins map[string]*managed
	// transports are the plugins of kind transport (transport.go).
	transports map[string]*runningTransport
	// transportMu serialises starting and stopping transports: a config
	// reload and a watcher callback (which must not take reloadMu).
	transportMu sync.Mutex
	gen         uint64 // configs applied: 1 after New, +1 per applied reload
	digest      string // cfg.Digest()

	watcher  *watch.Watcher
	server   *control.Server
	listener net.Listener

	// queues is the store of the durable queues and the endpoint of the
	// enqueues routed here, set once a plugin consumes a queue (at start
	// or by a reload, while the control API may read it: queues.go).
	queues atomic.Pointer[queueSet]

	// codecs is the registry of the codec plugins serving now, which
	// rebuildCodecs replaces (codecMu serialises that).
	codecs  codec.Table
	codecMu sync.Mutex
	// counts are the node's own counters, exported as metrics.
	counts nodeCounts
	// metrics is the Prometheus registry /metrics serves (metrics.go).
	metrics *nodeMetrics

	// meshOn is set by Start when the node accepts links or runs mDNS,
	// which only a restart changes; see InMesh.
	meshOn bool

	// name is node.name, which only a restart changes.
	name string
	// draining is set by Drain; inflight counts the calls and sends from
	// outside the node (control API, transports) that have not returned
	// (drain.go).
	draining atomic.Bool
	inflight atomic.Int64

	// watchdogStop ends the systemd watchdog pings, which close
	// watchdogDone when they end (systemd.go); nil without a watchdog.
	watchdogStop, watchdogDone chan struct{}
	// notifying holds a token while a systemd notification is being
	// written (systemd.go).
	notifying chan struct{}
}

// managed is one configured plugin and its live state. It lives as long as
// the plugin's name is in the config: a changed file or a changed config is
// a new version swapped into the same *plugin.Plugin, so routes and
// counters carry over.
//
// Locks, in the order they may be taken: Node.reloadMu, then build (of
// several plugins in name order, by a reload only), then Node.mu or mu.
// Nothing is waited for while mu or Node.mu is held, and the watcher is
// never waited for while build is held, because the watcher's callbacks
// take build.
type managed struct {
	name string
	// build serialises loading and swapping this plugin's versions: a
	// file change and a config reload never interleave.
	build     sync.Mutex
	maxModule atomic.Int64 // limits.max_module, read by the watcher

	mu   sync.Mutex // guards the fields below
	cfg  config.Plugin
	p    *plugin.Plugin // nil while the plugin is failed
	sum  [32]byte       // sha256 of the bytes serving (or, while failed, last tried)
	err  string         // while failed: why
	gone bool           // removed by a config reload

	// conv counts the conversions of a plugin that declares accepts,
	// across its endpoints (a reload may make a new one).
	conv *codec.Stats
}

func newManaged(pc config.Plugin) *managed {
	m := &managed{name: pc.Name, cfg: pc, conv: &codec.Stats{}}
	m.maxModule.Store(int64(min(pc.Limits.MaxModule, math.MaxInt64)))
	return m
}

// state returns what a reader needs, consistently.
func (m *managed) state() (cfg config.Plugin, p *plugin.Plugin, sum [32]byte, gone bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg, m.p, m.sum, m.gone
}

// setFailed records that no version of m could be loaded from the bytes
// with hash sum.
func (m *managed) setFailed(err error, sum [32]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err, m.sum = err.Error(), sum
}

// Validate checks everything short of listening: the config, and that every
// plugin's module exists, compiles, and matches the ABI. It returns nil or
// a *config.Errors naming every problem with its file and key.
func Validate(ctx context.Context, opts Options) error {
	cfg, err := config.LoadContext(ctx, opts.ConfigPath, opts.Env)
	if err != nil {
		return err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	engine, err := plugin.NewEngine(plugin.EngineOptions{CacheDir: cfg.CacheDir, Logger: logger})
	if err != nil {
		return &config.Errors{List: []*config.Error{cfg.At("cache_dir", "%v", err)}}
	}
	defer engine.Close()
	errs := &config.Errors{}
	for _, pc := range cfg.Plugins {
		// A config may list thousands of plugins: a stop signal ends the
		// checks instead of waiting for every compile.
		if err := ctx.Err(); err != nil {
			return err
		}
		wasm, err := readPlugin(pc)
		if err == nil && pc.Kind == "transport" {
			err = engine.CheckTransport(ctx, spec(pc, wasm))
		} else if err == nil && pc.Kind == "codec" {
			err = engine.CheckCodec(ctx, spec(pc, wasm))
		} else if err == nil {
			err = engine.Check(ctx, spec(pc, wasm))
		}
		if err != nil {
			errs.Add(cfg.At(fmt.Sprintf("plugins[%d].path", pc.Index), "plugin %q: %v", pc.Name, err))
		}
	}
	if len(errs.List) > 0 {
		return errs
	}
	return nil
}

// New loads the config and every plugin. Nothing listens until Run.
func New(ctx context.Context, opts Options) (*Node, error) {
	cfg, err := config.LoadContext(ctx, opts.ConfigPath, opts.Env)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = NewLogger(cfg.Log, opts.LogOutput)
	}
	engine, err := plugin.NewEngine(plugin.EngineOptions{CacheDir: cfg.CacheDir, Logger: logger})
	if err != nil {
		return nil, &config.Errors{List: []*config.Error{cfg.At("cache_dir", "%v", err)}}
	}
	n := &Node{
		opts:       opts,
		logger:     logger,
		engine:     engine,
		cfg:        cfg,
		plugins:    map[string]*managed{},
		transports: map[string]*runningTransport{},
		gen:        1,
		digest:     cfg.Digest(),
		name:       cfg.Node.Name,
		notifying:  make(chan struct{}, 1),
	}
	// Every change of what this host serves is advertised to its peers.
	n.metrics = newNodeMetrics(n)
	n.router = router.New(router.Options{Logger: logger, OnChange: func() {
		if m := n.mesh; m != nil {
			m.LocalChanged()
		}
	}, Observe: n.metrics.calls.observer, ObserveRemote: n.metrics.calls.remoteObserver()})
	if err := n.newMesh(); err != nil {
		engine.Close()
		return nil, err
	}
	errs := &config.Errors{}
	for _, pc := range cfg.Plugins {
		if err := ctx.Err(); err != nil {
			n.closePlugins()
			n.closeTransports()
			engine.Close()
			return nil, err
		}
		if pc.Kind == "transport" {
			rt, err := n.loadTransport(ctx, pc)
			n.transports[pc.Name] = rt
			if err != nil {
				errs.Add(cfg.At(fmt.Sprintf("plugins[%d].path", pc.Index), "plugin %q: %v", pc.Name, err))
			}
			continue
		}
		m, err := n.start(ctx, pc)
		n.plugins[pc.Name] = m
		if err != nil {
			errs.Add(cfg.At(fmt.Sprintf("plugins[%d].path", pc.Index), "plugin %q: %v", pc.Name, err))
		}
	}
	n.rebuildCodecs()
	if err := n.openQueues(cfg); err != nil {
		n.closePlugins()
		n.closeTransports()
		engine.Close()
		return nil, err
	}
	n.applyQueues()
	if len(errs.List) > 0 {
		if opts.Strict {
			n.closeQueues()
			n.closePlugins()
			n.closeTransports()
			engine.Close()
			return nil, errs
		}
		// One broken plugin must not keep every other one (and the mesh)
		// from serving: see RATIONALE.md.
		for _, e := range errs.List {
			logger.Error("plugin failed to load; the node starts without it and loads it again when its file changes", "err", e)
		}
	}
	return n, nil
}

// NewLogger builds the host logger from the config's log settings.
func NewLogger(l config.Log, out io.Writer) *slog.Logger {
	if out == nil {
		out = os.Stderr
	}
	o := &slog.HandlerOptions{Level: l.Level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(out, o))
	}
	return slog.New(slog.NewTextHandler(out, o))
}

func readPlugin(pc config.Plugin) ([]byte, error) {
	if name, ok := pc.Builtin(); ok {
		b, ok := plugins.Builtin(name)
		if !ok {
			return nil, fmt.Errorf("no builtin plugin %q (builtins: %v)", name, plugins.BuiltinNames())
		}
		return b, nil
	}
	// The size is checked before the file is read whole: a file past
	// limits.max_module is refused without holding it in memory.
	f, err := os.Open(pc.Path)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && uint64(st.Size()) > pc.Limits.MaxModule {
		return nil, &plugin.TooLargeError{Size: uint64(st.Size()), Limit: pc.Limits.MaxModule}
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(pc.Limits.MaxModule)+1))
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	if uint64(len(b)) > pc.Limits.MaxModule { // grew after the stat
		return nil, &plugin.TooLargeError{Size: uint64(len(b)), Limit: pc.Limits.MaxModule}
	}
	return b, nil
}

func spec(pc config.Plugin, wasm []byte) plugin.Spec {
	return plugin.Spec{
		Name:      pc.Name,
		Wasm:      wasm,
		Instances: pc.Instances,
		Queue:     pc.Queue,
		Memory:    pc.Limits.Memory,
		Timeout:   pc.Limits.Timeout,
		MaxReply:  pc.Limits.MaxReply,
		MaxModule: pc.Limits.MaxModule,
		Grants:    pc.Grants,
		Config:    pc.Config,
	}
}

// start loads a plugin's first version and binds its routes. It always
// returns the managed plugin: on error it is failed, with the error.
func (n *Node) start(ctx context.Context, pc config.Plugin) (*managed, error) {
	m := newManaged(pc)
	wasm, err := readPlugin(pc)
	if err != nil {
		m.setFailed(err, [32]byte{})
		return m, err
	}
	sum := sha256.Sum256(wasm)
	v, err := n.loadVersion(ctx, pc, wasm)
	if err != nil {
		m.setFailed(err, sum)
		return m, err
	}
	p := plugin.New(pc.Name, v)
	if pc.Kind == "codec" {
		m.p, m.sum = p, sum
		n.logger.Info("codec loaded", "plugin", pc.Name, "version", short(v.Hash()), "instances", pc.Instances, "pairs", v.Pairs())
		return m, nil
	}
	if err := n.router.SetRoutes(pc.Name, n.endpoint(pc, p, m.conv), pc.Services, pc.Topics); err != nil {
		p.Close()
		m.setFailed(err, sum)
		return m, err
	}
	m.p, m.sum = p, sum
	n.logger.Info("plugin loaded", "plugin", pc.Name, "version", short(v.Hash()), "instances", pc.Instances,
		"services", pc.Services, "topics", pc.Topics)
	return m, nil
}

// Run listens on the control address, watches plugin files, and serves
// until ctx ends; then it shuts down gracefully, as `pycomms-host run`
// does on SIGTERM: it drains for up to drain_timeout (Drain) and closes.
// The error says when the drain did not finish.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), n.DrainTimeout())
	defer cancel()
	drainErr := n.Drain(dctx)
	return errors.Join(drainErr, n.Close())
}

// Start begins listening and watching without blocking.
func (n *Node) Start() error {
	n.started = time.Now()
	w, err := watch.New(watch.Options{Settle: n.opts.WatchSettle, Logger: n.logger})
	if err != nil {
		return fmt.Errorf("start file watcher: %w", err)
	}
	n.watcher = w
	if err := n.startMesh(); err != nil {
		n.watcher.Close()
		return err
	}
	n.mu.Lock()
	ms := slices.Collect(maps.Values(n.plugins))
	addr, allowHosts := n.cfg.Control, n.cfg.ControlAllowHosts
	tokenFile, publicMetrics := n.cfg.ControlTokenFile, n.cfg.ControlPublicMetrics
	n.mu.Unlock()
	for _, m := range ms {
		n.watch(m)
	}
	if err := n.startTransports(); err != nil {
		n.watcher.Close()
		n.closeMesh()
		n.closeTransports()
		return err
	}
	if addr != "" {
		stop := func() {
			n.watcher.Close()
			n.closeMesh()
			n.closeTransports()
		}
		// Read again at start: the file may have changed since the config
		// was loaded. The error names the key, never the token.
		token, err := readControlToken(tokenFile)
		if err != nil {
			stop()
			return err
		}
		l, err := listenControl(addr)
		if err != nil {
			stop()
			return listenError("control", addr, err)
		}
		n.listener = l
		n.server = control.NewServer(n, n.opts.Version, n.logger,
			control.WithAllowedHosts(allowHosts...),
			control.WithToken(token),
			control.WithMetrics(n.metricsHandler()),
			control.WithPublicMetrics(publicMetrics))
		go func() {
			if err := n.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.logger.Error("control API stopped", "err", err)
			}
		}()
	}
	n.logger.Info("node started", "node", n.cfg.Node.Name, "control", n.ControlAddr(), "plugins", len(n.plugins), "config", n.cfg.File)
	// Everything listens now (a connection is accepted as soon as the
	// listener exists), so the service manager may start what depends on
	// this node.
	n.notify(sdReady)
	n.startWatchdog()
	return nil
}

// ListenError is Start's error when the node cannot listen on one of its
// addresses, because another process holds it or it is not this host's:
// not a config error, since the same config may work once the address is
// free.
type ListenError struct {
	Key  string // the config key of the address: control, listen.tcp, listen.quic
	Addr string // the address as configured
	Err  error  // the listener's error
}

func (e *ListenError) Error() string {
	cause := e.Err
	var oe *net.OpError
	if errors.As(cause, &oe) {
		cause = oe.Err // "bind: address already in use", without the address again
	}
	hint := ""
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		hint = " (another process holds it, perhaps a node already running: stop it or configure another address)"
	}
	return fmt.Sprintf("%s: cannot listen on %s: %v%s", e.Key, e.Addr, cause, hint)
}

func (e *ListenError) Unwrap() error { return e.Err }

// listenError makes a *ListenError of a failure to listen, and returns any
// other error as it is.
func listenError(key, addr string, err error) error {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "listen" {
		return err
	}
	return &ListenError{Key: key, Addr: addr, Err: err}
}

// ControlAddr is the address the control API listens on ("" when
// disabled): host:port, or unix:// and the socket path.
func (n *Node) ControlAddr() string {
	if n.listener == nil {
		return ""
	}
	if a := n.listener.Addr(); a.Network() == "unix" {
		return control.UnixScheme + a.String()
	}
	return n.listener.Addr().String()
}

// unixListener removes its socket file when closed (the file was renamed
// after bind, so net's own unlink-on-close would miss it). Addr reports
// the configured path rather than the temporary name bound.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// maxUnixPath is the longest socket path Linux binds (sun_path holds 108
// bytes with the terminating NUL); config refuses a longer control path.
const maxUnixPath = 107

// listenControl listens on a control address: TCP, or a unix socket made
// mode 0600, so that only the node's user can connect (the socket is the
// control API's only access rule when it has no token). A socket file left
// by a node that died is replaced; one a live node answers on is not.
func listenControl(addr string) (net.Listener, error) {
	path, unix := control.UnixPath(addr)
	if !unix {
		return net.Listen("tcp", addr)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a socket: remove it or choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, &net.OpError{Op: "listen", Net: "unix", Err: syscall.EADDRINUSE}
		}
		os.Remove(path)
	}
	// bind creates the socket with the umask's mode. Made under a
	// temporary name, narrowed, then renamed into place, it is never
	// reachable at its configured path with a wider mode. A path too long
	// for a temporary name beside it is bound in place and narrowed at
	// once, which leaves the umask's mode for that instant.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".pycomms-%d.sock", os.Getpid()))
	if len(tmp) > maxUnixPath {
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(path, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("control: make socket %s owner-only: %w", path, err)
		}
		return l, nil
	}
	os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: make socket %s owner-only: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: put socket in place at %s: %w", path, err)
	}
	l = &unixListener{UnixListener: ul, path: path}
	return l, nil
}

// Close leaves the mesh (peers are told, so they drop this node's routes at
// once), then stops the control API, the watcher and every plugin.
func (n *Node) Close() error {
	// A reload in progress finishes first, so it cannot start plugins or
	// watches behind the shutdown.
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if !n.draining.Load() {
		n.notify(sdStopping) // Drain said it already
	}
	n.closeMesh()
	if n.server != nil {
		// After a drain, what is still running had its drain_timeout:
		// it is cut off, not waited for again.
		grace := 10 * time.Second
		if n.draining.Load() {
			grace = 100 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		if err := n.server.Shutdown(ctx); err != nil {
			n.logger.Warn("control API shutdown", "err", err)
		}
		cancel()
	}
	if n.watcher != nil {
		n.watcher.Close()
	}
	n.closeQueues() // before the plugins: deliveries under way finish
	n.closePlugins()
	n.closeTransports()
	n.stopWatchdog()
	n.logger.Info("node stopped", "node", n.cfg.Node.Name)
	return n.engine.Close()
}

func (n *Node) closePlugins() {
	n.mu.Lock()
	ms := slices.Collect(maps.Values(n.plugins))
	n.mu.Unlock()
	var changes []router.Change
	for _, m := range ms {
		changes = append(changes, router.Change{Owner: m.name})
	}
	_ = n.router.Update(changes...) // removals cannot fail
	var wg sync.WaitGroup
	for _, m := range ms {
		m.mu.Lock()
		p := m.p
		m.gone = true
		m.mu.Unlock()
		if p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); p.Close() }()
		}
	}
	wg.Wait()
}

// watch registers m's file for hot reload. Builtins have no file. It must
// not be called with m.build held (AddFile may run a first check).
func (n *Node) watch(m *managed) {
	cfg, _, sum, _ := m.state()
	if _, builtin := cfg.Builtin(); builtin || !cfg.Watch || n.watcher == nil {
		return
	}
	err := n.watcher.AddFile(cfg.Path, watch.File{
		Initial:    sum,
		OnChange:   func(data []byte, sum [32]byte) { n.hotReload(m, data, sum) },
		MaxSize:    m.maxModule.Load,
		OnOversize: func(size int64) { n.refuseOversize(m, size) },
	})
	if err != nil {
		n.logger.Warn("cannot watch plugin file; hot reload is off for it", "plugin", m.name, "path", cfg.Path, "err", err)
	}
}

// hotReload loads a changed module in the background of the watcher and
// swaps it in; a broken module is refused and the old version keeps
// serving. A failed plugin gets its first version this way.
func (n *Node) hotReload(m *managed, data []byte, sum [32]byte) {
	m.build.Lock()
	defer m.build.Unlock()
	cfg, p, cur, gone := m.state()
	if gone {
		return
	}
	if p != nil && sum == cur {
		// The file is back to the version serving (after a refused one):
		// nothing to load, and the refusal no longer describes the file.
		if p.Stats().LastError != "" {
			p.SetError(nil)
			n.logger.Info("plugin file is the serving version again", "plugin", m.name, "version", short(p.Current().Hash()))
		}
		return
	}
	v, err := n.loadVersion(context.Background(), cfg, data)
	if err != nil {
		if p == nil {
			m.setFailed(err, sum)
			n.logger.Error("plugin still fails to load", "plugin", m.name, "err", err)
			return
		}
		err = fmt.Errorf("new version %s refused, %s keeps serving: %w", short(hex.EncodeToString(sum[:])), short(p.Current().Hash()), err)
		p.SetError(err)
		n.counts.swapsRefused.Add(1)
		n.logger.Error("plugin reload failed", "plugin", m.name, "err", err)
		return
	}
	if p != nil {
		old := short(p.Current().Hash())
		m.mu.Lock()
		m.sum = sum
		m.mu.Unlock()
		p.Swap(v)
		n.counts.swaps.Add(1)
		n.logger.Info("plugin reloaded", "plugin", m.name, "from", old, "to", short(v.Hash()))
		if cfg.Kind == "codec" {
			n.rebuildCodecs() // its pairs may have changed
		}
		return
	}
	np := plugin.New(m.name, v)
	if cfg.Kind == "codec" {
		m.mu.Lock()
		m.p, m.sum, m.err = np, sum, ""
		m.mu.Unlock()
		n.rebuildCodecs()
		n.logger.Info("codec loaded; it had failed", "plugin", m.name, "version", short(v.Hash()))
		return
	}
	if err := n.router.SetRoutes(m.name, n.endpoint(cfg, np, m.conv), cfg.Services, cfg.Topics); err != nil {
		np.Close()
		m.setFailed(err, sum)
		n.logger.Error("plugin still fails to load", "plugin", m.name, "err", err)
		return
	}
	m.mu.Lock()
	m.p, m.sum, m.err = np, sum, ""
	m.mu.Unlock()
	n.logger.Info("plugin loaded; it had failed", "plugin", m.name, "version", short(v.Hash()))
}

// refuseOversize records that the plugin's new file was too large to read;
// the serving version stays.
func (n *Node) refuseOversize(m *managed, size int64) {
	m.build.Lock()
	defer m.build.Unlock()
	cfg, p, _, gone := m.state()
	if gone {
		return
	}
	tooLarge := &plugin.TooLargeError{Size: uint64(size), Limit: cfg.Limits.MaxModule}
	if p == nil {
		m.setFailed(tooLarge, [32]byte{})
		n.logger.Error("plugin still fails to load", "plugin", m.name, "err", tooLarge)
		return
	}
	err := fmt.Errorf("new version refused, %s keeps serving: %w", short(p.Current().Hash()), tooLarge)
	p.SetError(err)
	n.logger.Error("plugin reload failed", "plugin", m.name, "err", err)
}

func short(hash string) string { return hash[:min(12, len(hash))] }

// Call, Send, Publish and Subscribe implement control.Backend.

// Call routes a request. While the node drains it is refused with busy.
func (n *Node) Call(ctx context.Context, m *message.Message) ([]byte, error) {
	done, err := n.admit("calls", m.Subject)
	if err != nil {
		return nil, err
	}
	defer done()
	return n.router.Call(ctx, m)
}

// Send routes a one-way message. While the node drains it is refused
// with busy.
func (n *Node) Send(ctx context.Context, m *message.Message) error {
	done, err := n.admit("sends", m.Subject)
	if err != nil {
		return err
	}
	defer done()
	return n.router.Send(ctx, m)
}

// Publish fans an event out to every subscriber. An event with a
// Deadline waits for room on a congested link to another host until then
// (flow control); without one it is dropped there at once. Local
// subscribers never make the publisher wait. While the node drains it is
// refused with busy.
func (n *Node) Publish(ctx context.Context, m *message.Message) (int, error) {
	done, err := n.admit("events", m.Subject)
	if err != nil {
		return 0, err
	}
	defer done()
	return n.router.Publish(ctx, m)
}

// Subscribe registers a local subscriber. While the node drains it is
// refused with busy; subscriptions open before go on until Close.
func (n *Node) Subscribe(pattern string, buffer int) (control.Subscription, error) {
	done, err := n.admit("subscriptions", pattern)
	if err != nil {
		return nil, err
	}
	done() // a subscription is not work the drain waits for
	s, err := n.router.Subscribe(pattern, buffer)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ConfirmInterest implements control.InterestConfirmer: it waits until the
// mesh peers acknowledged what this node subscribes to now (see
// mesh.Mesh.ConfirmInterest), or ctx ends. A node outside a mesh has
// nobody to wait for.
func (n *Node) ConfirmInterest(ctx context.Context) (confirmed, unconfirmed int) {
	if n.mesh == nil {
		return 0, 0
	}
	c := n.mesh.ConfirmInterest(ctx)
	return c.Confirmed, c.Unconfirmed
}

// Plugins describes every configured plugin.
func (n *Node) Plugins() []control.PluginInfo {
	n.mu.Lock()
	ms := slices.Collect(maps.Values(n.plugins))
	n.mu.Unlock()
	out := make([]control.PluginInfo, 0, len(ms))
	for _, m := range ms {
		m.mu.Lock()
		cfg, p, failure, conv := m.cfg, m.p, m.err, m.conv
		m.mu.Unlock()
		info := control.PluginInfo{
			Name: cfg.Name, Kind: cfg.Kind, Path: cfg.Path, State: control.PluginFailed, Error: failure,
			Instances: cfg.Instances, Services: slices.Clone(cfg.Services), Topics: slices.Clone(cfg.Topics),
		}
		if p != nil {
			v := p.Current()
			st := p.Stats()
			info.State, info.Error = control.PluginServing, st.LastError
			info.Version, info.LoadedAt = short(v.Hash()), v.LoadedAt()
			info.Busy, info.Calls, info.Errors = st.Busy, st.Calls, st.Errors
		}
		for _, g := range cfg.Grants {
			info.Grants = append(info.Grants, string(g))
		}
		codecInfo(&info, cfg, p, conv)
		out = append(out, info)
	}
	out = append(out, n.transportInfos()...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Health summarises the node. It is ready when every plugin serves, it is
// not draining, and every configured peer has been dialled once
// (connected or failed); Reasons says what is missing otherwise.
func (n *Node) Health() control.Health {
	h, _ := n.health()
	return h
}

// health is Health and the reasons it is not ready, one by one.
func (n *Node) health() (control.Health, []string) {
	n.mu.Lock()
	ms := slices.Collect(maps.Values(n.plugins))
	name, digest, gen := n.cfg.Node.Name, n.digest, n.gen
	n.mu.Unlock()
	var failed []string
	for _, m := range ms {
		if _, p, _, _ := m.state(); p == nil {
			failed = append(failed, m.name)
		}
	}
	n.mu.Lock()
	for name, rt := range n.transports {
		if rt.tr == nil {
			failed = append(failed, name)
		}
	}
	nt := len(n.transports)
	n.mu.Unlock()
	slices.Sort(failed)
	reasons := n.notReady(failed)
	return control.Health{
		Status: "ok", Node: name, Uptime: time.Since(n.started).Round(time.Second),
		Plugins: len(ms) + nt, Version: n.opts.Version.Version,
		Ready: len(reasons) == 0, NotReady: strings.Join(reasons, "; "),
		ConfigGeneration: gen, ConfigDigest: short(digest),
	}, reasons
}

// notReady lists why the node is not ready, given its failed plugins
// (sorted); none when it is.
func (n *Node) notReady(failed []string) []string {
	var reasons []string
	if len(failed) > 0 {
		reasons = append(reasons, "plugins failed: "+strings.Join(failed, ", "))
	}
	if n.draining.Load() {
		reasons = append(reasons, "draining: the node is stopping")
	}
	if n.mesh != nil {
		if untried := n.mesh.Untried(); len(untried) > 0 {
			reasons = append(reasons, "peers not dialled yet: "+strings.Join(untried, ", "))
		}
	}
	return reasons
}

// Readiness implements control.ReadinessReporter: Health's verdict with
// its reasons one by one.
func (n *Node) Readiness() control.Readiness {
	_, reasons := n.health()
	return control.Readiness{Ready: len(reasons) == 0, Reasons: reasons}
}

var (
	_ control.Backend = (*Node)(nil)
	_ control.Mesh    = (*Node)(nil)

	_ control.ReadinessReporter = (*Node)(nil)
)
