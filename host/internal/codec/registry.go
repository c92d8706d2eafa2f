// Package codec converts payloads between content types and encodings for
// the plugins that declare what they accept (abi/SPEC.md section 14.5).
//
// A Registry maps each declared pair of the codec plugins loaded on this
// host to the codec that converts it; it is immutable, and the node swaps
// a new one into a Table on every load, reload and removal of a codec (the
// router's snapshot pattern), so a conversion never takes a lock. An
// Endpoint wraps the router endpoint of a plugin that declares accepts: it
// converts what is delivered to it and the reply it gives. A plugin that
// declares nothing gets no Endpoint and pays nothing.
package codec

import (
	"context"
	"errors"
	"log/slog"
	"mime"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/abi"
)

// Converter converts data between the two names of a pair it declares
// (plugin.Plugin.Convert).
type Converter interface {
	Convert(ctx context.Context, from, to string, data []byte) ([]byte, error)
}

// Codec is one loaded codec plugin: its name, what converts, and its
// declared pairs.
type Codec struct {
	Name  string
	Conv  Converter
	Pairs []abi.CodecPair
}

type key struct {
	kind     abi.CodecPairKind
	from, to string
}

// Registry is an immutable map of pair to codec.
type Registry struct {
	by map[key]*Codec
}

// NewRegistry builds the registry of codecs, in the order given: when two
// codecs declare the same pair, the first one converts it and the other
// is logged as shadowed.
func NewRegistry(codecs []Codec, logger *slog.Logger) *Registry {
	r := &Registry{by: map[key]*Codec{}}
	for i := range codecs {
		c := &codecs[i]
		for _, p := range c.Pairs {
			k := key{p.Kind, p.From, p.To}
			if o, dup := r.by[k]; dup {
				if logger != nil {
					logger.Warn("codec pair declared twice: the first codec converts it", "pair", p.String(), "codec", o.Name, "shadowed", c.Name)
				}
				continue
			}
			r.by[k] = c
		}
	}
	return r
}

// Type returns the codec that converts media type from to to.
func (r *Registry) Type(from, to string) (*Codec, bool) {
	if r == nil {
		return nil, false
	}
	c, ok := r.by[key{abi.CodecType, from, to}]
	return c, ok
}

// Decoder returns the codec that decodes content coding enc.
func (r *Registry) Decoder(enc string) (*Codec, bool) {
	if r == nil {
		return nil, false
	}
	c, ok := r.by[key{abi.CodecEncoding, enc, abi.Identity}]
	return c, ok
}

// Encoder returns the codec that encodes into content coding enc.
func (r *Registry) Encoder(enc string) (*Codec, bool) {
	if r == nil {
		return nil, false
	}
	c, ok := r.by[key{abi.CodecEncoding, abi.Identity, enc}]
	return c, ok
}

// Pairs lists every pair the registry converts, sorted, for errors.
func (r *Registry) Pairs() []string {
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.by))
	for k := range r.by {
		out = append(out, string(k.kind)+" "+k.from+" "+k.to)
	}
	slices.Sort(out)
	return out
}

// Table holds the current Registry.
type Table struct{ p atomic.Pointer[Registry] }

// Load returns the current registry (nil before the first Store: nothing
// converts).
func (t *Table) Load() *Registry { return t.p.Load() }

// Store makes r current.
func (t *Table) Store(r *Registry) { t.p.Store(r) }

// MediaType returns the media type of a content-type header value,
// lower-case, without parameters; "" for "". ok is false when the value
// is no media type.
func MediaType(v string) (string, bool) {
	if strings.TrimSpace(v) == "" {
		return "", true
	}
	// Parameters are ignored, so one that does not parse is no reason to
	// refuse the type (mime.ErrInvalidMediaParameter still returns it).
	t, _, err := mime.ParseMediaType(v)
	if (err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter)) || abi.CheckMediaType(t) != nil {
		return "", false
	}
	return t, true
}

// List splits an accept or accept-encoding header value into its items,
// in order, lower-case, parameters (q included) dropped: the order is the
// preference.
func List(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		t, _, _ := strings.Cut(item, ";")
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}
