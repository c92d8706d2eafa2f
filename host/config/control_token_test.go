package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlExposure checks item 4 of issue 18: a control API beyond
// loopback is refused at load (so at start and by validate) without
// control.token_file, naming the key; a unix socket or loopback needs none.
func TestControlExposure(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cret-token-0123456789"
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask aside
			t.Fatal(err)
		}
		return p
	}
	good := write("good.token", secret+"\n", 0o600)
	write("wide.token", secret, 0o644)
	write("short.token", "abc", 0o600)
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error; none: loads
	}{
		{"loopback", "control: 127.0.0.1:0\n", nil},
		{"loopback v6", "control: '[::1]:0'\n", nil},
		{"unix", "control: unix:///run/pycomms/control.sock\n", nil},
		{"any v4", "control: 0.0.0.0:7480\n", []string{"control:", `"0.0.0.0:7480"`, "control.token_file is not set"}},
		{"any, no host", "control: {listen: ':7480'}\n", []string{"control.listen:", "control.token_file is not set"}},
		{"any v6", "control: {listen: '[::]:7480'}\n", []string{"control.listen:", "control.token_file"}},
		{"name", "control: {listen: 'node-a.internal:7480'}\n", []string{"control.token_file"}},
		{"any with token", "control: {listen: 0.0.0.0:7480, token_file: good.token}\n", nil},
		{"loopback with token", "control: {listen: 127.0.0.1:7480, token_file: good.token}\n", nil},
		{"wide token file", "control: {listen: 0.0.0.0:7480, token_file: wide.token}\n",
			[]string{"control.token_file:", "mode 0644", "chmod 600"}},
		{"short token", "control: {token_file: short.token}\n", []string{"control.token_file:", "3 bytes, fewer than the 16"}},
		{"missing token file", "control: {token_file: nope.token}\n", []string{"control.token_file:", "no such file"}},
		{"unix relative", "control: unix://run/c.sock\n", []string{"not a unix socket address", "not absolute"}},
		{"unix long", "control: unix:///" + strings.Repeat("a", 120) + "\n", []string{"more than the 107"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := write("pycomms.yaml", c.yaml, 0o644)
			cfg, err := Load(path, nil)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if strings.Contains(c.yaml, "token_file") && cfg.ControlTokenFile != good {
					t.Errorf("ControlTokenFile = %q, want %q", cfg.ControlTokenFile, good)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load accepted %q", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the token:\n%v", err)
			}
		})
	}
}
