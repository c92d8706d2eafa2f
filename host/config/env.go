package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// EnvPrefix starts the name of every environment variable that overrides a
// config key: PYCOMMS_ + the key path upper-cased, "__" between levels.
const EnvPrefix = "PYCOMMS_"

// topMappings are the top-level keys that hold a mapping of plain values,
// with the keys of each.
var topMappings = map[string][]string{
	"node":     nodeKeys,
	"log":      logKeys,
	"listen":   listenKeys,
	"identity": identityKeys,
	"trust":    trustKeys,
	"limits":   meshLimitsKeys,
}

// envOverride is one PYCOMMS_* variable that names a known key.
type envOverride struct {
	name, value string
	key         string   // key path for messages: "plugins[0].limits.memory"
	koanfKey    string   // dotted koanf path of a key outside the plugin list: "log.level"
	plugin      int      // plugin index for keys under plugins[i]; -1 otherwise
	rest        []string // path inside plugins[i]: ["limits", "memory"]
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
	ov := envOverride{name: name, value: value, plugin: -1}
	switch segs[0] {
	case "control", "cache_dir", "data_dir", "peers":
		// A list such as peers is set whole, comma-separated, as
		// plugins[i].grants is.
		if len(segs) > 1 {
			return noSubKeys(1)
		}
	case "node", "log", "listen", "identity", "trust", "limits":
		known := topMappings[segs[0]]
		if len(segs) == 1 {
			return fail(segs[0], "is a mapping: set its keys instead (%s)", envNames(segs[:1], known))
		}
		if !slices.Contains(known, segs[1]) {
			return unknown(1, known)
		}
		if len(segs) > 2 {
			return noSubKeys(2)
		}
	case "plugins":
		if len(segs) == 1 {
			return fail("plugins", "the plugin list cannot be set from the environment; override keys of a listed plugin by index, e.g. PYCOMMS_PLUGINS__0__INSTANCES=4")
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
				return fail(envKeyPath(segs), "is a mapping: set its keys instead (%s)", envNames(segs[:3], limitsKeys))
			}
			if !slices.Contains(limitsKeys, segs[3]) {
				return unknown(3, limitsKeys)
			}
			if len(segs) > 4 {
				return noSubKeys(4)
			}
		case "config":
			if len(segs) == 3 {
				return fail(envKeyPath(segs), "is free-form and cannot be set as a whole; set its keys, e.g. PYCOMMS_PLUGINS__%d__CONFIG__PREFIX", idx)
			}
		default:
			if len(segs) > 3 {
				return noSubKeys(3)
			}
		}
		ov.rest = segs[2:]
		ov.key = envKeyPath(segs)
		return ov, nil
	default:
		return unknown(0, topKeys)
	}
	ov.koanfKey = strings.Join(segs, ".")
	ov.key = ov.koanfKey
	return ov, nil
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
			m[k] = ov.value
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
