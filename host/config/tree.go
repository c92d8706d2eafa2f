package config

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Bounds on what a config file may ask the loader to do. Every step of
// Load (parsing, building values, indexing positions, validating) is linear
// in the number of values, and these bound that number, so that a hostile
// or broken file is refused quickly instead of pinning a core for minutes.
// KEYS.md documents them.
const (
	// MaxFileSize is the largest config file Load reads. Real configs are
	// a few KiB; a plugin config holding a data table may reach hundreds.
	MaxFileSize = 4 << 20
	// MaxValues bounds the values (every scalar, list and mapping) of a
	// config after aliases are expanded: "*a" counts the whole value it
	// names again, as the host will hold and walk one copy per use. This is
	// what refuses a "billion laughs" file.
	MaxValues = 1 << 20
	// MaxDepth bounds how deeply lists and mappings nest.
	MaxDepth = 100
)

// errAbort stops a tree walk after a problem has been reported.
var errAbort = errors.New("config: tree walk aborted")

// treeBuilder turns the parsed YAML node tree into the plain values koanf
// layers (map[string]any, []any, scalars), the values yaml.Unmarshal into
// a map would give. It replaces yaml.Unmarshal because that one checks a
// mapping for duplicate keys by comparing every key with every later one:
// a plugin config of 64k keys took minutes. Duplicates are found by
// source.duplicateKeys with a map instead.
type treeBuilder struct {
	ctx    context.Context
	src    *source
	errs   *Errors
	values int          // values built so far, aliases expanded
	active []*yaml.Node // alias targets being expanded, to refuse cycles
}

// buildTree returns the values of the top-level mapping top, or nil after
// adding the reason to errs (or when ctx ends first).
func buildTree(ctx context.Context, top *yaml.Node, src *source, errs *Errors) map[string]any {
	b := &treeBuilder{ctx: ctx, src: src, errs: errs}
	v, err := b.node(top, 0, true)
	if err != nil {
		if !errors.Is(err, errAbort) {
			errs.Add(&Error{File: src.file, Msg: "loading the config file: " + err.Error(), Err: err})
		}
		return nil
	}
	m, _ := v.(map[string]any)
	return m
}

func (b *treeBuilder) fail(n *yaml.Node, format string, args ...any) error {
	b.errs.Add(&Error{File: b.src.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
	return errAbort
}

// node builds the value of n, at depth levels below the top. flat says
// that n is reached from the top through mappings only: koanf flattens
// such mappings into one key path per leaf, which costs the length of the
// path for every leaf. The schema has no mapping there below depth 1, so
// deeper ones are handed on empty: the decoder reports them as the wrong
// type, from their position, without anything walking their content.
func (b *treeBuilder) node(n *yaml.Node, depth int, flat bool) (any, error) {
	b.src.work++
	b.values++
	if b.values > MaxValues {
		return nil, b.fail(n, "the config holds more than %d values (aliases count the value they name each time they are used)", MaxValues)
	}
	if b.values%4096 == 0 {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
	}
	if depth > MaxDepth {
		return nil, b.fail(n, "lists and mappings nest more than %d levels deep", MaxDepth)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return b.alias(n, depth, flat)
	case yaml.ScalarNode:
		return scalar(n)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := b.node(c, depth+1, false)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		if flat && depth >= 2 {
			return map[string]any{}, nil
		}
		out := make(map[string]any, len(n.Content)/2)
		if err := b.mapping(n, out, depth, flat); err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, b.fail(n, "unexpected YAML node")
}

// alias builds a fresh copy of the value an alias names, as yaml.Unmarshal
// does: an environment override of one use must not change the others.
func (b *treeBuilder) alias(n *yaml.Node, depth int, flat bool) (any, error) {
	if n.Alias == nil {
		return nil, b.fail(n, "alias *%s names no anchor", n.Value)
	}
	for _, a := range b.active {
		if a == n.Alias {
			return nil, b.fail(n, "alias *%s is used inside the value it names", n.Value)
		}
	}
	b.active = append(b.active, n.Alias)
	v, err := b.node(n.Alias, depth, flat)
	b.active = b.active[:len(b.active)-1]
	b.values-- // the alias itself is not a value; what it names is
	return v, err
}

// mapping fills out with the entries of n. Explicit keys win over merged
// ones ("<<"), and among merged mappings the first listed wins, which is
// what yaml.Unmarshal does.
func (b *treeBuilder) mapping(n *yaml.Node, out map[string]any, depth int, flat bool) error {
	var merge *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			merge = v // as in yaml.Unmarshal, the last "<<" is the one used
			continue
		}
		key, err := b.key(k)
		if err != nil {
			return err
		}
		if depth == 0 && !slices.Contains(topKeys, key) {
			// Reported as an unknown key; its value is never looked at,
			// and its key, which may be long, must not prefix the paths
			// of everything below it.
			out[key] = nil
			continue
		}
		val, err := b.node(v, depth+1, flat)
		if err != nil {
			return err
		}
		out[key] = val
	}
	if merge == nil {
		return nil
	}
	var from []*yaml.Node
	switch m := resolve(merge); m.Kind {
	case yaml.MappingNode:
		from = []*yaml.Node{merge}
	case yaml.SequenceNode:
		from = m.Content
	default:
		return b.fail(merge, "a merge (<<) needs a mapping or a list of mappings")
	}
	for _, f := range from {
		if resolve(f).Kind != yaml.MappingNode {
			return b.fail(f, "a merge (<<) needs a mapping or a list of mappings")
		}
		v, err := b.node(f, depth, flat)
		if err != nil {
			return err
		}
		for k, e := range v.(map[string]any) {
			if _, set := out[k]; !set {
				out[k] = e
			}
		}
	}
	return nil
}

// key returns a mapping key as koanf spells it: strings as they are, other
// scalars (1, true, null) as fmt.Sprint prints their decoded value.
func (b *treeBuilder) key(k *yaml.Node) (string, error) {
	b.src.work++
	r := resolve(k)
	if r.Kind != yaml.ScalarNode {
		return "", b.fail(k, "a mapping key must be a plain value, not a list or mapping")
	}
	if r.ShortTag() == "!!str" {
		return r.Value, nil
	}
	v, err := scalar(r)
	if err != nil {
		return "", b.fail(k, "invalid key: %v", err)
	}
	return fmt.Sprint(v), nil
}

// scalar decodes one scalar the way yaml.Unmarshal into an interface does
// (int, float64, bool, nil or string), leaving plain strings, the common
// case, to a fast path.
func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!str":
		return n.Value, nil
	case "!!null":
		return nil, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// isMerge reports a merge key, with yaml.Unmarshal's rule: "<<" untagged or
// tagged !!merge.
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}
