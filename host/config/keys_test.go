package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keysTable renders the key table of KEYS.md from the declarations.
func keysTable() string {
	var b strings.Builder
	b.WriteString("| key | variable | type | default | on reload | meaning |\n|---|---|---|---|---|---|\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s | %s |\n", k.Path, k.Env(), k.Type, k.Default, k.Reload, k.Doc)
	}
	return b.String()
}

// TestKeysTable keeps KEYS.md's key table generated from Keys(): change a
// key in keys.go, then run go test ./host/config -run TestKeysTable -update.
func TestKeysTable(t *testing.T) {
	doc, err := os.ReadFile("KEYS.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	start := strings.Index(s, "| key |")
	if start < 0 {
		t.Fatal("KEYS.md has no key table (a line starting \"| key |\")")
	}
	end := strings.Index(s[start:], "\n\n")
	if end < 0 {
		t.Fatal("KEYS.md: the key table is not followed by a blank line")
	}
	end += start + 1
	want := keysTable()
	if s[start:end] == want {
		return
	}
	if *update {
		if err := os.WriteFile("KEYS.md", []byte(s[:start]+want+s[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("KEYS.md's key table differs from keys.go: run go test ./host/config -run TestKeysTable -update")
}

// TestKeysHaveReloadClass: every key says what a reload does with it, has
// a type, a default and a doc line, and every key that holds a value (all
// but the keys grouping others) can be read from a Config, which Digest
// and reload compare.
func TestKeysHaveReloadClass(t *testing.T) {
	grouping := []string{"control", "discovery", "plugins"}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.Path] {
			t.Errorf("%s is declared twice", k.Path)
		}
		seen[k.Path] = true
		if k.Reload != Live && k.Reload != Restart {
			t.Errorf("%s has no reload class: set Reload to Live or Restart", k.Path)
		}
		if k.Type == "" || k.Default == "" || k.Doc == "" {
			t.Errorf("%s: type %q, default %q, doc %q: none may be empty", k.Path, k.Type, k.Default, k.Doc)
		}
		inPlugin := strings.HasPrefix(k.Path, "plugins[].")
		switch {
		case slices.Contains(grouping, k.Path):
			if k.node != nil || k.plugin != nil {
				t.Errorf("%s groups other keys and must have no value of its own", k.Path)
			}
		case inPlugin && (k.plugin == nil || k.node != nil):
			t.Errorf("%s is a key of a plugin: it needs plugin (and no node) to read its value", k.Path)
		case !inPlugin && (k.node == nil || k.plugin != nil):
			t.Errorf("%s needs node (and no plugin) to read its value", k.Path)
		}
		if inPlugin && k.Reload != Live {
			t.Errorf("%s: a reload applies every key of a plugin (a new version is built), so it must be Live", k.Path)
		}
		want := EnvPrefix + strings.ToUpper(strings.NewReplacer("[]", "__0", ".", "__").Replace(k.Path))
		if k.Env() != want {
			t.Errorf("%s: Env() = %s, want %s", k.Path, k.Env(), want)
		}
	}
	// The keys the decoder accepts are exactly the declared ones.
	var accepted []string
	for _, top := range topKeys {
		switch sub := childKeys(top); {
		case top == "plugins":
			accepted = append(accepted, "plugins")
			for _, pk := range pluginKeys {
				if pk == "limits" {
					for _, lk := range limitsKeys {
						accepted = append(accepted, "plugins[].limits."+lk)
					}
					continue
				}
				accepted = append(accepted, "plugins[]."+pk)
			}
		case len(sub) == 0:
			accepted = append(accepted, top)
		default:
			if seen[top] {
				accepted = append(accepted, top)
			}
			for _, s := range sub {
				accepted = append(accepted, top+"."+s)
			}
		}
	}
	var declared []string
	for _, k := range keys {
		declared = append(declared, k.Path)
	}
	if !slices.Equal(accepted, declared) {
		t.Errorf("the decoder accepts\n%q\nthe table declares\n%q", accepted, declared)
	}
}

// TestDefaultsAsDocumented loads a config that sets nothing but one plugin
// and checks each key whose documented default is one literal value
// against what the decoder gives it, so that KEYS.md cannot promise a
// default the host does not use.
func TestDefaultsAsDocumented(t *testing.T) {
	pinMachine(t, "/srv/wd")
	c, err := Load(writeConfig(t, "plugins: [{name: a, path: 'builtin:echo'}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile("^`([^`]*)`$")
	checked := 0
	for _, k := range keys {
		m := literal.FindStringSubmatch(k.Default)
		if m == nil {
			continue
		}
		var v any
		switch {
		case k.node != nil:
			v = k.node(c)
		case k.plugin != nil:
			v = k.plugin(&c.Plugins[0])
		default:
			continue
		}
		if got := formatDefault(v); got != m[1] {
			t.Errorf("%s: KEYS.md says the default is %s, the decoder gives %s", k.Path, m[1], got)
		}
		checked++
	}
	if checked < 20 {
		t.Errorf("only %d defaults checked: the literal default pattern no longer matches the table", checked)
	}
}

func formatDefault(v any) string {
	switch x := v.(type) {
	case uint64:
		return FormatSize(x)
	case time.Duration:
		return formatDuration(x)
	case int:
		return strconv.Itoa(x)
	case fmt.Stringer:
		return strings.ToLower(x.String()) // slog.Level
	case map[string]any:
		if len(x) == 0 {
			return "{}"
		}
	}
	s := fmt.Sprint(v)
	if strings.HasPrefix(s, "[") {
		return "[" + strings.Join(strings.Fields(strings.Trim(s, "[]")), ", ") + "]"
	}
	return s
}
