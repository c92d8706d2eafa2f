package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// pluginConfig returns a config with one builtin plugin whose config
// mapping is body, indented under "config:".
func pluginConfig(body string) string {
	return "control: \"\"\nplugins:\n  - name: p\n    path: builtin:p\n    config:\n" + body
}

// manyKeys is a plugin config mapping of n keys, k0: 0 ... .
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "      k%d: %d\n", i, i)
	}
	return b.String()
}

// TestLoadManyKeys loads a plugin config mapping of 64k keys. The YAML
// library's own decoding compares every key of a mapping with every later
// one, so this took minutes before the config was built from the node tree.
func TestLoadManyKeys(t *testing.T) {
	const n = 1 << 16
	c, err := Load(writeConfig(t, pluginConfig(manyKeys(n))), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Plugins[0].Config
	if len(got) != n {
		t.Fatalf("config has %d keys, want %d", len(got), n)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if v := got[fmt.Sprintf("k%d", i)]; v != i {
			t.Errorf("k%d = %#v, want %d", i, v, i)
		}
	}
	// Positions stay exact for a key of the big mapping.
	if e := c.At(fmt.Sprintf("plugins[0].config.k%d", n-1), "x"); e.Line != 5+n {
		t.Errorf("At(last key) line = %d, want %d", e.Line, 5+n)
	}
}

// TestLoadWorkIsLinear counts the steps Load takes over the file's nodes
// (nodes visited and bytes of key paths built) for configs of several
// shapes at two sizes, and checks that eight times the input costs at most
// ten times the steps. The shapes are the ones where work used to grow
// with the square of the input: one long key above a wide mapping had
// every path below it repeat the key.
func TestLoadWorkIsLinear(t *testing.T) {
	shapes := []struct {
		name string
		gen  func(n int) string
	}{
		{"keys", func(n int) string { return pluginConfig(manyKeys(n)) }},
		{"plugins", func(n int) string {
			var b strings.Builder
			b.WriteString("control: \"\"\nplugins:\n")
			for i := range n {
				fmt.Fprintf(&b, "  - {name: p%d, path: \"builtin:p\", services: [s%d]}\n", i, i)
			}
			return b.String()
		}},
		{"list", func(n int) string {
			return pluginConfig("      l: [" + strings.Repeat("x, ", n) + "x]\n")
		}},
		{"nesting", func(n int) string {
			// n/100 mappings, each nested 90 levels deep.
			var b strings.Builder
			for i := range n / 100 {
				fmt.Fprintf(&b, "      n%d: %s1%s\n", i, strings.Repeat("{a: ", 90), strings.Repeat("}", 90))
			}
			return pluginConfig(b.String())
		}},
		{"long key", func(n int) string {
			// A key of 2n bytes above n entries.
			return pluginConfig("      ? " + strings.Repeat("k", 2*n) + "\n      : {" + entries(n) + "}\n")
		}},
		{"long unknown top key", func(n int) string {
			return "? " + strings.Repeat("k", 2*n) + "\n: {" + entries(n) + "}\n"
		}},
		{"long key under a known key", func(n int) string {
			return "log:\n  ? " + strings.Repeat("k", 2*n) + "\n  : {" + entries(n) + "}\n"
		}},
	}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			small, large := loadWorkOf(t, s.gen(1000)), loadWorkOf(t, s.gen(8000))
			t.Logf("steps: %d at n=1000, %d at n=8000 (%.1fx)", small, large, float64(large)/float64(small))
			if large > 10*small {
				t.Errorf("8x the input took %.1fx the steps (%d -> %d): loading is not linear", float64(large)/float64(small), small, large)
			}
		})
	}
}

// entries is "a0: 0, a1: 0, ...", n entries of a flow mapping.
func entries(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("a%d: 0", i)
	}
	return strings.Join(parts, ", ")
}

// loadWorkOf loads yaml and returns the steps it took; the load may fail
// (unknown keys), but it must get as far as decoding.
func loadWorkOf(t *testing.T, yaml string) int {
	t.Helper()
	steps := -1
	loadWork = func(n int) { steps = n }
	t.Cleanup(func() { loadWork = nil })
	Load(writeConfig(t, yaml), nil)
	if steps <= 0 {
		t.Fatal("Load did not report its work")
	}
	return steps
}

// TestLoadFileSizeLimit checks that a file at MaxFileSize loads and one
// byte more is refused before it is parsed, with the file, its size and
// the limit in the message.
func TestLoadFileSizeLimit(t *testing.T) {
	base := "control: \"\"\n"
	pad := func(size int) string {
		return base + strings.Repeat("#", size-len(base)-1) + "\n"
	}
	if _, err := Load(writeConfig(t, pad(MaxFileSize)), nil); err != nil {
		t.Fatalf("a file of exactly MaxFileSize: %v", err)
	}
	path := writeConfig(t, pad(MaxFileSize+1))
	_, err := Load(path, nil)
	want := fmt.Sprintf("%s: the config file is %d bytes, more than the limit of 4MiB (%d bytes)", path, MaxFileSize+1, MaxFileSize)
	if err == nil || err.Error() != want {
		t.Fatalf("Load(MaxFileSize+1 bytes) = %v, want %q", err, want)
	}
}

