package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestValidNodeID(t *testing.T) {
	tests := []struct {
		id      string
		wantErr string // a part of the message; "" for a valid id
	}{
		{"abcdefghijklmnopqrstuvwxyz234567", ""},
		{strings.Repeat("a", 32), ""},
		{strings.Repeat("7", 32), ""},
		{"", "0 characters, want 32"},
		{strings.Repeat("a", 31), "31 characters, want 32"},
		{strings.Repeat("a", 33), "33 characters, want 32"},
		{"A" + strings.Repeat("a", 31), "upper-case 'A' at position 0, node ids are lower case"},
		{strings.Repeat("a", 31) + "1", "character '1' at position 31 is not in a-z2-7"},
		{strings.Repeat("a", 30) + "8a", "character '8' at position 30 is not in a-z2-7"},
		{strings.Repeat("a", 31) + "=", "character '=' at position 31 is not in a-z2-7"}, // no padding
		{"\x00" + strings.Repeat("a", 31), "character '\\x00' at position 0 is not in a-z2-7"},
	}
	for _, tt := range tests {
		err := ValidNodeID(tt.id)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidNodeID(%q) = %v, want nil", tt.id, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidNodeID(%q) = %v, want an error with %q", tt.id, err, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.id)):
			t.Errorf("ValidNodeID(%q) = %v, want it to quote the id", tt.id, err)
		}
	}
}

func TestParsePeer(t *testing.T) {
	tests := []struct {
		in        string
		transport string
		addr      string
		reason    string // a part of it; "" for a valid address
	}{
		{"10.0.0.2:7400", "", "10.0.0.2:7400", ""},
		{"tcp://10.0.0.2:7400", "tcp", "10.0.0.2:7400", ""},
		{"quic://10.0.0.2:7400", "quic", "10.0.0.2:7400", ""},
		{"TCP://node-b.example.com:7400", "tcp", "node-b.example.com:7400", ""},
		{"Node-B:07400", "", "node-b:7400", ""},
		{"[::1]:7400", "", "[::1]:7400", ""},
		{"quic://[2001:DB8:0::1]:1", "quic", "[2001:db8::1]:1", ""},
		{"[fe80::1%eth0]:7400", "", "[fe80::1%eth0]:7400", ""},
		{"localhost:65535", "", "localhost:65535", ""},
		{"", "", "", "it is empty"},
		{"udp://a:1", "", "", `unknown scheme "udp" (use tcp://HOST:PORT, quic://HOST:PORT, or HOST:PORT to try TCP, then QUIC)`},
		{"://a:1", "", "", `unknown scheme ""`},
		{"node-b", "", "", "the port is missing"},
		{"tcp://node-b", "", "", "the port is missing"},
		{"node-b:", "", "", "the port is missing"},
		{"[::1]", "", "", "the port is missing"},
		{"::1:7400", "", "", "too many colons in address"},
		{"node-b:0", "", "", "port 0 is not allowed for a peer"},
		{"node-b:65536", "", "", `port "65536" is not a number from 1 to 65535`},
		{"node-b:+1", "", "", `port "+1" is not a number`},
		{"node-b:http", "", "", `port "http" is not a number`},
		{"tcp://node-b:7400/x", "", "", `port "7400/x" is not a number`},
		{":7400", "", "", "the host is empty"},
		{"tcp://:7400", "", "", "the host is empty"},
		{"node_b:7400", "", "", `host "node_b" is neither an IP address nor a host name`},
		{"user@node-b:7400", "", "", `host "user@node-b" is neither`},
	}
	for _, tt := range tests {
		transport, addr, reason := parsePeer(tt.in)
		if tt.reason == "" {
			if reason != "" || transport != tt.transport || addr != tt.addr {
				t.Errorf("parsePeer(%q) = %q, %q, %q; want %q, %q", tt.in, transport, addr, reason, tt.transport, tt.addr)
			}
			continue
		}
		if !strings.Contains(reason, tt.reason) || transport != "" || addr != "" {
			t.Errorf("parsePeer(%q) = %q, %q, %q; want a reason with %q", tt.in, transport, addr, reason, tt.reason)
		}
	}
}

func TestTrustOpen(t *testing.T) {
	tests := []struct {
		trust Trust
		open  bool
	}{
		{Trust{}, true},
		{Trust{Nodes: []string{}}, true},
		{Trust{Secret: "0123456789abcdef"}, false},
		{Trust{Nodes: []string{strings.Repeat("a", 32)}}, false},
		{Trust{CA: "/etc/pycomms/ca.pem"}, false},
	}
	for _, tt := range tests {
		if got := tt.trust.Open(); got != tt.open {
			t.Errorf("%+v.Open() = %v, want %v", tt.trust, got, tt.open)
		}
	}
}

