package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/plugin"
)

// Reload re-reads the config and applies it: new plugins start, removed
// ones drain and stop, changed ones load a new version and swap. The new
// config is checked and every new version built before anything changes,
// so a broken config is refused whole and the running one keeps serving.
// Node-level keys (node.name, control, cache_dir, log, data_dir, listen,
// identity, trust, limits) cannot change without a restart; a reload that
// changes them is refused and says so. Changed peers are applied: new ones
// are dialled, removed ones are no longer redialled.
func (n *Node) Reload(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.reload(ctx)
	if err != nil {
		n.logger.Error("config reload refused; the running config keeps serving", "err", err)
		return configFault(err)
	}
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
	if cfg.Digest() == n.cfg.Digest() {
		n.logger.Info("config reload: nothing changed")
		return nil
	}
	var fixed []string
	if cfg.Node != n.cfg.Node {
		fixed = append(fixed, "node.name")
	}
	if cfg.Control != n.cfg.Control || !slices.Equal(cfg.ControlAllowHosts, n.cfg.ControlAllowHosts) {
		fixed = append(fixed, "control")
	}
	if cfg.CacheDir != n.cfg.CacheDir {
		fixed = append(fixed, "cache_dir")
	}
	if cfg.Log != n.cfg.Log {
		fixed = append(fixed, "log")
	}
	if cfg.DataDir != n.cfg.DataDir {
		fixed = append(fixed, "data_dir")
	}
	if cfg.Listen != n.cfg.Listen {
		fixed = append(fixed, "listen")
	}
	if cfg.Identity != n.cfg.Identity {
		fixed = append(fixed, "identity")
	}
	if cfg.Trust.Secret != n.cfg.Trust.Secret || cfg.Trust.CA != n.cfg.Trust.CA || !slices.Equal(cfg.Trust.Nodes, n.cfg.Trust.Nodes) || cfg.Trust.AllowOpen != n.cfg.Trust.AllowOpen {
		fixed = append(fixed, "trust")
	}
	if cfg.Mesh != n.cfg.Mesh {
		fixed = append(fixed, "limits")
	}
	if cfg.Discovery != n.cfg.Discovery {
		fixed = append(fixed, "discovery")
	}
	if len(fixed) > 0 {
		return &control.ConfigError{Err: fmt.Errorf("config reload not supported for %s: restart the node to apply", strings.Join(fixed, ", "))}
	}

	// Build everything new first; nothing is swapped until all of it loaded.
	type change struct {
		pc  config.Plugin
		old *managed
		new *managed
	}
	var changes []change
	fail := func(err error) error {
		for _, c := range changes {
			if c.new != nil {
				c.new.p.Close()
			}
		}
		return err
	}
	errs := &config.Errors{}
	for _, pc := range cfg.Plugins {
		old := n.plugins[pc.Name]
		wasm, err := readPlugin(pc)
		if err == nil && old != nil && samePlugin(old.cfg, pc) && old.sum == sha256.Sum256(wasm) {
			continue
		}
		if err != nil {
			errs.Add(cfg.At(fmt.Sprintf("plugins[%d].path", pc.Index), "plugin %q: %v", pc.Name, err))
			continue
		}
		v, err := n.engine.Load(ctx, spec(pc, wasm), n.router)
		if err != nil {
			errs.Add(cfg.At(fmt.Sprintf("plugins[%d].path", pc.Index), "plugin %q: %v", pc.Name, err))
			continue
		}
		m := &managed{cfg: pc, p: plugin.New(pc.Name, v), sum: sha256.Sum256(wasm)}
		changes = append(changes, change{pc: pc, old: old, new: m})
	}
	if len(errs.List) > 0 {
		return fail(errs)
	}
	// Routes: drop removed plugins first so a service can move between
	// plugins in one reload, then bind the changed and new ones.
	keep := map[string]bool{}
	for _, pc := range cfg.Plugins {
		keep[pc.Name] = true
	}
	var removed []*managed
	for name, m := range n.plugins {
		if !keep[name] {
			n.router.Remove(name)
			n.watcher.Remove(m.cfg.Path)
			delete(n.plugins, name)
			removed = append(removed, m)
		}
	}
	for _, c := range changes {
		if c.old == nil {
			continue
		}
		// Unbind the old routes while the new set is bound below.
		n.router.Remove(c.pc.Name)
	}
	for _, c := range changes {
		if err := n.router.SetRoutes(c.pc.Name, c.new.p, c.pc.Services, c.pc.Topics); err != nil {
			// The config package already refuses conflicting services;
			// reaching this is a bug, but the node must stay consistent.
			return fail(fmt.Errorf("bind routes of %q: %w", c.pc.Name, err))
		}
	}
	for _, c := range changes {
		if c.old != nil {
			n.watcher.Remove(c.old.cfg.Path)
			go c.old.p.Close() // drain in the background
		}
		n.plugins[c.pc.Name] = c.new
		n.watch(c.new)
		n.logger.Info("plugin (re)loaded by config reload", "plugin", c.pc.Name, "version", short(c.new.p.Current().Hash()))
	}
	for _, m := range removed {
		go m.p.Close()
		n.logger.Info("plugin removed by config reload", "plugin", m.cfg.Name)
	}
	// Unchanged plugins keep their config (which may differ only in Index).
	for _, pc := range cfg.Plugins {
		if m := n.plugins[pc.Name]; m != nil {
			m.cfg.Index = pc.Index
		}
	}
	if !slices.Equal(cfg.Peers, n.cfg.Peers) {
		n.mesh.SetPeers(peersOf(cfg.Peers))
	}
	n.cfg = cfg
	n.logger.Info("config reloaded", "changed", len(changes), "removed", len(removed))
	return nil
}

func samePlugin(a, b config.Plugin) bool {
	a.Index, b.Index = 0, 0
	return a.Name == b.Name && a.Path == b.Path && a.Kind == b.Kind &&
		slices.Equal(a.Services, b.Services) && slices.Equal(a.Topics, b.Topics) &&
		a.Instances == b.Instances && a.Queue == b.Queue && a.Watch == b.Watch &&
		a.Limits == b.Limits && slices.Equal(a.Grants, b.Grants) &&
		fmt.Sprint(a.Config) == fmt.Sprint(b.Config)
}
