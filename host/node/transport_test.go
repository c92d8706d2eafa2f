package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

const transportYAML = `
plugins:
  - name: wire
    path: %s
    kind: transport
    services: [wire]
    accept: [tcp://127.0.0.1:0]
    grants: [publish]
    config: {auth: {token: s3cr3t-value}}
    secrets: [auth.token]
`

// TestTransportInNode: a configured transport accepts through the node,
// publishes into it, carries its service out, and /v1/plugins shows its
// connections and counters with its secret redacted; a config reload that
// changes it restarts it.
func TestTransportInNode(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "wire.wasm")
	copyFile(t, repo("testdata", "wat", "transport_echo.wasm"), wasm)
	_, c, logs := startNode(t, dir, fmt.Sprintf(transportYAML, wasm))
	ctx := context.Background()

	info := transportInfo(t, c)
	if info.State != control.PluginServing || info.Kind != "transport" || len(info.Transport.Listening) != 1 {
		t.Fatalf("plugins shows %+v", info)
	}
	if fmt.Sprint(info.Config) != "map[auth:map[token:[redacted]]]" {
		t.Errorf("config shown as %v, want the token redacted", info.Config)
	}
	events := make(chan *message.Message, 4)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.Subscribe(sctx, "wire.in", func(m *message.Message) error { events <- m; return nil })

	addr := strings.TrimPrefix(info.Transport.Listening[0], "tcp://")
	conn, err := net.DialTimeout("tcp", addr, eventuallyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(eventuallyTimeout))
	// The subscription may not be in place yet: write until an event comes.
	deadline := time.Now().Add(eventuallyTimeout)
	var got *message.Message
	for got == nil && time.Now().Before(deadline) {
		conn.Write([]byte("hello\n"))
		buf := make([]byte, 6)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello\n" {
			t.Fatalf("echo %q, %v", buf, err)
		}
		select {
		case got = <-events:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got == nil || string(got.Payload) != "hello\n" {
		t.Fatalf("no event from the transport on wire.in: %v", got)
	}
	reply, err := c.Call(ctx, "wire.x", []byte("out"), nil, eventuallyTimeout)
	if err != nil || string(reply) != "out" {
		t.Fatalf("call through the transport: %q, %v", reply, err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "out" {
		t.Fatalf("the peer read %q, %v", buf, err)
	}
	info = transportInfo(t, c)
	if ti := info.Transport; len(ti.Conns) != 1 || ti.Accepted != 1 || ti.MessagesOut != 1 || ti.BytesIn == 0 {
		t.Errorf("transport counters %+v", ti)
	}
	if strings.Contains(logs.String(), "s3cr3t-value") {
		t.Error("the secret is in the log")
	}

	// A reload that changes the transport restarts it: the connection closes.
	cfg, _ := os.ReadFile(filepath.Join(dir, "pycomms.yaml"))
	cfg = []byte(strings.Replace(string(cfg), "grants: [publish]", "grants: [publish, log]", 1))
	if err := os.WriteFile(filepath.Join(dir, "pycomms.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the old transport's connection was not closed: %v", err)
	}
	info = transportInfo(t, c)
	if info.State != control.PluginServing || len(info.Grants) != 2 {
		t.Errorf("after the reload: %+v", info)
	}
}

func transportInfo(t *testing.T, c *control.Client) control.PluginInfo {
	t.Helper()
	return transportNamed(t, c, "wire")
}

// gatewayAddr is where the transport "gateway" accepts.
func gatewayAddr(t *testing.T, c *control.Client) string {
	t.Helper()
	l := transportNamed(t, c, "gateway").Transport.Listening
	if len(l) != 1 {
		t.Fatalf("gateway listens on %v", l)
	}
	return strings.TrimPrefix(l[0], "tcp://")
}

func transportNamed(t *testing.T, c *control.Client, name string) control.PluginInfo {
	t.Helper()
	ps, err := c.Plugins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == name {
			if p.Transport == nil {
				t.Fatalf("plugin %s has no transport info: %+v", name, p)
			}
			return p
		}
	}
	t.Fatalf("no plugin %s in %+v", name, ps)
	return control.PluginInfo{}
}

// TestTransportHotReload: a new file for a transport restarts it with the
// new version: the old connections close, new ones get the new code.
func TestTransportHotReload(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "wire.wasm")
	copyFile(t, repo("testdata", "wat", "transport_echo.wasm"), wasm)
	_, c, _ := startNode(t, dir, fmt.Sprintf(transportYAML, wasm))
	before := transportInfo(t, c)
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(before.Transport.Listening[0], "tcp://"), eventuallyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(eventuallyTimeout))
	replaceFile(t, repo("testdata", "wat", "transport_foreign.wasm"), wasm)
	if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the old version's connection stayed open after the file changed")
	}
	var after control.PluginInfo
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		after = transportInfo(t, c)
		if after.Version == before.Version || after.State != control.PluginServing {
			return fmt.Errorf("still %s, %s", after.Version, after.State)
		}
		return nil
	})
	conn, err = net.DialTimeout("tcp", strings.TrimPrefix(after.Transport.Listening[0], "tcp://"), eventuallyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(eventuallyTimeout))
	conn.Write([]byte("x"))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "NF\n" {
		t.Fatalf("the new version answered %q, %v; want transport_foreign's NF", buf, err)
	}
}