func TestWarnings(t *testing.T) {
	peer := []Peer{{Raw: "a:1", Addr: "a:1"}}
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"open, listening", Config{Listen: Listen{TCP: "0.0.0.0:7400"}}, []string{openWarning}},
		{"open, QUIC only", Config{Listen: Listen{QUIC: ":7400"}}, []string{openWarning}},
		{"open, dialing only", Config{Peers: peer}, []string{openWarning}},
		{"open on purpose", Config{Listen: Listen{TCP: "0.0.0.0:7400"}, Trust: Trust{AllowOpen: true}}, []string{openOnPurposeWarning}},
		{"open, no mesh at all", Config{Peers: []Peer{}}, nil},
		{"secret", Config{Listen: Listen{TCP: ":1"}, Peers: peer, Trust: Trust{Secret: "0123456789abcdef"}}, nil},
		{"pinned nodes", Config{Listen: Listen{TCP: ":1"}, Trust: Trust{Nodes: []string{strings.Repeat("a", 32)}}}, nil},
		{"ca", Config{Peers: peer, Trust: Trust{CA: "/ca.pem"}}, nil},
	}
	for _, tt := range tests {
		if got := tt.cfg.Warnings(); !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("%s: Warnings() = %q, want %q", tt.name, got, tt.want)
		}
	}
	if !strings.HasPrefix(openWarning, "trust: none configured: ") {
		t.Errorf("the warning does not name trust: %q", openWarning)
	}

	// The built-in defaults listen, with no trust rule.
	pinMachine(t, "/srv/wd")
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Warnings(); !slices.Equal(got, []string{openWarning}) {
		t.Errorf("Warnings() of the built-in defaults = %q", got)
	}
	c, err = Load("", []string{"PYCOMMS_LISTEN__TCP=", "PYCOMMS_LISTEN__QUIC="})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Warnings(); got != nil {
		t.Errorf("Warnings() with both listeners off and no peers = %q, want nil", got)
	}
}

func TestDefaultDataDir(t *testing.T) {
	tests := []struct {
		dir  string
		err  error
		want string
	}{
		{"/home/u/.local/share", nil, "/home/u/.local/share/pycomms-host/node-a"},
		{"", errors.New("$HOME is not defined"), filepath.Join(os.TempDir(), "pycomms-host-data", "node-a")},
		{"relative", nil, filepath.Join(os.TempDir(), "pycomms-host-data", "node-a")},
	}
	for _, tt := range tests {
		old := osUserDataDir
		osUserDataDir = func() (string, error) { return tt.dir, tt.err }
		got := defaultDataDir("node-a")
		osUserDataDir = old
		if got != tt.want {
			t.Errorf("defaultDataDir() with %q, %v = %q, want %q", tt.dir, tt.err, got, tt.want)
		}
	}
}

func TestUserDataDir(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	t.Setenv("XDG_DATA_HOME", "/xdg/data")
	if got, err := userDataDir(); err != nil || got != "/xdg/data" {
		t.Errorf("userDataDir() with XDG_DATA_HOME = %q, %v", got, err)
	}
	// A relative XDG_DATA_HOME is ignored, as the XDG spec says.
	for _, xdg := range []string{"", "rel/data"} {
		t.Setenv("XDG_DATA_HOME", xdg)
		if got, err := userDataDir(); err != nil || got != "/home/u/.local/share" {
			t.Errorf("userDataDir() with XDG_DATA_HOME=%q = %q, %v", xdg, got, err)
		}
	}
}

// TestDataDirPerNode checks that the default data directory, and with it
// the key, follows the node name, including one set from the environment.
func TestDataDirPerNode(t *testing.T) {
	pinMachine(t, "/srv/wd")
	c, err := Load("", []string{"PYCOMMS_NODE__NAME=node-b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "/home/test/.local/share/pycomms-host/node-b"; c.DataDir != want || c.Identity.Key != want+"/node.key" {
		t.Errorf("DataDir, Identity.Key = %q, %q; want %q and node.key in it", c.DataDir, c.Identity.Key, want)
	}
	c, err = Load("", []string{"PYCOMMS_NODE__NAME=node-b", "PYCOMMS_DATA_DIR=state"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/srv/wd/state" || c.Identity.Key != "/srv/wd/state/node.key" {
		t.Errorf("DataDir, Identity.Key = %q, %q; want them under /srv/wd/state", c.DataDir, c.Identity.Key)
	}
}

// TestSecretNotShown checks that no message about trust.secret holds its
// value, whatever its type.
func TestSecretNotShown(t *testing.T) {
	for _, v := range []string{"hunter2", "123456789", "[s3cr3t]", "{s3cr3t: x}", "true"} {
		path := writeConfig(t, "trust: {secret: "+v+"}\n")
		_, err := Load(path, nil)
		if err == nil {
			t.Errorf("secret %s: no error", v)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "trust.secret") {
			t.Errorf("secret %s: error %q does not name trust.secret", v, msg)
		}
		if secret := strings.Trim(v, "[]{}"); strings.Contains(msg, strings.TrimSuffix(secret, ": x")) {
			t.Errorf("secret %s: error shows it: %q", v, msg)
		}
	}
	_, err := Load("", []string{"PYCOMMS_TRUST__SECRET=hunter2"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "env PYCOMMS_TRUST__SECRET: trust.secret: is 7 bytes long") {
		t.Errorf("short secret from env: %v", err)
	}
}
