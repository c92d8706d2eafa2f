package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxIndexedNodes bounds the position index. Aliases can make a small file
// describe a huge tree; past this many nodes, positions fall back to the
// nearest indexed ancestor instead of using unbounded memory.
const maxIndexedNodes = 100_000

// maxIndexedBytes bounds the total length of the key paths in the position
// index, with the same fallback.
const maxIndexedBytes = 8 << 20

// position is where one key path appears in the config file.
type position struct {
	keyLine, keyCol int        // the mapping key; 0 for list elements
	line, col       int        // the value
	node            *yaml.Node // the value, aliases resolved
}

// source remembers where every value of a configuration came from: koanf
// merges layers into plain maps and forgets positions, so this is looked
// up by key path whenever a value needs an error message.
type source struct {
	file string              // config file as given to Load
	pos  map[string]position // key path -> position in the file
	env  map[string]string   // key path -> environment variable that set it
	// work counts the steps of the walks over the file's nodes (nodes
	// visited, bytes of key paths built), for the test that keeps loading
	// linear in the size of the file.
	work int
}

func newSource(file string) *source {
	return &source{file: file, pos: map[string]position{}, env: map[string]string{}}
}

// errAt returns an *Error for key. A value set from the environment names
// the variable; otherwise the error points at the value in the file (or at
// the key itself when atKey, for unknown and duplicate keys), falling back
// to the nearest ancestor that the file has, e.g. the plugin a missing
// "path" belongs to.
func (s *source) errAt(key string, atKey bool, msg string) *Error {
	e := &Error{Key: key, Msg: msg}
	if name, ok := s.envFor(key); ok {
		e.Env = name
		return e
	}
	e.File = s.file
	for k := key; k != ""; k = parentKey(k) {
		if p, ok := s.pos[k]; ok {
			e.Line, e.Col = p.line, p.col
			if atKey && k == key && p.keyLine > 0 {
				e.Line, e.Col = p.keyLine, p.keyCol
			}
			break
		}
	}
	return e
}

// envFor reports the environment variable that set key. Environment values
// replace whole leaves (a scalar or a whole list), so a match on an
// ancestor also counts: plugins[0].services[1] came from
// PYCOMMS_PLUGINS__0__SERVICES.
func (s *source) envFor(key string) (string, bool) {
	for k := key; k != ""; k = parentKey(k) {
		if name, ok := s.env[k]; ok {
			return name, true
		}
	}
	return "", false
}

// describe renders the value at key for an error message the way the user
// wrote it: quoted text for strings, the literal for other scalars ("4.5",
// "true"), and "a list" or "a mapping" for collections.
func (s *source) describe(key string, v any) string {
	if _, fromEnv := s.envFor(key); !fromEnv {
		if p, ok := s.pos[key]; ok && p.node != nil {
			return s.describeNode(p.node)
		}
	}
	switch v := v.(type) {
	case string:
		return quote(v)
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return fmt.Sprint(v)
}

// describeNode renders a node as describe does.
func (s *source) describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return quote(n.Value)
		case "!!null":
			return "null"
		}
		return n.Value
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "an alias"
}

// quote quotes s for a message, shortening very long values.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max-3]) + "..."
	}
	return strconv.Quote(s)
}

// parentKey strips the last step of a key path: "plugins[0].limits" from
// "plugins[0].limits.memory", "plugins[0]" from "plugins[0].name",
// "plugins" from "plugins[0]", and "" from a top-level key.
func parentKey(k string) string {
	if i := strings.LastIndexAny(k, ".["); i >= 0 {
		return k[:i]
	}
	return ""
}