// TestValidateTransportKinds: validate checks a transport's module as a
// transport: a handler module configured as one, and a transport module
// configured as a handler, are refused with both kinds named.
func TestValidateTransportKinds(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, repo("testdata", "wat", "echo.wasm"), filepath.Join(dir, "echo.wasm"))
	copyFile(t, repo("testdata", "wat", "transport_echo.wasm"), filepath.Join(dir, "wire.wasm"))
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(`cache_dir: cache
plugins:
  - {name: a, path: echo.wasm, kind: transport, accept: ["tcp://127.0.0.1:0"]}
  - {name: b, path: wire.wasm, services: [b]}
  - {name: c, path: wire.wasm, kind: transport, dial: ["tcp://127.0.0.1:1"]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Validate(context.Background(), Options{ConfigPath: path})
	var ce *config.Errors
	if !errors.As(err, &ce) || len(ce.List) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	for i, want := range []string{
		`plugins[0].path: plugin "a": not a pycomms ABI v1 transport plugin: the module is a handler plugin (it exports "pycomms_handle"): configure it with kind: handler`,
		`plugins[1].path: plugin "b": not a pycomms ABI v1 handler plugin: the module is a transport plugin (it exports "pycomms_transport_event"): configure it with kind: transport`,
	} {
		if got := ce.List[i].Error(); !strings.Contains(got, want) {
			t.Errorf("error %d: %q does not contain %q", i, got, want)
		}
	}
}

// TestTransportBecomesHandler: a reload that turns a transport into a
// handler of the same name leaves the handler's routes in place.
func TestTransportBecomesHandler(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "wire.wasm")
	copyFile(t, repo("testdata", "wat", "transport_echo.wasm"), wasm)
	_, c, _ := startNode(t, dir, fmt.Sprintf(transportYAML, wasm))
	copyFile(t, repo("testdata", "wat", "echo.wasm"), filepath.Join(dir, "echo.wasm"))
	cfg, _ := os.ReadFile(filepath.Join(dir, "pycomms.yaml"))
	s := string(cfg)
	s = s[:strings.Index(s, "plugins:")] + "plugins:\n  - {name: wire, path: echo.wasm, services: [wire]}\n"
	if err := os.WriteFile(filepath.Join(dir, "pycomms.yaml"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Call(context.Background(), "wire.x", []byte("hi"), nil, eventuallyTimeout)
	if err != nil || string(reply) != "HI" {
		t.Fatalf("the handler that replaced the transport: %q, %v", reply, err)
	}
}
