package config

import (
	"strings"
	"testing"
)

// TestTransportKeys: a transport's sockets decode, and every mistake is
// named by its key, with the secret's value nowhere in the errors.
func TestTransportKeys(t *testing.T) {
	good := writeConfig(t, `plugins:
  - name: gw
    path: builtin:linejson
    kind: transport
    services: [legacy]
    dial: [tcp://127.0.0.1:6379, tls://broker.example:6380]
    accept: [tcp://0.0.0.0:7500]
    allow_from: [10.0.0.0/8, 127.0.0.1]
    limits: {read_buffer: 4KiB, max_conns: 3}
    config: {auth: {password: hunter2}, db: 0}
    secrets: [auth.password]
`)
	c, err := Load(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plugins[0]
	tr := p.Transport
	if p.Kind != "transport" || len(tr.Dial) != 2 || tr.Dial[1].Scheme != "tls" || tr.Accept[0].Addr != "0.0.0.0:7500" ||
		len(tr.AllowFrom) != 2 || tr.AllowFrom[1].String() != "127.0.0.1/32" || p.Limits.ReadBuffer != 4096 || p.Limits.MaxConns != 3 {
		t.Errorf("decoded %+v", p)
	}
	red := p.RedactedConfig()
	if red["auth"].(map[string]any)["password"] != Redacted || p.Config["auth"].(map[string]any)["password"] != "hunter2" || red["db"] != 0 {
		t.Errorf("redacted config %v (config %v)", red, p.Config)
	}

	bad := writeConfig(t, `plugins:
  - name: gw
    path: builtin:linejson
    kind: transport
    dial: [redis://a:1, tcp://nohost]
    accept: [tls://127.0.0.1:1, tcp://0.0.0.0:7500]
    allow_from: [10.0.0.0/33]
    config: {password: hunter2}
    secrets: [pasword]
  - name: h
    path: builtin:echo
    dial: [tcp://127.0.0.1:1]
    limits: {read_buffer: 4KiB}
  - name: t2
    path: builtin:x
    kind: transport
    accept: [tcp://0.0.0.0:7501]
`)
	_, err = Load(bad, nil)
	if err == nil {
		t.Fatal("a bad transport config loaded")
	}
	msg := err.Error()
	for _, want := range []string{
		`plugins[0].dial[0]: "redis://a:1" is not a tcp://host:port or tls://host:port address`,
		`plugins[0].dial[1]: "tcp://nohost"`,
		`plugins[0].accept[0]: "tls://127.0.0.1:1" is not a tcp://host:port address`,
		`plugins[0].allow_from[0]: "10.0.0.0/33" is not a network`,
		`plugins[0].secrets[0]: "pasword" is not a key of config`,
		`plugins[1].dial: only a plugin of kind transport has dial`,
		`plugins[1].limits.read_buffer: only a plugin of kind transport`,
		`plugins[2].accept[0]: "tcp://0.0.0.0:7501" accepts connections from other machines: set allow_from`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors lack %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("a secret value is in the errors:\n%s", msg)
	}
}
