package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/codec"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// Reload re-reads the config and applies it: new plugins start, removed
// ones drain and stop, and a changed plugin (file, limits, instances,
// queue, grants, config, services, topics) gets a new version built fully
// and swapped in atomically while the old one drains, the way a new .wasm
// file is, so no call is lost and its counters carry on. Every route
// change of one reload is one routing snapshot, so a service that moves
// between plugins always has an owner.
//
// The new config is checked and every new version built before anything
// changes, so a broken config (or a serving plugin whose new version does
// not load) is refused whole and the running one keeps serving. A plugin
// that is failed and still does not load stays failed without refusing
// the reload. Node-level keys other than peers (the keys config.Keys
// declares Restart, "restart" in KEYS.md) cannot change without a
// restart; a reload that changes them is refused, naming them.
// Changed peers are applied: new ones are dialled, removed ones are no
// longer redialled.
func (n *Node) Reload(ctx context.Context) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if n.draining.Load() {
		// A stopping node has no use for a new config, and a reload must
		// not start plugins or links behind the drain.
		return message.Errorf(abi.StatusBusy, "node %s is draining (stopping): reload refused", n.name)
	}
	n.notify(sdReloading)
	defer n.notify(sdReady) // refused or applied, the node serves again
	err := n.reload(ctx)
	if err != nil {
		n.counts.reloadsRefused.Add(1)
		n.logger.Error("config reload refused; the running config keeps serving", "err", err)
		return configFault(err)
	}
	n.counts.reloadsApplied.Add(1)
	return nil
}

// configFault marks err as the new config's fault (a *control.ConfigError,
// answered 400 invalid) when it is one: every *config.Errors is, whatever
// else failed inside the node is not.
func configFault(err error) error {
	var ce *config.Errors
	if errors.As(err, &ce) {
		return &control.ConfigError{Err: err}
	}
	return err
}

func (n *Node) reload(ctx context.Context) error {
	cfg, err := config.LoadContext(ctx, n.opts.ConfigPath, n.opts.Env)
	if err != nil {
		return err
	}
	n.mu.Lock()
	cur, curDigest := n.cfg, n.digest
	ms := maps.Clone(n.plugins)
	n.mu.Unlock()
	// The token file is read again whether or not its path changed: a
	// reload is how an operator rotates the token.
	token, err := readControlToken(cfg.ControlTokenFile)
	if err != nil {
		return &control.ConfigError{Err: err}
	}
	digest := cfg.Digest()
	if digest == curDigest {
		if n.setControlAuth(cfg, token) {
			n.logger.Info("config reload: control token replaced (control.token_file)")
			return nil
		}
		n.logger.Info("config reload: nothing changed")
		return nil
	}
	if fixed := config.RestartKeysChanged(cur, cfg); len(fixed) > 0 {
		return &control.ConfigError{Err: fmt.Errorf("config reload not supported for %s: restart the node to apply", strings.Join(fixed, ", "))}
	}

	// The watcher's callbacks take a plugin's build lock, so it is held
	// only while building and committing, and released before the watcher
	// is told anything (Remove waits for a running callback).
	if err := n.openQueues(cfg); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(ms))
	for _, name := range names {
		ms[name].build.Lock()
	}
	plan, err := n.apply(ctx, cfg, digest, ms)
	for _, name := range names {
		ms[name].build.Unlock()
	}
	if err != nil {
		return err
	}

	if n.watcher != nil { // nil before Start
		for _, path := range plan.unwatch {
			n.watcher.Remove(path)
		}
	}
	for _, m := range plan.watch {
		n.watch(m)
	}
	for _, p := range plan.drain {
		go p.Close() // removed: drain in the background
	}
	if !slices.Equal(cfg.Peers, cur.Peers) {
		n.mesh.SetPeers(peersOf(cfg.Peers))
	}
	n.applyQueues()
	n.reloadTransports(cfg)
	tokenReplaced := n.setControlAuth(cfg, token)
	n.logger.Info("config reloaded", "changed", plan.changed, "removed", len(plan.drain), "generation", plan.gen,
		"control_token_replaced", tokenReplaced)
	return nil
}

// readControlToken reads control.token_file; "" when none is set. Errors
// name the key and the file, never the token.
func readControlToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	return control.ReadTokenFile("control.token_file", path)
}

// setControlAuth gives the running control API cfg's token (read from
// control.token_file by the caller) and control.public_metrics, and
// reports whether the token changed. The API's listener is a restart key;
// who may use it is not.
func (n *Node) setControlAuth(cfg *config.Config, token string) bool {
	if n.server == nil { // before Start, or no control API
		return false
	}
	n.server.SetPublicMetrics(cfg.ControlPublicMetrics)
	if n.server.TokenMatches(token) {
		return false
	}
	n.server.SetToken(token)
	return true
}

// reloadPlan is what a reload does after its build locks are released.
type reloadPlan struct {
	unwatch []string         // paths to stop watching (all before any watch)
	watch   []*managed       // plugins to (re)start watching
	drain   []*plugin.Plugin // removed plugins to close
	changed int
	gen     uint64
}

// step is what a reload does to one plugin of the new config.
type step struct {
	pc     config.Plugin
	old    *managed // nil for a new plugin
	oldCfg config.Plugin
	oldP   *plugin.Plugin // the old plugin's serving version, nil if failed
	v      *plugin.Version
	p      *plugin.Plugin // a new Plugin for v (new, or failed before)
	sum    [32]byte
	failed error // a failed plugin that still does not load
	conv   *codec.Stats
}

