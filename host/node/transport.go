package node

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/codec"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/transport"
	"github.com/pycomms/pycomms-host/host/internal/watch"
)

// A transport plugin (kind: transport) is not a managed handler: it owns
// sockets, so a new version cannot be swapped in while the old one
// drains (both would accept on the same address). A changed file or
// config restarts it instead: its connections close, and the new version
// accepts and dials again. Transports live in Node.transports, next to
// the handlers.

// runningTransport is one configured transport and its state. Once it is
// in Node.transports, its fields change under Node.mu only.
type runningTransport struct {
	cfg config.Plugin
	tr  *transport.Transport // nil while failed
	sum [32]byte
	err string // while failed: why
	// conv counts conversions for a transport that declares accepts.
	conv *codec.Stats
}

// transportConfig turns a plugin's config into the runtime's.
func transportConfig(pc config.Plugin, wasm []byte, origin string) (transport.Config, error) {
	tc := transport.Config{
		Spec:        spec(pc, wasm),
		Origin:      origin,
		ReadBuffer:  int(pc.Limits.ReadBuffer),
		WriteBuffer: int(pc.Limits.WriteBuffer),
		MaxConns:    pc.Limits.MaxConns,
	}
	for _, d := range pc.Transport.Dial {
		tc.Dial = append(tc.Dial, transport.Dial{Raw: d.Raw, TLS: d.Scheme == "tls", Addr: d.Addr})
	}
	for _, a := range pc.Transport.Accept {
		tc.Accept = append(tc.Accept, a.Addr)
	}
	if pc.Transport.AllowFrom != nil {
		tc.AllowFrom = slices.Clone(pc.Transport.AllowFrom)
	} else if pc.Transport.Open {
		tc.AllowFrom = nil
	} else {
		// Loopback listeners only (config refuses others without a rule):
		// keep it so even if an address resolves elsewhere later.
		tc.AllowFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if pc.Transport.CA != "" {
		pool, err := identity.LoadCA(pc.Transport.CA)
		if err != nil {
			return tc, fmt.Errorf("ca: %w", err)
		}
		tc.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tc, nil
}

// loadTransport loads (without starting) the transport of pc.
func (n *Node) loadTransport(ctx context.Context, pc config.Plugin) (*runningTransport, error) {
	rt := &runningTransport{cfg: pc, conv: &codec.Stats{}}
	wasm, err := readPlugin(pc)
	if err == nil {
		rt.sum = sha256.Sum256(wasm)
		var tc transport.Config
		if tc, err = transportConfig(pc, wasm, n.ID()); err == nil {
			rt.tr, err = transport.New(ctx, n.engine, tc, n.router, n.logger)
		}
	}
	if err != nil {
		rt.err = err.Error()
		return rt, err
	}
	return rt, nil
}

// startTransport listens and dials for rt and binds its routes.
func (n *Node) startTransport(rt *runningTransport) error {
	if rt.tr == nil {
		return nil
	}
	fail := func(err error) error {
		n.mu.Lock()
		rt.tr, rt.err = nil, err.Error()
		n.mu.Unlock()
		return err
	}
	// With a transport an event can reach this host by two paths (the
	// mesh and the transport's medium): drop the second copy.
	n.router.EnableDedup()
	if err := rt.tr.Start(); err != nil {
		return fail(err)
	}
	if err := n.router.SetRoutes(rt.cfg.Name, n.endpoint(rt.cfg, rt.tr, rt.conv), rt.cfg.Services, rt.cfg.Topics); err != nil {
		rt.tr.Close()
		return fail(err)
	}
	n.logger.Info("transport started", "plugin", rt.cfg.Name, "version", short(rt.tr.Version().Hash()),
		"dial", len(rt.cfg.Transport.Dial), "accept", len(rt.cfg.Transport.Accept), "services", rt.cfg.Services, "topics", rt.cfg.Topics)
	return nil
}

// startTransports starts every loaded transport (Node.Start).
func (n *Node) startTransports() error {
	n.mu.Lock()
	ts := slices.Collect(maps.Values(n.transports))
	n.mu.Unlock()
	for _, rt := range ts {
		if err := n.startTransport(rt); err != nil {
			return fmt.Errorf("plugins[%d] (transport %q): %w", rt.cfg.Index, rt.cfg.Name, err)
		}
		n.watchTransport(rt)
	}
	return nil
}

// stopTransport removes rt's routes and closes it.
func (n *Node) stopTransport(rt *runningTransport) { n.stopTransportRoutes(rt, true) }

// stopTransportRoutes closes rt, and removes its routes when routes is
// set: not when a handler of the same name has taken them over (a reload
// that changed the plugin's kind).
func (n *Node) stopTransportRoutes(rt *runningTransport, routes bool) {
	if rt.tr == nil {
		return
	}
	if routes {
		n.router.Remove(rt.cfg.Name)
	}
	rt.tr.Close()
	n.mu.Lock()
	rt.tr = nil
	n.mu.Unlock()
}

// closeTransports stops every transport (Node.Close).
func (n *Node) closeTransports() {
	n.mu.Lock()
	ts := slices.Collect(maps.Values(n.transports))
	n.transports = map[string]*runningTransport{}
	n.mu.Unlock()
	for _, rt := range ts {
		if n.watcher != nil {
			n.watcher.Remove(rt.cfg.Path)
		}
	}
	n.transportMu.Lock()
	defer n.transportMu.Unlock()
	for _, rt := range ts {
		n.stopTransport(rt)
	}
}

// watchTransport restarts a transport when its file changes.
func (n *Node) watchTransport(rt *runningTransport) {
	if _, builtin := rt.cfg.Builtin(); builtin || !rt.cfg.Watch || n.watcher == nil {
		return
	}
	name := rt.cfg.Name
	limit := rt.cfg.Limits.MaxModule
	err := n.watcher.AddFile(rt.cfg.Path, watch.File{
		Initial:  rt.sum,
		OnChange: func(_ []byte, _ [32]byte) { n.restartTransport(name) },
		MaxSize:  func() int64 { return int64(min(limit, 1<<62)) },
		OnOversize: func(size int64) {
			n.logger.Error("transport file refused; the running version keeps serving", "plugin", name,
				"err", &plugin.TooLargeError{Size: uint64(size), Limit: limit})
		},
	})
	if err != nil {
		n.logger.Warn("cannot watch transport file; hot reload is off for it", "plugin", name, "path", rt.cfg.Path, "err", err)
	}
}

// restartTransport replaces a transport by a fresh one of its current
// config (its file changed). A new version that does not load leaves the
// transport failed: the old one cannot keep its sockets while a new one
// takes them.
func (n *Node) restartTransport(name string) {
	// Not reloadMu: a reload waits for watcher callbacks while holding it.
	n.transportMu.Lock()
	defer n.transportMu.Unlock()
	n.mu.Lock()
	old := n.transports[name]
	n.mu.Unlock()
	if old == nil {
		return
	}
	n.replaceTransport(old, old.cfg)
}

// replaceTransport stops old (when not nil) and starts pc in its place.
// The caller holds transportMu.
func (n *Node) replaceTransport(old *runningTransport, pc config.Plugin) {
	if old != nil {
		n.stopTransport(old)
	}
	rt, err := n.loadTransport(context.Background(), pc)
	if err == nil {
		err = n.startTransport(rt)
	}
	if err != nil {
		n.logger.Error("transport failed to (re)start", "plugin", pc.Name, "err", err)
	}
	n.mu.Lock()
	n.transports[pc.Name] = rt
	n.mu.Unlock()
}

// reloadTransports applies a reloaded config's transports: new ones
// start, removed ones stop, changed ones restart. The caller holds
// reloadMu.
func (n *Node) reloadTransports(cfg *config.Config) {
	n.mu.Lock()
	cur := maps.Clone(n.transports)
	n.mu.Unlock()
	keep := map[string]bool{}
	for _, pc := range cfg.Plugins {
		if pc.Kind != "transport" {
			continue
		}
		keep[pc.Name] = true
		old := cur[pc.Name]
		if old != nil && config.SamePlugin(old.cfg, pc) && old.tr != nil {
			if wasm, err := readPlugin(pc); err == nil && sha256.Sum256(wasm) == old.sum {
				n.mu.Lock()
				old.cfg = pc
				n.mu.Unlock()
				continue
			}
		}
		if old != nil && n.watcher != nil {
			n.watcher.Remove(old.cfg.Path) // waits for a running callback: transportMu is not held
		}
		n.transportMu.Lock()
		n.replaceTransport(old, pc)
		n.transportMu.Unlock()
		n.mu.Lock()
		rt := n.transports[pc.Name]
		n.mu.Unlock()
		n.watchTransport(rt)
	}
	handlers := map[string]bool{}
	for _, pc := range cfg.Plugins {
		handlers[pc.Name] = pc.Kind != "transport"
	}
	for name, rt := range cur {
		if !keep[name] {
			if n.watcher != nil {
				n.watcher.Remove(rt.cfg.Path)
			}
			n.transportMu.Lock()
			n.stopTransportRoutes(rt, !handlers[name])
			n.transportMu.Unlock()
			n.mu.Lock()
			delete(n.transports, name)
			n.mu.Unlock()
			n.logger.Info("transport removed by config reload", "plugin", name)
		}
	}
}

// transportInfos describes every transport for Plugins.
func (n *Node) transportInfos() []control.PluginInfo {
	n.mu.Lock()
	var ts []runningTransport
	for _, rt := range n.transports {
		ts = append(ts, *rt)
	}
	n.mu.Unlock()
	var out []control.PluginInfo
	for _, rt := range ts {
		pc := rt.cfg
		info := control.PluginInfo{
			Name: pc.Name, Kind: pc.Kind, Path: pc.Path, State: control.PluginFailed, Error: rt.err,
			Instances: pc.Instances, Services: slices.Clone(pc.Services), Topics: slices.Clone(pc.Topics),
			Config: pc.RedactedConfig(),
		}
		for _, g := range pc.Grants {
			info.Grants = append(info.Grants, string(g))
		}
		acceptsInfo(&info, pc, rt.conv)
		ti := &control.TransportInfo{}
		for _, d := range pc.Transport.Dial {
			ti.Dial = append(ti.Dial, d.Raw)
		}
		if tr := rt.tr; tr != nil {
			st := tr.Stats()
			v := tr.Version()
			info.State, info.Error = control.PluginServing, ""
			info.Version, info.LoadedAt = short(v.Hash()), v.LoadedAt()
			info.Calls, info.Errors = st.MessagesOut, st.Errors
			ti.Listening = st.Listening
			ti.Accepted, ti.Dialed, ti.Reconnects, ti.DialErrors, ti.Refused = st.Accepted, st.Dialed, st.Reconnects, st.DialErrors, st.Refused
			ti.BytesIn, ti.BytesOut = st.BytesIn, st.BytesOut
			ti.MessagesIn, ti.MessagesOut, ti.Dropped, ti.OwnDropped = st.MessagesIn, st.MessagesOut, st.Dropped, st.OwnDropped
			ti.Duplicates = st.Duplicates
			ti.Errors, ti.InstanceFailures = st.Errors, st.InstanceFailures
			ti.Events, ti.EventNanos = st.Events, uint64(st.EventTime)
			ti.Closes = st.Closes
			for _, c := range st.Conns {
				ti.Conns = append(ti.Conns, control.TransportConn{ID: c.ID, Entry: c.Entry, Remote: c.Remote, Instance: c.Instance,
					BytesIn: c.BytesIn, BytesOut: c.BytesOut, Since: c.Since})
			}
		}
		info.Transport = ti
		out = append(out, info)
	}
	return out
}
