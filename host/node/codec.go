package node

import (
	"context"
	"maps"
	"slices"

	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/codec"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// Codec plugins (abi/SPEC.md section 14) are managed plugins without
// routes: their pairs go into the codec registry, which the node rebuilds
// whenever a codec is loaded, reloaded or removed, and which the
// endpoints of plugins that declare accepts read for every conversion.

// loadVersion loads a plugin version of pc's kind (not a transport).
func (n *Node) loadVersion(ctx context.Context, pc config.Plugin, wasm []byte) (*plugin.Version, error) {
	if pc.Kind == "codec" {
		return n.engine.LoadCodec(ctx, spec(pc, wasm))
	}
	return n.engine.Load(ctx, spec(pc, wasm), n.router)
}

// endpoint is what the router gets for the endpoint ep of plugin pc (a
// handler or a transport): ep itself, or for a plugin that declares
// accepts, ep wrapped to convert what it gets and gives.
func (n *Node) endpoint(pc config.Plugin, ep router.Endpoint, stats *codec.Stats) router.Endpoint {
	if pc.Accepts == nil {
		return ep
	}
	return codec.NewEndpoint(ep, pc.Name, pc.Accepts, pc.Encodings, &n.codecs, stats, n.logger)
}

// sameContentTypes reports whether a reload leaves a plugin's endpoint
// as it is.
func sameContentTypes(a, b config.Plugin) bool {
	return (a.Accepts == nil) == (b.Accepts == nil) && slices.Equal(a.Accepts, b.Accepts) && slices.Equal(a.Encodings, b.Encodings)
}

// rebuildCodecs makes a new registry of the codecs serving now, in name
// order (the first name converts a pair two codecs declare).
func (n *Node) rebuildCodecs() {
	n.codecMu.Lock()
	defer n.codecMu.Unlock()
	n.mu.Lock()
	ms := slices.Collect(maps.Values(n.plugins))
	n.mu.Unlock()
	slices.SortFunc(ms, func(a, b *managed) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	var cs []codec.Codec
	for _, m := range ms {
		cfg, p, _, gone := m.state()
		if cfg.Kind != "codec" || p == nil || gone {
			continue
		}
		cs = append(cs, codec.Codec{Name: m.name, Conv: p, Pairs: p.Current().Pairs()})
	}
	n.codecs.Store(codec.NewRegistry(cs, n.logger))
}

// codecInfo fills what /v1/plugins shows of a codec, or of a plugin that
// declares accepts.
func codecInfo(info *control.PluginInfo, cfg config.Plugin, p *plugin.Plugin, stats *codec.Stats) {
	if cfg.Kind == "codec" && p != nil {
		st := p.Stats()
		ci := &control.CodecInfo{Conversions: st.Calls, Failures: map[string]uint64{}}
		for _, pr := range p.Current().Pairs() {
			ci.Pairs = append(ci.Pairs, pr.String())
		}
		for s, c := range st.Failures {
			ci.Failures[s.String()] = c
		}
		info.Codec = ci
		return
	}
	acceptsInfo(info, cfg, stats)
}

// acceptsInfo fills what /v1/plugins shows of a plugin that declares
// accepts.
func acceptsInfo(info *control.PluginInfo, cfg config.Plugin, stats *codec.Stats) {
	if cfg.Accepts != nil {
		info.Accepts, info.Encodings = slices.Clone(cfg.Accepts), slices.Clone(cfg.Encodings)
		info.Converted, info.Dropped = stats.Converted.Load(), stats.Dropped.Load()
	}
}

// ConvertTo implements control.Converter: it converts an event for a
// subscriber that asked for the types of accept (codec.ConvertTo).
func (n *Node) ConvertTo(ctx context.Context, m *message.Message, accept string) (*message.Message, error) {
	return codec.ConvertTo(ctx, n.codecs.Load(), m, accept)
}

var _ control.Converter = (*Node)(nil)