// TestLoadPipeSizeLimit feeds a FIFO that never ends: the limit applies to
// what is read, not to what a stat says.
func TestLoadPipeSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pycomms.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		line := []byte(strings.Repeat("#", 1023) + "\n")
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := w.Write(line); err != nil {
				return // the reader stopped, as it should
			}
		}
	}()
	_, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "the config file is larger than the limit of 4MiB") {
		t.Fatalf("Load(endless FIFO) = %v, want the size limit", err)
	}
}

// TestLoadContextCancel checks that LoadContext returns when its context
// ends while it waits for a FIFO that nobody writes to, both before a
// writer opens it and while the writer sends nothing.
func TestLoadContextCancel(t *testing.T) {
	for _, writer := range []bool{false, true} {
		t.Run(fmt.Sprintf("writer=%v", writer), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pycomms.yaml")
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if writer {
				opened := make(chan *os.File, 1)
				go func() {
					w, err := os.OpenFile(path, os.O_WRONLY, 0)
					if err == nil {
						w.WriteString("control: \"\"\n")
					}
					opened <- w
				}()
				t.Cleanup(func() {
					if w := <-opened; w != nil {
						w.Close()
					}
				})
			}
			go func() {
				time.Sleep(100 * time.Millisecond) // let Load start waiting
				cancel()
			}()
			result := make(chan error, 1)
			go func() {
				_, err := LoadContext(ctx, path, nil)
				result <- err
			}()
			select {
			case err := <-result:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("LoadContext = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("LoadContext did not return 10s after its context ended")
			}
		})
	}
}

// TestLoadAliasLimits checks the bounds on what aliases can ask for: a
// "billion laughs" expansion, an alias inside the value it names, and
// nesting past MaxDepth are refused with their position.
func TestLoadAliasLimits(t *testing.T) {
	bomb := "      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, c := range "bcdefghi" {
		bomb += fmt.Sprintf("      %c: &%c [%s]\n", c, c, strings.TrimSuffix(strings.Repeat("*"+prev+", ", 10), ", "))
		prev = string(c)
	}
	deep := "      d: " + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + "\n"
	cases := []struct{ name, body, want string }{
		{"billion laughs", bomb, fmt.Sprintf("the config holds more than %d values", MaxValues)},
		{"cycle", "      c: &c [1, *c]\n", "alias *c is used inside the value it names"},
		{"merge cycle", "      m: &m {a: 1, <<: *m}\n", "alias *m is used inside the value it names"},
		{"too deep", deep, fmt.Sprintf("lists and mappings nest more than %d levels deep", MaxDepth)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, pluginConfig(tc.body))
			_, err := Load(path, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), path+":") {
				t.Fatalf("Load = %v, want %q at a position in %s", err, tc.want, path)
			}
		})
	}
	// An alias cycle under an unknown key is reported as the unknown key,
	// and indexing its positions ends.
	_, err := Load(writeConfig(t, "a: &a [*a]\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "a: unknown key") {
		t.Fatalf("Load(unknown key holding a cycle) = %v", err)
	}
}

// TestBuildTreeMatchesYAML checks that the values built from the node
// tree are the ones yaml.Unmarshal gives (with keys spelled as koanf
// spells them), for every fixture and for scalars of every type, merges
// and non-string keys.
func TestBuildTreeMatchesYAML(t *testing.T) {
	docs := []string{
		"plugins: [{config: {s: x, q: \"1\", i: 1, big: 18446744073709551615, f: 1.5, inf: .inf, b: true, n: null, t: 2001-12-14, bin: !!binary aGk=, str: !!str 3}}]",
		"plugins: [{config: {1: a, true: b, ~: c, 1.5: d}}]",
		"plugins: [{config: &b {a: 1, b: 2}}, {config: {<<: *b, b: 3}}, {config: {<<: [{a: 1}, {a: 2, c: 3}], d: 4}}]",
		"plugins: [{config: {l: &l [1, {x: y}], m: *l}}]",
	}
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(data))
	}
	for _, doc := range docs {
		var want map[string]any
		if err := yaml.Unmarshal([]byte(doc), &want); err != nil {
			continue // not valid YAML: parseYAML reports it before any tree is built
		}
		src := newSource("test.yaml")
		errs := &Errors{}
		top := parseYAML([]byte(doc), src, errs)
		if top == nil || len(errs.List) > 0 {
			continue
		}
		got := buildTree(context.Background(), top, src, errs)
		if len(errs.List) > 0 {
			t.Errorf("buildTree(%.60q): %v", doc, errs)
			continue
		}
		// Only the plugin list is built whole: elsewhere, unknown keys
		// and mappings the schema does not allow are left empty.
		if w, g := normalize(want["plugins"]), normalize(got["plugins"]); !reflect.DeepEqual(w, g) {
			t.Errorf("buildTree(%.60q) plugins =\n%#v\nwant\n%#v", doc, g, w)
		}
	}
}

// BenchmarkLoadKeys loads a plugin config of 1k and of 64k keys and
// reports the cost per key (ns/key): the two stay close when loading is
// linear. When the YAML library decoded the file, the cost per key grew
// with the number of keys (64k keys: ~29 s a load, against ~0.5 s now).
func BenchmarkLoadKeys(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 16} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "pycomms.yaml")
			if err := os.WriteFile(path, []byte(pluginConfig(manyKeys(n))), 0o644); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := Load(path, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
		})
	}
}
