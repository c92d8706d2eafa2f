package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and the key table of KEYS.md with the current output")

// pinMachine replaces the machine-dependent defaults (host name, user cache
// and data directories, working directory) for the duration of a test, so that golden
// output is the same everywhere.
func pinMachine(t *testing.T, wd string) {
	t.Helper()
	oldHost, oldCache, oldData, oldWd := osHostname, osUserCacheDir, osUserDataDir, osGetwd
	osHostname = func() (string, error) { return "testhost", nil }
	osUserCacheDir = func() (string, error) { return "/home/test/.cache", nil }
	osUserDataDir = func() (string, error) { return "/home/test/.local/share", nil }
	osGetwd = func() (string, error) { return wd, nil }
	t.Cleanup(func() { osHostname, osUserCacheDir, osUserDataDir, osGetwd = oldHost, oldCache, oldData, oldWd })
}

// fixture is a testdata/*.yaml file plus the setup its leading comment
// lines ask for:
//
//	# test: file REL      create an empty file (a stand-in .wasm) at REL
//	# test: dir REL       create a directory at REL
//	# test: copy SRC REL  copy testdata/SRC (a certificate, say) to REL
//	# test: at REL        place the config file at REL instead of NAME.yaml
//	# test: env NAME=VAL  pass NAME=VAL in the environment
//
// REL is relative to the test's temporary directory, which error output
// shows as $DIR. The working directory is $DIR/cwd.
type fixture struct {
	name   string
	data   []byte
	files  []string
	dirs   []string
	copies [][2]string // testdata file, destination
	at     string
	env    []string
}

func readFixture(t *testing.T, path string) fixture {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".yaml")
	f := fixture{name: name, data: data, at: name + ".yaml"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "# test: ")
		if !ok {
			continue
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch verb {
		case "file":
			f.files = append(f.files, arg)
		case "dir":
			f.dirs = append(f.dirs, arg)
		case "copy":
			src, dst, ok := strings.Cut(arg, " ")
			if !ok {
				t.Fatalf("%s: %q: want copy SRC REL", path, line)
			}
			f.copies = append(f.copies, [2]string{src, dst})
		case "at":
			f.at = arg
		case "env":
			f.env = append(f.env, arg)
		default:
			t.Fatalf("%s: unknown directive %q", path, line)
		}
	}
	return f
}

// setUp writes the fixture into dir and returns the config file's path.
func (f fixture) setUp(t *testing.T, dir string) string {
	t.Helper()
	for _, d := range append(f.dirs, "cwd") {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range append(f.files, f.at) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var content []byte
		if rel == f.at {
			content = f.data
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range f.copies {
		data, err := os.ReadFile(filepath.Join("testdata", c[0]))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, c[1])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, f.at)
}

// dump renders a Config in a stable, reviewable form for golden files.
func dump(t *testing.T, c *Config) string {
	t.Helper()
	type plugin struct {
		Index     int            `json:"index"`
		Name      string         `json:"name"`
		Path      string         `json:"path"`
		Kind      string         `json:"kind"`
		Services  []string       `json:"services"`
		Topics    []string       `json:"topics"`
		Instances int            `json:"instances"`
		Queue     int            `json:"queue"`
		Watch     bool           `json:"watch"`
		Memory    string         `json:"limits.memory"`
		Timeout   string         `json:"limits.timeout"`
		MaxReply  string         `json:"limits.max_reply"`
		Grants    []string       `json:"grants"`
		Config    map[string]any `json:"config"`
		Queues    []string       `json:"queues,omitempty"`
	}
	type peer struct {
		Index     int    `json:"index"`
		Raw       string `json:"raw"`
		Transport string `json:"transport"`
		Addr      string `json:"addr"`
	}
	out := struct {
		File       string   `json:"file"`
		Node       string   `json:"node.name"`
		Control    string   `json:"control"`
		AllowHosts []string `json:"control.allow_hosts,omitempty"`
		CacheDir   string   `json:"cache_dir"`
		DataDir    string   `json:"data_dir"`
		Level      string   `json:"log.level"`
		Format     string   `json:"log.format"`
		ListenTCP  string   `json:"listen.tcp"`
		ListenQUIC string   `json:"listen.quic"`
		Peers      []peer   `json:"peers"`
		Key        string   `json:"identity.key"`
		Cert       string   `json:"identity.cert"`
		Secret     string   `json:"trust.secret"`
		Nodes      []string `json:"trust.nodes"`
		CA         string   `json:"trust.ca"`
		Open       bool     `json:"trust.open,omitempty"`
		MaxFrame   string   `json:"limits.max_frame"`
		SendBuffer string   `json:"limits.send_buffer"`
		Inflight   int      `json:"limits.inflight"`
		MDNS       bool     `json:"discovery.mdns"`
		DeadAfter  string   `json:"discovery.dead_after"`
		Warnings   []string `json:"warnings"`
		Plugins    []plugin `json:"plugins"`
		Queues     *Queues  `json:"queues,omitempty"` // when not the defaults
	}{c.File, c.Node.Name, c.Control, c.ControlAllowHosts, c.CacheDir, c.DataDir, c.Log.Level.String(), c.Log.Format,
		c.Listen.TCP, c.Listen.QUIC, []peer{}, c.Identity.Key, c.Identity.Cert, c.Trust.Secret, c.Trust.Nodes, c.Trust.CA, c.Trust.AllowOpen,
		FormatSize(c.Mesh.MaxFrame), FormatSize(c.Mesh.SendBuffer), c.Mesh.Inflight,
		c.Discovery.MDNS, formatDuration(c.Discovery.DeadAfter), c.Warnings(), []plugin{}, nil}
	if c.Queues != (Queues{DefaultQueueMaxAttempts, DefaultQueueBackoff, DefaultQueueMaxBackoff, DefaultQueueMaxDepth}) {
		out.Queues = &c.Queues
	}
	for _, p := range c.Peers {
		out.Peers = append(out.Peers, peer(p))
	}
	for _, p := range c.Plugins {
		grants := []string{}
		for _, g := range p.Grants {
			grants = append(grants, string(g))
		}
		out.Plugins = append(out.Plugins, plugin{p.Index, p.Name, p.Path, p.Kind, p.Services, p.Topics,
			p.Instances, p.Queue, p.Watch, FormatSize(p.Limits.Memory), formatDuration(p.Limits.Timeout),
			FormatSize(p.Limits.MaxReply), grants, p.Config, p.Queues})
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep "greetings.>" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestFixtures loads every testdata/*.yaml and compares the result (the
// effective config, or every error) with testdata/NAME.golden.
func TestFixtures(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no fixtures")
	}
	for _, path := range paths {
		f := readFixture(t, path)
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			pinMachine(t, filepath.Join(dir, "cwd"))
			cfgPath := f.setUp(t, dir)

			c, err := Load(cfgPath, f.env)
			var got string
			if err != nil {
				if c != nil {
					t.Errorf("Load returned both a Config and an error")
				}
				if _, ok := err.(*Errors); !ok {
					t.Errorf("error is %T, want *Errors", err)
				}
				got = "ERRORS\n" + err.Error() + "\n"
			} else {
				got = dump(t, c)
			}
			got = strings.ReplaceAll(got, dir, "$DIR")

			golden := filepath.Join("testdata", f.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it)\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}
