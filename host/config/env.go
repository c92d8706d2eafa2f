package config

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable that overrides a
// config key: PYCOMMS_ + the key path upper-cased, "__" between levels.
const EnvPrefix = "PYCOMMS_"

// topMappings are the top-level keys that hold a mapping of plain values,
// with the keys of each: every top-level key with keys under it, except
// control (also a scalar) and the plugin list.
var topMappings = func() map[string][]string {
	out := map[string][]string{}
	for _, k := range topKeys {
		if sub := childKeys(k); len(sub) > 0 && k != "control" && k != "plugins" {
			out[k] = sub
		}
	}
	return out
}()

// listKeys are the keys, outside plugins[i], whose value is a list of
// strings; pluginListKeys those of a plugin.
var listKeys, pluginListKeys = func() (top, plugin []string) {
	for _, p := range keyPaths(TypeStrings) {
		if rest, ok := strings.CutPrefix(p, "plugins[]."); ok {
			plugin = append(plugin, rest)
		} else {
			top = append(top, p)
		}
	}
	return top, plugin
}()

// envOverride is one PYCOMMS_* variable that names a known key.
type envOverride struct {
	name, value string
	key         string   // key path for messages: "plugins[0].limits.memory"
	koanfKey    string   // dotted koanf path of a key outside the plugin list: "log.level"
	plugin      int      // plugin index for keys under plugins[i]; -1 otherwise
	rest        []string // path inside plugins[i]: ["limits", "memory"]
	// parsed is the value of a list or mapping given whole in YAML flow
	// syntax ("[a, b]", "{k: v}"); nil for a plain string value.
	parsed any
}

// depth is the number of levels of the key an override sets, so that a
// whole mapping is applied before the overrides of its keys.
func (ov envOverride) depth() int {
	if ov.plugin >= 0 {
		return 2 + len(ov.rest)
	}
	return strings.Count(ov.koanfKey, ".") + 1
}

// parseEnv picks the PYCOMMS_* entries out of env (KEY=VALUE strings, as
// os.Environ returns them) and maps each to a key. A variable that names no
// key is an error rather than ignored: it is almost always a typo that
// would otherwise silently leave a setting at its old value.
func parseEnv(env []string) ([]envOverride, []*Error) {
	// As in a shell, the last assignment of a name wins.
	values := map[string]string{}
	var names []string
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if _, dup := values[name]; !dup {
			names = append(names, name)
		}
		values[name] = value
	}
	var out []envOverride
	var errs []*Error
	for _, name := range names {
		ov, err := classifyEnv(name, values[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, ov)
	}
	return out, errs
}

