package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
)

// writeConfig writes a config file (and empty stand-ins for the given
// plugin files) into a fresh directory and returns the file's path.
func writeConfig(t *testing.T, yaml string, wasm ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, w := range wasm {
		p := filepath.Join(dir, w)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadBuiltinDefaults(t *testing.T) {
	pinMachine(t, "/srv/wd")
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Node:     Node{Name: "testhost"},
		Control:  "127.0.0.1:7480",
		CacheDir: "/home/test/.cache/pycomms-host",
		Log:      Log{Level: slog.LevelInfo, Format: "text"},
		DataDir:  "/home/test/.local/share/pycomms-host/testhost",
		// Loopback: a node started with no config cannot be joined from
		// the network.
		Listen:    Listen{TCP: "127.0.0.1:7400", QUIC: "127.0.0.1:7400"},
		Peers:     []Peer{},
		Identity:  Identity{Key: "/home/test/.local/share/pycomms-host/testhost/node.key"},
		Trust:     Trust{Nodes: []string{}},
		Mesh:      MeshLimits{MaxFrame: 1 << 20, SendBuffer: 8 << 20, Inflight: 1024},
		Discovery: Discovery{DeadAfter: 5 * time.Second},
		Plugins: []Plugin{{
			Index:     0,
			Name:      "echo",
			Path:      "builtin:echo",
			Kind:      "handler",
			Services:  []string{"echo"},
			Topics:    []string{"greetings.>"},
			Instances: 2,
			Queue:     1024,
			Watch:     true,
			Limits: Limits{Memory: 16 << 20, Timeout: 5 * time.Second, MaxReply: 1 << 20, MaxModule: DefaultMaxModule,
				ReadBuffer: 64 << 10, WriteBuffer: 1 << 20, MaxConns: 1024},
			Grants: []abi.Capability{abi.CapLog, abi.CapPublish, abi.CapCall, abi.CapSend},
			Config: map[string]any{"prefix": ">> "},
		}},
		DrainTimeout: 10 * time.Second,
		Queues:       Queues{MaxAttempts: 5, Backoff: time.Second, MaxBackoff: time.Minute, MaxDepth: 100_000},
	}
	c.src = nil // compared separately: At is tested on its own
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(\"\") =\n%+v\nwant\n%+v", c, want)
	}
}