// apply builds and commits cfg. The caller holds the build lock of every
// plugin in ms (the plugins of the running config).
func (n *Node) apply(ctx context.Context, cfg *config.Config, digest string, ms map[string]*managed) (*reloadPlan, error) {
	var steps []*step
	discard := func() {
		for _, st := range steps {
			switch {
			case st.p != nil:
				st.p.Close()
			case st.v != nil:
				st.v.Close()
			}
		}
	}
	errs := &config.Errors{}
	for _, pc := range cfg.Plugins {
		if pc.Kind == "transport" {
			continue // reloadTransports, once the handlers are applied
		}
		st := &step{pc: pc, old: ms[pc.Name], conv: &codec.Stats{}}
		if st.old != nil {
			st.oldCfg, st.oldP, st.sum, _ = st.old.state()
			st.conv = st.old.conv
		}
		same := st.old != nil && config.SamePlugin(st.oldCfg, pc)
		if same && watched(pc) {
			// The watcher owns changes of a watched file: an unchanged
			// plugin is left alone, even when a refused file sits on disk.
			steps = append(steps, st)
			continue
		}
		wasm, err := readPlugin(pc)
		var sum [32]byte
		if err == nil {
			sum = sha256.Sum256(wasm)
			if same && sum == st.sum {
				steps = append(steps, st)
				continue
			}
			st.v, err = n.loadVersion(ctx, pc, wasm)
		}
		st.sum = sum
		if err != nil {
			if st.old != nil && st.oldP == nil {
				st.failed = err
				steps = append(steps, st)
				continue
			}
			errs.Add(cfg.At(fmt.Sprintf("plugins[%d].path", pc.Index), "plugin %q: %v", pc.Name, err))
			continue
		}
		steps = append(steps, st)
	}
	if len(errs.List) > 0 {
		discard()
		return nil, errs
	}

	// One routing snapshot for every route change of this reload.
	keep := map[string]bool{}
	var changes []router.Change
	for _, st := range steps {
		keep[st.pc.Name] = true
		codecNow := st.pc.Kind == "codec"
		switch {
		case st.v == nil:
		case st.oldP != nil && codecNow:
			if st.oldCfg.Kind != "codec" {
				changes = append(changes, router.Change{Owner: st.pc.Name}) // a codec has no routes
			}
		case st.oldP != nil:
			if !slices.Equal(st.oldCfg.Services, st.pc.Services) || !slices.Equal(st.oldCfg.Topics, st.pc.Topics) ||
				st.oldCfg.Kind == "codec" || !sameContentTypes(st.oldCfg, st.pc) {
				changes = append(changes, router.Change{Owner: st.pc.Name, Endpoint: n.endpoint(st.pc, st.oldP, st.conv), Services: st.pc.Services, Topics: st.pc.Topics})
			}
		default:
			st.p = plugin.New(st.pc.Name, st.v)
			if !codecNow {
				changes = append(changes, router.Change{Owner: st.pc.Name, Endpoint: n.endpoint(st.pc, st.p, st.conv), Services: st.pc.Services, Topics: st.pc.Topics})
			}
		}
	}
	var removed []*managed
	for _, name := range slices.Sorted(maps.Keys(ms)) {
		if !keep[name] {
			removed = append(removed, ms[name])
			changes = append(changes, router.Change{Owner: name})
		}
	}
	if err := n.router.Update(changes...); err != nil {
		// The config package already refuses a service with two owners;
		// reaching this is a bug, but the node must stay consistent.
		discard()
		return nil, fmt.Errorf("bind routes: %w", err)
	}

	// Nothing can fail from here on.
	plan := &reloadPlan{}
	plugins := make(map[string]*managed, len(steps))
	for _, st := range steps {
		m := st.old
		if m == nil {
			m = newManaged(st.pc)
			plan.watch = append(plan.watch, m)
		} else if st.oldCfg.Path != st.pc.Path || st.oldCfg.Watch != st.pc.Watch {
			plan.unwatch = append(plan.unwatch, st.oldCfg.Path)
			plan.watch = append(plan.watch, m)
		}
		m.maxModule.Store(int64(min(st.pc.Limits.MaxModule, math.MaxInt64)))
		if st.v != nil && st.oldP != nil {
			st.oldP.Swap(st.v) // the old version drains in the background
			n.counts.swaps.Add(1)
		}
		m.mu.Lock()
		m.cfg = st.pc // unchanged ones may differ in Index only
		switch {
		case st.failed != nil:
			m.err, m.sum = st.failed.Error(), st.sum
			n.logger.Error("plugin still fails to load", "plugin", st.pc.Name, "err", st.failed)
		case st.v != nil:
			m.sum, m.err = st.sum, ""
			if st.p != nil {
				m.p = st.p
			}
			plan.changed++
			n.logger.Info("plugin (re)loaded by config reload", "plugin", st.pc.Name, "version", short(st.v.Hash()))
		}
		m.mu.Unlock()
		plugins[st.pc.Name] = m
	}
	for _, m := range removed {
		m.mu.Lock()
		m.gone = true
		p, path := m.p, m.cfg.Path
		m.mu.Unlock()
		plan.unwatch = append(plan.unwatch, path)
		if p != nil {
			plan.drain = append(plan.drain, p)
		}
		n.logger.Info("plugin removed by config reload", "plugin", m.name)
	}
	n.mu.Lock()
	n.plugins, n.cfg, n.digest = plugins, cfg, digest
	n.gen++
	plan.gen = n.gen
	n.mu.Unlock()
	n.rebuildCodecs()
	return plan, nil
}

// watched reports whether the watcher follows pc's file.
func watched(pc config.Plugin) bool {
	_, builtin := pc.Builtin()
	return pc.Watch && !builtin
}