func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexKey(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// indexBudget bounds the work of index. Key paths are built whole for
// every node, so their total length, not only their number, is bounded:
// long keys over a wide subtree would otherwise repeat in every path below.
type indexBudget struct {
	nodes  int          // nodes still to index
	bytes  int          // bytes of key paths still to build
	active []*yaml.Node // alias targets being indexed, to stop at cycles
}

// index records the position of every key path of the top-level mapping,
// within maxIndexedNodes and maxIndexedBytes.
func (s *source) index(top *yaml.Node) {
	b := &indexBudget{nodes: maxIndexedNodes, bytes: maxIndexedBytes}
	if top != nil && top.Kind == yaml.MappingNode {
		s.indexMapping(top, "", b)
	}
}

func (s *source) indexNode(n, keyNode *yaml.Node, path string, b *indexBudget) {
	s.work += 1 + len(path)
	if b.nodes <= 0 || b.bytes < len(path) {
		return
	}
	b.nodes--
	b.bytes -= len(path)
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		if slices.Contains(b.active, n.Alias) {
			return // an alias inside the value it names: no end to index
		}
		b.active = append(b.active, n.Alias)
		defer func() { b.active = b.active[:len(b.active)-1] }()
	}
	v := resolve(n)
	p := position{line: n.Line, col: n.Column, node: v}
	if keyNode != nil {
		p.keyLine, p.keyCol = keyNode.Line, keyNode.Column
	}
	s.pos[path] = p
	switch v.Kind {
	case yaml.MappingNode:
		s.indexMapping(v, path, b)
	case yaml.SequenceNode:
		for i, c := range v.Content {
			if b.nodes <= 0 || b.bytes < len(path)+12 {
				return // the budget is spent: build no more paths
			}
			s.indexNode(c, nil, indexKey(path, i), b)
		}
	}
}

// indexMapping indexes the entries of m under path. Merged mappings ("<<")
// are indexed first so that explicit keys overwrite them, which is also how
// the decoder resolves them.
func (s *source) indexMapping(m *yaml.Node, path string, b *indexBudget) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !isMergeKey(m.Content[i]) {
			continue
		}
		merge := m.Content[i+1]
		if merge.Kind == yaml.AliasNode && merge.Alias != nil {
			if slices.Contains(b.active, merge.Alias) {
				continue
			}
			b.active = append(b.active, merge.Alias)
		}
		switch v := resolve(merge); v.Kind {
		case yaml.MappingNode:
			s.indexMapping(v, path, b)
		case yaml.SequenceNode:
			// Earlier mappings of a merge list take precedence.
			for j := len(v.Content) - 1; j >= 0; j-- {
				c := v.Content[j]
				if c.Kind == yaml.AliasNode && slices.Contains(b.active, c.Alias) {
					continue
				}
				if e := resolve(c); e.Kind == yaml.MappingNode {
					b.active = append(b.active, e)
					s.indexMapping(e, path, b)
					b.active = b.active[:len(b.active)-1]
				}
			}
		}
		if merge.Kind == yaml.AliasNode && merge.Alias != nil {
			b.active = b.active[:len(b.active)-1]
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if b.nodes <= 0 {
			return
		}
		k := m.Content[i]
		if isMergeKey(k) || b.bytes < len(path)+1+len(k.Value) {
			continue
		}
		s.indexNode(m.Content[i+1], k, joinKey(path, k.Value), b)
	}
}

// duplicateKeys reports keys that appear twice in one mapping. The YAML
// decoder refuses such files too, but only with a line number and without
// the key path; this walk gives both. It does not follow aliases, so it
// visits every node once, and it spells a key path out only for a
// duplicate, so that long keys above a wide subtree cost nothing.
func (s *source) duplicateKeys(n *yaml.Node, path *keyPath, errs *Errors) {
	s.work++
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			s.duplicateKeys(c, path, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			s.duplicateKeys(c, &keyPath{parent: path, index: i}, errs)
		}
	case yaml.MappingNode:
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isMergeKey(k) {
				s.duplicateKeys(v, path, errs)
				continue
			}
			key := &keyPath{parent: path, key: k.Value, isKey: true}
			if k.Kind == yaml.ScalarNode {
				if first, ok := seen[k.Value]; ok {
					errs.Add(&Error{File: s.file, Line: k.Line, Col: k.Column, Key: key.String(),
						Msg: fmt.Sprintf("duplicate key (first defined at line %d)", first.Line)})
				} else {
					seen[k.Value] = k
				}
			}
			s.duplicateKeys(v, key, errs)
		}
	}
}

// keyPath is a key path kept as a chain of steps, spelled out by String
// only when needed.
type keyPath struct {
	parent *keyPath
	key    string // the mapping key, when isKey
	index  int    // the list index, otherwise
	isKey  bool
}

// String spells the path as joinKey and indexKey do: "plugins[0].name".
func (p *keyPath) String() string {
	if p == nil {
		return ""
	}
	if p.isKey {
		return joinKey(p.parent.String(), p.key)
	}
	return indexKey(p.parent.String(), p.index)
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// resolve follows aliases to the node they name. The decoder has already
// refused alias cycles by the time positions are indexed; the bound is a
// second line of defence.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}