// TestLoadBuiltinDefaultsEnv checks that environment overrides apply to the
// built-in defaults too, except for plugins selected by index.
func TestLoadBuiltinDefaultsEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{
			name: "top-level keys",
			env:  []string{"PYCOMMS_CONTROL=", "PYCOMMS_NODE__NAME=n1", "PYCOMMS_LOG__LEVEL=warn", "PYCOMMS_LOG__FORMAT=json", "HOME=/elsewhere"},
			check: func(t *testing.T, c *Config) {
				if c.Control != "" || c.Node.Name != "n1" || c.Log.Level != slog.LevelWarn || c.Log.Format != "json" {
					t.Errorf("got control %q, node %q, log %v/%s", c.Control, c.Node.Name, c.Log.Level, c.Log.Format)
				}
			},
		},
		{
			name: "relative cache dir is relative to the working directory",
			env:  []string{"PYCOMMS_CACHE_DIR=cache"},
			check: func(t *testing.T, c *Config) {
				if want := filepath.Join("/srv/wd", "cache"); c.CacheDir != want {
					t.Errorf("CacheDir = %q, want %q", c.CacheDir, want)
				}
			},
		},
		{
			name: "last assignment wins",
			env:  []string{"PYCOMMS_CONTROL=127.0.0.1:1", "PYCOMMS_CONTROL=[::1]:2"},
			check: func(t *testing.T, c *Config) {
				if c.Control != "[::1]:2" {
					t.Errorf("Control = %q", c.Control)
				}
			},
		},
		{
			name:    "plugin index",
			env:     []string{"PYCOMMS_PLUGINS__0__INSTANCES=8"},
			wantErr: "env PYCOMMS_PLUGINS__0__INSTANCES: plugins[0].instances: there is no config file, so no listed plugin to override (the built-in plugin list cannot be changed by index; PYCOMMS_PLUGINS can replace it whole)",
		},
		{
			name:    "bad value",
			env:     []string{"PYCOMMS_NODE__NAME=not valid"},
			wantErr: `env PYCOMMS_NODE__NAME: node.name: "not valid" is not a valid node name`,
		},
		{
			name:    "typo",
			env:     []string{"PYCOMMS_CONTORL=127.0.0.1:1"},
			wantErr: "env PYCOMMS_CONTORL: contorl: unknown key (did you mean PYCOMMS_CONTROL?)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pinMachine(t, "/srv/wd")
			c, err := Load("", tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantMsg string
		is      error
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), filepath.Join(dir, "nope.yaml") + ": cannot read the config file: no such file or directory", fs.ErrNotExist},
		{"directory", dir, dir + ": cannot read the config file: is a directory", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path, nil)
			if c != nil || err == nil {
				t.Fatalf("Load = %v, %v; want an error", c, err)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("error = %q, want %q", err, tt.wantMsg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != tt.path {
				t.Errorf("errors.As(*Error) = %+v", e)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Col: 7, Key: "plugins[0].kind", Msg: "bad"}, "a.yaml:3:7: plugins[0].kind: bad"},
		{Error{File: "a.yaml", Line: 3, Key: "k", Msg: "bad"}, "a.yaml:3: k: bad"},
		{Error{File: "a.yaml", Key: "k", Msg: "bad"}, "a.yaml: k: bad"},
		{Error{File: "a.yaml", Msg: "bad"}, "a.yaml: bad"},
		{Error{Key: "k", Msg: "bad"}, "k: bad"},
		{Error{Msg: "bad"}, "bad"},
		{Error{Env: "PYCOMMS_X", Key: "x", Msg: "bad"}, "env PYCOMMS_X: x: bad"},
		{Error{Env: "PYCOMMS_", Msg: "bad"}, "env PYCOMMS_: bad"},
		// An environment value has no file position even if one is set.
		{Error{File: "a.yaml", Line: 1, Env: "PYCOMMS_X", Key: "x", Msg: "bad"}, "env PYCOMMS_X: x: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestErrorsOrderAndUnwrap(t *testing.T) {
	cause := errors.New("cause")
	errs := &Errors{}
	errs.Add(&Error{Env: "PYCOMMS_B", Key: "b", Msg: "env b"})
	errs.Add(&Error{File: "f", Line: 9, Col: 1, Key: "late", Msg: "late"})
	errs.Add(nil) // ignored
	errs.Add(&Error{Key: "nowhere", Msg: "no position"})
	errs.Add(&Error{Env: "PYCOMMS_A", Key: "a", Msg: "env a"})
	errs.Add(&Error{File: "f", Line: 2, Col: 5, Key: "early", Msg: "early", Err: cause})
	errs.Add(&Error{File: "f", Line: 2, Col: 1, Key: "earlier", Msg: "earlier"})

	want := strings.Join([]string{
		"f:2:1: earlier: earlier",
		"f:2:5: early: early",
		"f:9:1: late: late",
		"nowhere: no position",
		"env PYCOMMS_A: a: env a",
		"env PYCOMMS_B: b: env b",
	}, "\n")
	if got := errs.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if len(errs.List) != 6 || errs.List[0].Key != "b" {
		t.Errorf("Error() reordered List")
	}
	if !errors.Is(errs, cause) {
		t.Errorf("errors.Is does not reach the cause through Errors")
	}
}

func TestAt(t *testing.T) {
	path := writeConfig(t, `plugins:
  - name: a
    path: a.wasm
    limits: {memory: 1MiB}
  - name: b
    path: builtin:b
`, "a.wasm")
	c, err := Load(path, []string{"PYCOMMS_PLUGINS__1__PATH=builtin:c"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want string
	}{
		{"plugins[0].path", path + ":3:11: plugins[0].path: not a module"},
		{"plugins[0].limits.memory", path + ":4:22: plugins[0].limits.memory: not a module"},
		{"plugins[0].limits.timeout", path + ":4:13: plugins[0].limits.timeout: not a module"}, // not in the file: its parent
		{"plugins[0].services", path + ":2:5: plugins[0].services: not a module"},              // its plugin
		{"plugins[1].path", "env PYCOMMS_PLUGINS__1__PATH: plugins[1].path: not a module"},
		{"node.name", path + ": node.name: not a module"},
	}
	for _, tt := range tests {
		if got := c.At(tt.key, "not a %s", "module").Error(); got != tt.want {
			t.Errorf("At(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	var bare Config
	if got := bare.At("x", "y").Error(); got != "x: y" {
		t.Errorf("At on a Config not from Load = %q", got)
	}
}

func TestDigest(t *testing.T) {
	digest := func(t *testing.T, yaml string, env ...string) string {
		t.Helper()
		pinMachine(t, "/srv/wd")
		dir := t.TempDir()
		path := filepath.Join(dir, "pycomms.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, env)
		if err != nil {
			t.Fatal(err)
		}
		// The same directory for every variant, so only content differs.
		c.File = "/etc/pycomms.yaml"
		return c.Digest()
	}
	base := "plugins:\n  - {name: a, path: builtin:a, limits: {memory: 16MiB}, config: {x: 1, y: [a, b]}}\n"
	d0 := digest(t, base)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(d0) {
		t.Fatalf("Digest() = %q, want 64 hex digits", d0)
	}
	same := []struct{ name, yaml string }{
		{"comments and layout", "# a comment\nplugins:\n  - name: a\n    path: builtin:a   # trailing\n    config: {y: [a, b], x: 1}\n    limits:\n      memory: 16MiB\n"},
		{"size spelled differently", "plugins:\n  - {name: a, path: builtin:a, limits: {memory: 16777216}, config: {x: 1, y: [a, b]}}\n"},
		{"defaults written out", "plugins:\n  - {name: a, path: builtin:a, instances: 2, queue: 1024, watch: true, grants: [log], limits: {memory: 16MiB, timeout: 5s}, config: {x: 1, y: [a, b]}}\n"},
		{"mesh defaults written out", base + "data_dir: /home/test/.local/share/pycomms-host/testhost\nlisten: {tcp: 127.0.0.1:7400}\npeers: []\nidentity: {key: /home/test/.local/share/pycomms-host/testhost/node.key}\ntrust: {secret: \"\", nodes: []}\nlimits: {max_frame: 1MiB, send_buffer: 8388608, inflight: 1024}\n"},
	}
	for _, tt := range same {
		if d := digest(t, tt.yaml); d != d0 {
			t.Errorf("%s: digest changed", tt.name)
		}
	}
	if a, b := digest(t, base+"peers: [\"TCP://Node-B:7400\", \"[::0001]:1\"]\n"), digest(t, base+"peers: [\"tcp://node-b:07400\", \"[::1]:1\"]\n"); a != b {
		t.Errorf("peer spelling: digest changed")
	}
	different := []struct {
		name, yaml string
		env        []string
	}{
		{"instances", strings.Replace(base, "limits:", "instances: 3, limits:", 1), nil},
		{"config value", strings.Replace(base, "x: 1", "x: 2", 1), nil},
		{"config type", strings.Replace(base, "x: 1", "x: '1'", 1), nil},
		{"config list order", strings.Replace(base, "[a, b]", "[b, a]", 1), nil},
		{"grants", strings.Replace(base, "limits:", "grants: [log, call], limits:", 1), nil},
		{"env override", base, []string{"PYCOMMS_LOG__LEVEL=debug"}},
		{"second plugin", base + "  - {name: b, path: builtin:b}\n", nil},
		{"data_dir", base + "data_dir: /var/lib/pycomms\n", nil},
		{"listen", base + "listen: {quic: \"\"}\n", nil},
		{"peers", base + "peers: [10.0.0.2:7400]\n", nil},
		{"peer transport", base + "peers: [tcp://10.0.0.2:7400]\n", nil},
		{"identity", base + "identity: {key: /k}\n", nil},
		{"trust", base + "trust: {nodes: [" + strings.Repeat("a", 32) + "]}\n", nil},
		{"secret", base + "trust: {secret: 0123456789abcdef}\n", nil},
		{"mesh limits", base + "limits: {inflight: 10}\n", nil},
		{"mesh env", base, []string{"PYCOMMS_LIMITS__MAX_FRAME=2MiB"}},
		{"trust.open", base + "trust: {open: true}\n", nil},
		{"control.allow_hosts", base + "control: {allow_hosts: [a]}\n", nil},
	}
	for _, tt := range different {
		if d := digest(t, tt.yaml, tt.env...); d == d0 {
			t.Errorf("%s: digest did not change", tt.name)
		}
	}
}

func TestDefaultNodeName(t *testing.T) {
	tests := []struct {
		host string
		err  error
		want string
	}{
		{"node-a", nil, "node-a"},
		{"web01.example.com", nil, "web01.example.com"},
		{"a-host-name-long-enough-to-be-past-sixty-three-characters.example.com", nil, "a-host-name-long-enough-to-be-past-sixty-three-characters"},
		{"_odd", nil, "pycomms"},
		{"", nil, "pycomms"},
		{"x", errors.New("no hostname"), "pycomms"},
	}
	for _, tt := range tests {
		old := osHostname
		osHostname = func() (string, error) { return tt.host, tt.err }
		got := defaultNodeName()
		osHostname = old
		if got != tt.want {
			t.Errorf("defaultNodeName() with host %q, %v = %q, want %q", tt.host, tt.err, got, tt.want)
		}
	}
}

func TestDefaultCacheDir(t *testing.T) {
	tests := []struct {
		dir  string
		err  error
		want string
	}{
		{"/home/u/.cache", nil, "/home/u/.cache/pycomms-host"},
		{"", errors.New("neither $XDG_CACHE_HOME nor $HOME are defined"), filepath.Join(os.TempDir(), "pycomms-host-cache")},
		{"relative", nil, filepath.Join(os.TempDir(), "pycomms-host-cache")},
	}
	for _, tt := range tests {
		old := osUserCacheDir
		osUserCacheDir = func() (string, error) { return tt.dir, tt.err }
		got := defaultCacheDir()
		osUserCacheDir = old
		if got != tt.want {
			t.Errorf("defaultCacheDir() with %q, %v = %q, want %q", tt.dir, tt.err, got, tt.want)
		}
	}
}

func TestBuiltin(t *testing.T) {
	tests := []struct {
		path   string
		name   string
		isBuil bool
	}{
		{"builtin:echo", "echo", true},
		{"/plugins/echo.wasm", "", false},
		{"builtin", "", false},
	}
	for _, tt := range tests {
		name, ok := Plugin{Path: tt.path}.Builtin()
		if name != tt.name || ok != tt.isBuil {
			t.Errorf("Builtin() of %q = %q, %v", tt.path, name, ok)
		}
	}
}

func TestCheckSubject(t *testing.T) {
	long := strings.Repeat("a", abi.MaxSubjectLen)
	tests := []struct {
		s         string
		wildcards bool
		ok        bool
	}{
		{"echo", false, true},
		{"inventory.reserve", false, true},
		{"a-b_c.D~!", false, true},
		{long, false, true},
		{long + "a", false, false},
		{"é", false, false},
		{">", true, true},
		{"*", true, true},
		{"*.*.>", true, true},
		{">.a", true, false},
		{"a.**", true, false},
		{"*", false, false},
	}
	for _, tt := range tests {
		if reason := checkSubject(tt.s, tt.wildcards); (reason == "") != tt.ok {
			t.Errorf("checkSubject(%.20q, %v) = %q, want ok=%v", tt.s, tt.wildcards, reason, tt.ok)
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		word string
		want string
	}{
		{"limts", "limits"},
		{"nmae", "name"}, // a swap counts as one edit
		{"max_rply", "max_reply"},
		{"servces", "services"},
		{"instnaces", "instances"},
		{"foo", ""}, // too short to be two edits from anything
		{"completely", ""},
	}
	for _, tt := range tests {
		got, _ := suggest(tt.word, pluginKeys)
		if tt.word == "max_rply" {
			got, _ = suggest(tt.word, limitsKeys)
		}
		if got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

// TestKeysDocumented keeps KEYS.md in step with the schema.
func TestKeysDocumented(t *testing.T) {
	doc, err := os.ReadFile("KEYS.md")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range topKeys {
		if sub, ok := topMappings[k]; ok {
			for _, s := range sub {
				keys = append(keys, k+"."+s)
			}
			continue
		}
		keys = append(keys, k)
	}
	for _, k := range pluginKeys {
		if k == "limits" {
			for _, s := range limitsKeys {
				keys = append(keys, "plugins[].limits."+s)
			}
			continue
		}
		keys = append(keys, "plugins[]."+k)
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("KEYS.md has no row for %s", k)
		}
	}
}

// FuzzLoad checks that any file content gives either a Config or *Errors
// whose every entry has a message, and never a panic.
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("plugins: [{<<: [*x]}]"))
	dir := f.TempDir()
	path := filepath.Join(dir, "pycomms.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err == nil {
			if c == nil {
				t.Fatal("nil Config and nil error")
			}
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.List) == 0 {
			t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
		}
		for _, e := range errs.List {
			if e.Msg == "" {
				t.Fatalf("error without a message: %+v", e)
			}
		}
	})
}