func classifyEnv(name, value string) (envOverride, *Error) {
	fail := func(key, format string, args ...any) (envOverride, *Error) {
		return envOverride{}, &Error{Env: name, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	segs := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__")
	if slices.Contains(segs, "") {
		return fail("", "malformed name: expected %sKEY with \"__\" between levels, e.g. PYCOMMS_LOG__LEVEL", EnvPrefix)
	}
	// unknown reports segs[i] as an unknown key, suggesting the variable
	// the user probably meant.
	unknown := func(i int, known []string) (envOverride, *Error) {
		key := envKeyPath(segs[:i+1])
		if s, ok := suggest(segs[i], known); ok {
			fixed := slices.Clone(segs)
			fixed[i] = s
			return fail(key, "unknown key (did you mean %s?)", envName(fixed))
		}
		return fail(key, "unknown key (known keys: %s)", strings.Join(known, ", "))
	}
	noSubKeys := func(n int) (envOverride, *Error) {
		return fail(envKeyPath(segs[:n+1]), "unknown key (%s has no sub-keys)", envKeyPath(segs[:n]))
	}
	// whole parses the value of a list or mapping key given in YAML flow
	// syntax, which sets the key whole.
	whole := func(ov envOverride, open byte) (envOverride, *Error) {
		v, err := flowValue(name, ov.key, value, open)
		if err != nil {
			return envOverride{}, err
		}
		ov.parsed = v
		return ov, nil
	}
	ov := envOverride{name: name, value: value, plugin: -1}
	switch segs[0] {
	case "control":
		// A bare address is the shorthand of control.listen; see
		// controlShorthand.
		switch {
		case len(segs) == 1 && isFlow(value, '{'):
			ov.koanfKey, ov.key = "control", "control"
			return whole(ov, '{')
		case len(segs) == 2 && !slices.Contains(controlKeys, segs[1]):
			return unknown(1, controlKeys)
		case len(segs) > 2:
			return noSubKeys(2)
		}
	case "plugins":
		if len(segs) == 1 {
			if isFlow(value, '[') {
				ov.koanfKey, ov.key = "plugins", "plugins"
				return whole(ov, '[')
			}
			return fail("plugins", "the plugin list is set whole in YAML flow syntax, e.g. PYCOMMS_PLUGINS='[{name: echo, path: \"builtin:echo\", services: [echo]}]'; or override keys of a listed plugin by index, e.g. PYCOMMS_PLUGINS__0__INSTANCES=4")
		}
		idx, err := strconv.Atoi(segs[1])
		if err != nil || strings.ContainsAny(segs[1], "+-") {
			return fail("plugins."+segs[1], "%q is not a list index: plugins are selected by position from 0, e.g. PYCOMMS_PLUGINS__0__INSTANCES", segs[1])
		}
		ov.plugin = idx
		if len(segs) == 2 {
			return fail(indexKey("plugins", idx), "a plugin cannot be set as a whole; set its keys, e.g. PYCOMMS_PLUGINS__%d__INSTANCES", idx)
		}
		if !slices.Contains(pluginKeys, segs[2]) {
			return unknown(2, pluginKeys)
		}
		switch segs[2] {
		case "limits":
			if len(segs) == 3 {
				if isFlow(value, '{') {
					ov.rest, ov.key = segs[2:], envKeyPath(segs)
					return whole(ov, '{')
				}
				return fail(envKeyPath(segs), "is a mapping: set its keys (%s), or all of it in YAML flow syntax: %s='{memory: 32MiB}'", envNames(segs[:3], limitsKeys), name)
			}
			if !slices.Contains(limitsKeys, segs[3]) {
				return unknown(3, limitsKeys)
			}
			if len(segs) > 4 {
				return noSubKeys(4)
			}
		case "config":
			if len(segs) == 3 {
				if isFlow(value, '{') {
					ov.rest, ov.key = segs[2:], envKeyPath(segs)
					return whole(ov, '{')
				}
				return fail(envKeyPath(segs), "is a mapping: set its keys, e.g. PYCOMMS_PLUGINS__%d__CONFIG__PREFIX, or all of it in YAML flow syntax: %s='{prefix: \">> \"}'", idx, name)
			}
		default:
			if len(segs) > 3 {
				return noSubKeys(3)
			}
		}
		ov.rest = segs[2:]
		ov.key = envKeyPath(segs)
		if len(ov.rest) == 1 && slices.Contains(pluginListKeys, ov.rest[0]) && isFlow(value, '[') {
			return whole(ov, '[')
		}
		return ov, nil
	default:
		known, isMapping := topMappings[segs[0]]
		switch {
		case isMapping:
			if len(segs) == 1 {
				if isFlow(value, '{') {
					ov.koanfKey, ov.key = segs[0], segs[0]
					return whole(ov, '{')
				}
				return fail(segs[0], "is a mapping: set its keys (%s), or all of it in YAML flow syntax: %s='{%s: ...}'", envNames(segs[:1], known), name, known[0])
			}
			if !slices.Contains(known, segs[1]) {
				return unknown(1, known)
			}
			if len(segs) > 2 {
				return noSubKeys(2)
			}
		case slices.Contains(topKeys, segs[0]):
			// A plain key (cache_dir, data_dir) or a list such as peers,
			// set whole: comma-separated, as plugins[i].grants is, or in
			// YAML flow syntax.
			if len(segs) > 1 {
				return noSubKeys(1)
			}
		default:
			return unknown(0, topKeys)
		}
	}
	ov.koanfKey = strings.Join(segs, ".")
	ov.key = ov.koanfKey
	if slices.Contains(listKeys, ov.koanfKey) && isFlow(value, '[') {
		return whole(ov, '[')
	}
	return ov, nil
}

// isFlow reports whether the value of a variable is a YAML flow collection
// opened by open ('[' or '{') and closed by its pair. A list value in the
// comma-separated form never is: a peer ends with its port, even
// "[::1]:7400", and node ids, grants and subjects hold no brackets.
func isFlow(value string, open byte) bool {
	v := strings.TrimSpace(value)
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	return len(v) >= 2 && v[0] == open && v[len(v)-1] == closer
}

// flowValue parses the YAML flow value of variable name, which sets key
// (a list when open is '[', a mapping when '{') whole. It is held to the
// rules of the config file: duplicate keys are errors, and aliases count
// against MaxValues.
func flowValue(name, key, value string, open byte) (any, *Error) {
	fail := func(format string, args ...any) (any, *Error) {
		return nil, &Error{Env: name, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	want, kind := yaml.SequenceNode, "a list"
	if open == '{' {
		want, kind = yaml.MappingNode, "a mapping"
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
		return fail("invalid YAML flow value: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) != 1 || resolve(doc.Content[0]).Kind != want {
		return fail("expected %s in YAML flow syntax", kind)
	}
	src, errs := newSource(""), &Errors{}
	src.duplicateKeys(doc.Content[0], nil, errs)
	var v any
	if len(errs.List) == 0 {
		// Depth 1: the top-level key check of the file does not apply.
		b := &treeBuilder{ctx: context.Background(), src: src, errs: errs}
		v, _ = b.node(doc.Content[0], 1, false)
	}
	if len(errs.List) > 0 {
		msgs := make([]string, len(errs.List))
		for i, e := range errs.List {
			msgs[i] = e.Msg
			if e.Key != "" {
				msgs[i] = e.Key + ": " + e.Msg
			}
		}
		return fail("in the YAML flow value: %s", strings.Join(msgs, "; "))
	}
	return v, nil
}

// envKeyPath turns lower-cased name segments into a key path for messages:
// ["plugins", "0", "limits"] is "plugins[0].limits".
func envKeyPath(segs []string) string {
	var key string
	for i, s := range segs {
		if i == 1 && segs[0] == "plugins" {
			if _, err := strconv.Atoi(s); err == nil {
				key += "[" + s + "]"
				continue
			}
		}
		key = joinKey(key, s)
	}
	return key
}

// envName is the variable for a key path given as segments.
func envName(segs []string) string {
	return EnvPrefix + strings.ToUpper(strings.Join(segs, "__"))
}

// envNames lists the variables of every key of a mapping, for hints.
func envNames(segs []string, keys []string) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = envName(append(slices.Clone(segs), k))
	}
	return strings.Join(names, ", ")
}

// applyPluginEnv writes an override into the plugin list decoded from the
// file. Lists are leaves to koanf, so it cannot merge into one element; the
// element's map is edited here instead. It returns the key path it set
// (with the spelling of an existing config key) or an error.
func applyPluginEnv(list []any, ov envOverride) (string, *Error) {
	if ov.plugin >= len(list) {
		return "", &Error{Env: ov.name, Key: ov.key,
			Msg: fmt.Sprintf("there is no plugins[%d]: the config file lists %d plugin(s)", ov.plugin, len(list))}
	}
	m, ok := list[ov.plugin].(map[string]any)
	if !ok {
		// The element itself is not a mapping: the decoder reports that
		// at its position in the file, which is the problem to fix first.
		return "", nil
	}
	key := indexKey("plugins", ov.plugin)
	inConfig := ov.rest[0] == "config"
	for i, seg := range ov.rest {
		k := seg
		if inConfig && i > 0 {
			k = matchKey(m, seg)
		}
		key = joinKey(key, k)
		if i == len(ov.rest)-1 {
			if ov.parsed != nil {
				m[k] = ov.parsed
			} else {
				m[k] = ov.value
			}
			break
		}
		switch child := m[k].(type) {
		case map[string]any:
			m = child
		case nil:
			next := map[string]any{}
			m[k] = next
			m = next
		default:
			if i == 0 {
				return "", nil // limits or config has the wrong type in the file: reported there
			}
			return "", &Error{Env: ov.name, Key: ov.key,
				Msg: fmt.Sprintf("cannot set a key inside %s: the config file gives it a value that is not a mapping", key)}
		}
	}
	return key, nil
}

// matchKey finds the key of m that equals want ignoring case, since
// variable names are upper-cased and plugin config keys need not be
// lower-case; a new key is added lower-cased.
func matchKey(m map[string]any, want string) string {
	if _, ok := m[want]; ok {
		return want
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic when two keys differ only in case
	for _, k := range keys {
		if strings.EqualFold(k, want) {
			return k
		}
	}
	return want
}

// ControlFromEnv returns the control API address that the environment
// gives client commands (call, pub, sub, ...), read with getenv:
// PYCOMMS_CONTROL__LISTEN, else the listen key of PYCOMMS_CONTROL in YAML
// flow syntax, else PYCOMMS_CONTROL itself. It returns "" when none is set,
// and when PYCOMMS_CONTROL is a mapping without listen.
func ControlFromEnv(getenv func(string) string) string {
	if v := getenv(EnvPrefix + "CONTROL__LISTEN"); v != "" {
		return v
	}
	v := getenv(EnvPrefix + "CONTROL")
	if !isFlow(v, '{') {
		return v
	}
	var m struct{ Listen string }
	if err := yaml.Unmarshal([]byte(v), &m); err != nil {
		return ""
	}
	return m.Listen
}
