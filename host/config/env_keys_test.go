package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
)

// documentedKeys returns the keys of the table at the top of KEYS.md, in
// order: every row whose first cell is a `key`, up to the first section
// heading.
func documentedKeys(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("KEYS.md")
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(doc), "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")
	var keys []string
	for _, m := range row.FindAllStringSubmatch(head, -1) {
		keys = append(keys, m[1])
	}
	if len(keys) < 30 {
		t.Fatalf("found only %d keys in KEYS.md: %q", len(keys), keys)
	}
	return keys
}

// TestEveryKeyFromEnv sets every key documented in KEYS.md through its
// environment variable, once over a config file and, for keys outside the
// plugin list, once with no config file. A key added to KEYS.md without a
// case here fails the test, so a new key cannot be left unreachable from
// the environment.
func TestEveryKeyFromEnv(t *testing.T) {
	pinMachine(t, "/srv/wd")
	dir := t.TempDir()
	copyFile := func(name string) string {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, cert := copyFile("mesh_ca.pem"), copyFile("mesh_node.crt")
	wasm := filepath.Join(dir, "other.wasm")
	if err := os.WriteFile(wasm, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "control.token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const id1, id2 = "mfrggzdfmztwq2lknnwg23tpobyxe43u", "gezdgnbvgy3tqojqgezdgnbvgy3tqojq"
	const secret = "0123456789abcdef0123"

	// Transport keys need kind transport and a socket.
	const tk, ta = "PYCOMMS_PLUGINS__0__KIND=transport", "PYCOMMS_PLUGINS__0__ACCEPT=[tcp://127.0.0.1:0]"
	type tc struct {
		env   []string
		check func(c *Config) bool
	}
	cases := map[string][]tc{
		"node.name": {{[]string{"PYCOMMS_NODE__NAME=node-b"}, func(c *Config) bool { return c.Node.Name == "node-b" }}},
		"control": {
			{[]string{"PYCOMMS_CONTROL=127.0.0.1:7481"}, func(c *Config) bool { return c.Control == "127.0.0.1:7481" }},
			{[]string{"PYCOMMS_CONTROL="}, func(c *Config) bool { return c.Control == "" }},
			{[]string{"PYCOMMS_CONTROL={listen: '127.0.0.1:7482', allow_hosts: [a.example]}"}, func(c *Config) bool {
				return c.Control == "127.0.0.1:7482" && slices.Equal(c.ControlAllowHosts, []string{"a.example"})
			}},
		},
		"control.listen": {
			{[]string{"PYCOMMS_CONTROL__LISTEN=127.0.0.1:7483"}, func(c *Config) bool { return c.Control == "127.0.0.1:7483" }},
			{[]string{"PYCOMMS_CONTROL__LISTEN=unix:///run/p/c.sock"}, func(c *Config) bool { return c.Control == "unix:///run/p/c.sock" }},
			{[]string{"PYCOMMS_CONTROL__LISTEN=0.0.0.0:7485", "PYCOMMS_CONTROL__TOKEN_FILE=" + token}, func(c *Config) bool {
				return c.Control == "0.0.0.0:7485" && c.ControlTokenFile == token
			}},
		},
		"control.token_file": {{[]string{"PYCOMMS_CONTROL__TOKEN_FILE=" + token}, func(c *Config) bool {
			return c.Control == DefaultControl && c.ControlTokenFile == token
		}}},
		"control.public_metrics": {{[]string{"PYCOMMS_CONTROL__PUBLIC_METRICS=true"}, func(c *Config) bool { return c.ControlPublicMetrics }}},
		"control.allow_hosts": {
			{[]string{"PYCOMMS_CONTROL__ALLOW_HOSTS=a.example,B"}, func(c *Config) bool {
				return c.Control == DefaultControl && slices.Equal(c.ControlAllowHosts, []string{"a.example", "b"})
			}},
			{[]string{"PYCOMMS_CONTROL__ALLOW_HOSTS=[a.example]", "PYCOMMS_CONTROL=127.0.0.1:7484"}, func(c *Config) bool {
				return c.Control == "127.0.0.1:7484" && slices.Equal(c.ControlAllowHosts, []string{"a.example"})
			}},
		},
		"cache_dir":  {{[]string{"PYCOMMS_CACHE_DIR=/var/cache/p"}, func(c *Config) bool { return c.CacheDir == "/var/cache/p" }}},
		"data_dir":   {{[]string{"PYCOMMS_DATA_DIR=rel"}, func(c *Config) bool { return c.DataDir == "/srv/wd/rel" }}},
		"log.level":  {{[]string{"PYCOMMS_LOG__LEVEL=debug"}, func(c *Config) bool { return c.Log.Level.String() == "DEBUG" }}},
		"log.format": {{[]string{"PYCOMMS_LOG__FORMAT=json"}, func(c *Config) bool { return c.Log.Format == "json" }}},
		"listen.tcp": {{[]string{"PYCOMMS_LISTEN__TCP=127.0.0.2:7401"}, func(c *Config) bool { return c.Listen.TCP == "127.0.0.2:7401" }}},
		"listen.quic": {
			{[]string{"PYCOMMS_LISTEN__QUIC=127.0.0.2:7402"}, func(c *Config) bool { return c.Listen.QUIC == "127.0.0.2:7402" }},
			{[]string{"PYCOMMS_LISTEN__QUIC="}, func(c *Config) bool { return c.Listen.QUIC == "" }},
		},
		"peers": {
			{[]string{"PYCOMMS_PEERS=tcp://10.0.0.2:7400,[fd00::5]:7400"}, func(c *Config) bool {
				return len(c.Peers) == 2 && c.Peers[0].Addr == "10.0.0.2:7400" && c.Peers[1].Addr == "[fd00::5]:7400"
			}},
			{[]string{"PYCOMMS_PEERS=[tcp://10.0.0.2:7400, '[fd00::5]:7400']"}, func(c *Config) bool {
				return len(c.Peers) == 2 && c.Peers[0].Transport == "tcp" && c.Peers[1].Addr == "[fd00::5]:7400"
			}},
			{[]string{"PYCOMMS_PEERS=[]"}, func(c *Config) bool { return len(c.Peers) == 0 }},
		},
		"identity.key":  {{[]string{"PYCOMMS_IDENTITY__KEY=/etc/p/node.key"}, func(c *Config) bool { return c.Identity.Key == "/etc/p/node.key" }}},
		"identity.cert": {{[]string{"PYCOMMS_IDENTITY__CERT=" + cert, "PYCOMMS_TRUST__CA=" + ca}, func(c *Config) bool { return c.Identity.Cert == cert }}},
		"trust.secret":  {{[]string{"PYCOMMS_TRUST__SECRET=" + secret}, func(c *Config) bool { return c.Trust.Secret == secret }}},
		"trust.nodes": {
			{[]string{"PYCOMMS_TRUST__NODES=" + id1 + "," + id2}, func(c *Config) bool { return slices.Equal(c.Trust.Nodes, []string{id1, id2}) }},
			{[]string{"PYCOMMS_TRUST__NODES=[" + id1 + "]"}, func(c *Config) bool { return slices.Equal(c.Trust.Nodes, []string{id1}) }},
		},
		"trust.ca": {{[]string{"PYCOMMS_TRUST__CA=" + ca, "PYCOMMS_IDENTITY__CERT=" + cert}, func(c *Config) bool { return c.Trust.CA == ca }}},
		"trust.open": {{[]string{"PYCOMMS_TRUST__OPEN=true", "PYCOMMS_LISTEN__TCP=0.0.0.0:7400"}, func(c *Config) bool {
			return c.Trust.AllowOpen && c.Listen.TCP == "0.0.0.0:7400"
		}}},
		"limits.max_frame":     {{[]string{"PYCOMMS_LIMITS__MAX_FRAME=4MiB"}, func(c *Config) bool { return c.Mesh.MaxFrame == 4<<20 }}},
		"limits.send_buffer":   {{[]string{"PYCOMMS_LIMITS__SEND_BUFFER=16MiB"}, func(c *Config) bool { return c.Mesh.SendBuffer == 16<<20 }}},
		"limits.inflight":      {{[]string{"PYCOMMS_LIMITS__INFLIGHT=7"}, func(c *Config) bool { return c.Mesh.Inflight == 7 }}},
		"discovery.dead_after": {{[]string{"PYCOMMS_DISCOVERY__DEAD_AFTER=10s"}, func(c *Config) bool { return c.Discovery.DeadAfter == 10*time.Second }}},
		"drain_timeout":        {{[]string{"PYCOMMS_DRAIN_TIMEOUT=90s"}, func(c *Config) bool { return c.DrainTimeout == 90*time.Second }}},
		"queues.max_attempts":  {{[]string{"PYCOMMS_QUEUES__MAX_ATTEMPTS=9"}, func(c *Config) bool { return c.Queues.MaxAttempts == 9 }}},
		"queues.backoff":       {{[]string{"PYCOMMS_QUEUES__BACKOFF=250ms"}, func(c *Config) bool { return c.Queues.Backoff == 250*time.Millisecond }}},
		"queues.max_backoff":   {{[]string{"PYCOMMS_QUEUES__MAX_BACKOFF=2h"}, func(c *Config) bool { return c.Queues.MaxBackoff == 2*time.Hour }}},
		"queues.max_depth":     {{[]string{"PYCOMMS_QUEUES__MAX_DEPTH=7"}, func(c *Config) bool { return c.Queues.MaxDepth == 7 }}},
		"discovery.mdns": {
			// The example: false is the default, so this one only
			// shows that the variable is accepted.
			{[]string{"PYCOMMS_DISCOVERY__MDNS=false"}, func(c *Config) bool { return !c.Discovery.MDNS }},
			{[]string{"PYCOMMS_DISCOVERY__MDNS=true", "PYCOMMS_TRUST__SECRET=" + secret}, func(c *Config) bool { return c.Discovery.MDNS }},
		},
		"discovery": {{[]string{"PYCOMMS_DISCOVERY={mdns: true, dead_after: 7s}", "PYCOMMS_TRUST__SECRET=" + secret}, func(c *Config) bool {
			return c.Discovery.MDNS && c.Discovery.DeadAfter == 7*time.Second
		}}},
		"plugins": {{[]string{"PYCOMMS_PLUGINS=[{name: a, path: 'builtin:echo', services: [a]}, {name: b, path: '" + wasm + "'}]"}, func(c *Config) bool {
			return len(c.Plugins) == 2 && c.Plugins[0].Name == "a" && slices.Equal(c.Plugins[0].Services, []string{"a"}) && c.Plugins[1].Path == wasm
		}}},
		"plugins[].name": {{[]string{"PYCOMMS_PLUGINS__0__NAME=renamed"}, func(c *Config) bool { return c.Plugins[0].Name == "renamed" }}},
		"plugins[].path": {{[]string{"PYCOMMS_PLUGINS__0__PATH=" + wasm}, func(c *Config) bool { return c.Plugins[0].Path == wasm }}},
		"plugins[].kind": {
			{[]string{"PYCOMMS_PLUGINS__0__KIND=handler"}, func(c *Config) bool { return c.Plugins[0].Kind == "handler" }},
			{[]string{tk, ta}, func(c *Config) bool { return c.Plugins[0].Kind == "transport" }},
		},
		"plugins[].services": {
			{[]string{"PYCOMMS_PLUGINS__0__SERVICES=x,y.z"}, func(c *Config) bool { return slices.Equal(c.Plugins[0].Services, []string{"x", "y.z"}) }},
			{[]string{"PYCOMMS_PLUGINS__0__SERVICES=[x]"}, func(c *Config) bool { return slices.Equal(c.Plugins[0].Services, []string{"x"}) }},
		},
		"plugins[].queues": {
			{[]string{"PYCOMMS_PLUGINS__0__QUEUES=orders,billing.v1"}, func(c *Config) bool {
				return slices.Equal(c.Plugins[0].Queues, []string{"orders", "billing.v1"})
			}},
		},
		"plugins[].accepts": {
			{[]string{"PYCOMMS_PLUGINS__0__ACCEPTS=application/cbor,Application/JSON"}, func(c *Config) bool {
				return slices.Equal(c.Plugins[0].Accepts, []string{"application/cbor", "application/json"})
			}},
		},
		"plugins[].encodings": {
			{[]string{"PYCOMMS_PLUGINS__0__ACCEPTS=application/cbor", "PYCOMMS_PLUGINS__0__ENCODINGS=gzip"}, func(c *Config) bool {
				return slices.Equal(c.Plugins[0].Encodings, []string{"gzip"})
			}},
		},
		"plugins[].topics": {
			{[]string{"PYCOMMS_PLUGINS__0__TOPICS=a.>,b.*"}, func(c *Config) bool { return slices.Equal(c.Plugins[0].Topics, []string{"a.>", "b.*"}) }},
			{[]string{"PYCOMMS_PLUGINS__0__TOPICS=['a.>', b.*]"}, func(c *Config) bool { return slices.Equal(c.Plugins[0].Topics, []string{"a.>", "b.*"}) }},
		},
		"plugins[].instances": {{[]string{"PYCOMMS_PLUGINS__0__INSTANCES=8"}, func(c *Config) bool { return c.Plugins[0].Instances == 8 }}},
		"plugins[].queue":     {{[]string{"PYCOMMS_PLUGINS__0__QUEUE=9"}, func(c *Config) bool { return c.Plugins[0].Queue == 9 }}},
		"plugins[].watch":     {{[]string{"PYCOMMS_PLUGINS__0__WATCH=false"}, func(c *Config) bool { return !c.Plugins[0].Watch }}},
		"plugins[].limits.memory": {
			{[]string{"PYCOMMS_PLUGINS__0__LIMITS__MEMORY=32MiB"}, func(c *Config) bool { return c.Plugins[0].Limits.Memory == 32<<20 }},
			{[]string{"PYCOMMS_PLUGINS__0__LIMITS={memory: 32MiB, timeout: 2s}"}, func(c *Config) bool {
				return c.Plugins[0].Limits.Memory == 32<<20 && c.Plugins[0].Limits.Timeout == 2*time.Second
			}},
		},
		"plugins[].limits.timeout":    {{[]string{"PYCOMMS_PLUGINS__0__LIMITS__TIMEOUT=10s"}, func(c *Config) bool { return c.Plugins[0].Limits.Timeout == 10*time.Second }}},
		"plugins[].limits.max_reply":  {{[]string{"PYCOMMS_PLUGINS__0__LIMITS__MAX_REPLY=2MiB"}, func(c *Config) bool { return c.Plugins[0].Limits.MaxReply == 2<<20 }}},
		"plugins[].limits.max_module": {{[]string{"PYCOMMS_PLUGINS__0__LIMITS__MAX_MODULE=2MiB"}, func(c *Config) bool { return c.Plugins[0].Limits.MaxModule == 2<<20 }}},
		"plugins[].grants": {
			{[]string{"PYCOMMS_PLUGINS__0__GRANTS=log,call"}, func(c *Config) bool {
				return slices.Equal(c.Plugins[0].Grants, []abi.Capability{abi.CapLog, abi.CapCall})
			}},
			{[]string{"PYCOMMS_PLUGINS__0__GRANTS=[]"}, func(c *Config) bool { return len(c.Plugins[0].Grants) == 0 }},
		},
		"plugins[].limits.read_buffer": {{[]string{tk, ta, "PYCOMMS_PLUGINS__0__LIMITS__READ_BUFFER=8KiB"}, func(c *Config) bool { return c.Plugins[0].Limits.ReadBuffer == 8<<10 }}},
		"plugins[].limits.write_buffer": {{[]string{tk, ta, "PYCOMMS_PLUGINS__0__LIMITS__WRITE_BUFFER=8KiB"}, func(c *Config) bool {
			return c.Plugins[0].Limits.WriteBuffer == 8<<10
		}}},
		"plugins[].limits.max_conns": {{[]string{tk, ta, "PYCOMMS_PLUGINS__0__LIMITS__MAX_CONNS=7"}, func(c *Config) bool { return c.Plugins[0].Limits.MaxConns == 7 }}},
		"plugins[].dial": {{[]string{tk, "PYCOMMS_PLUGINS__0__DIAL=[tcp://127.0.0.1:6379, tls://broker.example:6380]"}, func(c *Config) bool {
			d := c.Plugins[0].Transport.Dial
			return len(d) == 2 && d[1].Scheme == "tls" && d[1].Addr == "broker.example:6380"
		}}},
		"plugins[].accept": {{[]string{tk, ta}, func(c *Config) bool {
			return len(c.Plugins[0].Transport.Accept) == 1 && c.Plugins[0].Transport.Accept[0].Addr == "127.0.0.1:0"
		}}},
		"plugins[].allow_from": {{[]string{tk, "PYCOMMS_PLUGINS__0__ACCEPT=[tcp://0.0.0.0:0]", "PYCOMMS_PLUGINS__0__ALLOW_FROM=[10.0.0.0/8, 192.168.1.7]"}, func(c *Config) bool {
			return len(c.Plugins[0].Transport.AllowFrom) == 2 && c.Plugins[0].Transport.AllowFrom[1].String() == "192.168.1.7/32"
		}}},
		"plugins[].open": {{[]string{tk, "PYCOMMS_PLUGINS__0__ACCEPT=[tcp://0.0.0.0:0]", "PYCOMMS_PLUGINS__0__OPEN=true"}, func(c *Config) bool { return c.Plugins[0].Transport.Open }}},
		"plugins[].ca":   {{[]string{tk, "PYCOMMS_PLUGINS__0__DIAL=[tls://a.example:1]", "PYCOMMS_PLUGINS__0__CA=" + ca}, func(c *Config) bool { return c.Plugins[0].Transport.CA == ca }}},
		"plugins[].secrets": {{[]string{"PYCOMMS_PLUGINS__0__SECRETS=[prefix]"}, func(c *Config) bool {
			return slices.Equal(c.Plugins[0].Secrets, []string{"prefix"}) && c.Plugins[0].RedactedConfig()["prefix"] == Redacted
		}}},
		"plugins[].config": {
			{[]string{"PYCOMMS_PLUGINS__0__CONFIG__DB__HOST=db.local"}, func(c *Config) bool {
				return reflect.DeepEqual(c.Plugins[0].Config, map[string]any{"prefix": "> ", "db": map[string]any{"host": "db.local"}})
			}},
			{[]string{"PYCOMMS_PLUGINS__0__CONFIG={n: 3, tags: [a, b]}"}, func(c *Config) bool {
				return reflect.DeepEqual(c.Plugins[0].Config, map[string]any{"n": 3, "tags": []any{"a", "b"}})
			}},
		},
	}

	file := writeConfig(t, "plugins:\n  - name: echo\n    path: builtin:echo\n    services: [echo]\n    config: {prefix: \"> \"}\n")
	base, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	// changed counts, per key, the cases that changed its value: each
	// such case must change Digest and be classed by reload as declared.
	changed := map[string]int{}
	keys := documentedKeys(t)
	for _, key := range keys {
		if _, ok := cases[key]; !ok {
			t.Errorf("KEYS.md documents %s, but this test sets no environment variable for it: add a case", key)
		}
	}
	for key, list := range cases {
		if !slices.Contains(keys, key) {
			t.Errorf("case %s: KEYS.md has no row for it", key)
		}
		for i, c := range list {
			paths := []string{file}
			if !strings.HasPrefix(key, "plugins[]") {
				paths = append(paths, "") // the built-in defaults
			}
			for _, path := range paths {
				name := fmt.Sprintf("%s/%d/file=%v", key, i, path != "")
				cfg, err := Load(path, c.env)
				if err != nil {
					t.Errorf("%s: Load with %q: %v", name, c.env, err)
					continue
				}
				if !c.check(cfg) {
					t.Errorf("%s: %q did not take effect: %+v", name, c.env, cfg)
				}
				if path == file {
					checkReloadClass(t, name, key, base, cfg, changed)
				}
			}
		}
	}
	for _, k := range Keys() {
		// The keys grouping others are covered by theirs.
		usesEnv := slices.ContainsFunc(cases[k.Path], func(c tc) bool {
			return slices.ContainsFunc(c.env, func(kv string) bool { return strings.HasPrefix(kv, k.Env()+"=") })
		})
		if !usesEnv {
			t.Errorf("no case of %s sets %s, its declared variable", k.Path, k.Env())
		}
		if changed[k.Path] == 0 && (k.node != nil || k.plugin != nil) {
			t.Errorf("no case changes %s, so nothing checks that Digest and reload see it change: add one", k.Path)
		}
	}
}

// checkReloadClass checks, for the key a case of TestEveryKeyFromEnv sets,
// that a change of its value changes Digest and that reload treats it as
// the table declares: a Restart key is named by RestartKeysChanged, a Live
// one is not (and, in a plugin, makes SamePlugin false).
func checkReloadClass(t *testing.T, name, path string, base, cfg *Config, changed map[string]int) {
	t.Helper()
	i := slices.IndexFunc(keys, func(k Key) bool { return k.Path == path })
	if i < 0 {
		t.Errorf("%s: %s is not in the key table", name, path)
		return
	}
	k := keys[i]
	var diff bool
	switch {
	case k.node != nil:
		diff = !sameValue(k.node(base), k.node(cfg))
	case k.plugin != nil:
		diff = !sameValue(k.plugin(&base.Plugins[0]), k.plugin(&cfg.Plugins[0]))
		if diff && SamePlugin(base.Plugins[0], cfg.Plugins[0]) {
			t.Errorf("%s: %s changed but SamePlugin says the plugin is the same", name, path)
		}
	default:
		return
	}
	if !diff {
		return
	}
	changed[path]++
	if base.Digest() == cfg.Digest() {
		t.Errorf("%s: %s changed but Digest did not", name, path)
	}
	restart := RestartKeysChanged(base, cfg)
	if got := slices.Contains(restart, path); got != (k.Reload == Restart) {
		t.Errorf("%s: RestartKeysChanged = %q; %s is declared %s", name, restart, path, k.Reload)
	}
}

// TestControlShorthandEnv: the scalar form of control, in the file or in
// PYCOMMS_CONTROL, combines with the variables of control's keys.
func TestControlShorthandEnv(t *testing.T) {
	pinMachine(t, "/srv/wd")
	for _, tt := range []struct {
		file, env  string
		listen     string
		allowHosts []string
	}{
		{"control: 127.0.0.1:1\n", "PYCOMMS_CONTROL__ALLOW_HOSTS=n", "127.0.0.1:1", []string{"n"}},
		{"control: {listen: 127.0.0.1:1, allow_hosts: [n]}\n", "PYCOMMS_CONTROL=127.0.0.1:2", "127.0.0.1:2", []string{"n"}},
		{"control: {listen: 127.0.0.1:1, allow_hosts: [n]}\n", "PYCOMMS_CONTROL=", "", []string{"n"}},
		{"control: {allow_hosts: [n]}\n", "PYCOMMS_CONTROL={listen: '127.0.0.1:3'}", "127.0.0.1:3", nil},
	} {
		c, err := Load(writeConfig(t, tt.file), []string{tt.env})
		if err != nil {
			t.Errorf("%q with %s: %v", tt.file, tt.env, err)
			continue
		}
		if c.Control != tt.listen || !slices.Equal(c.ControlAllowHosts, tt.allowHosts) {
			t.Errorf("%q with %s: control %q allow_hosts %q, want %q %q", tt.file, tt.env, c.Control, c.ControlAllowHosts, tt.listen, tt.allowHosts)
		}
	}
}

// TestEnvFlowValues covers lists and mappings given whole in YAML flow
// syntax: errors name the variable, and a whole mapping is applied before
// the overrides of its keys, whatever the order of the environment.
func TestEnvFlowValues(t *testing.T) {
	pinMachine(t, "/srv/wd")
	c, err := Load("", []string{"PYCOMMS_LOG__LEVEL=error", "PYCOMMS_LOG={level: debug, format: json}"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level.String() != "ERROR" || c.Log.Format != "json" {
		t.Errorf("log = %+v, want level error (the key's own variable) and format json (the mapping's)", c.Log)
	}
	file := writeConfig(t, "log: {format: json}\n")
	if c, err = Load(file, []string{"PYCOMMS_LOG={level: warn}"}); err != nil {
		t.Fatal(err)
	}
	if c.Log.Format != "text" || c.Log.Level.String() != "WARN" {
		t.Errorf("log = %+v: a mapping from the environment replaces the file's whole", c.Log)
	}
	for _, tt := range []struct{ env, want string }{
		{"PYCOMMS_PEERS=[a:1, {x: 1}]", "env PYCOMMS_PEERS: peers[1]: expected a string, got a mapping"},
		{"PYCOMMS_DISCOVERY={mdns: maybe}", "env PYCOMMS_DISCOVERY: discovery.mdns: expected true or false, got \"maybe\""},
		{"PYCOMMS_LOG={level: debug, level: info}", "env PYCOMMS_LOG: log: in the YAML flow value: level: duplicate key (first defined at line 1)"},
		{"PYCOMMS_LOG={level: [}", "env PYCOMMS_LOG: log: invalid YAML flow value:"},
		{"PYCOMMS_PLUGINS={name: a}", "env PYCOMMS_PLUGINS: plugins: the plugin list is set whole in YAML flow syntax"},
		{"PYCOMMS_LOG={a: &x [*x]}", "env PYCOMMS_LOG: log: in the YAML flow value: alias *x is used inside the value it names"},
	} {
		_, err := Load("", []string{tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.env, err, tt.want)
		}
	}
}
