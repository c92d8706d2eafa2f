package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

const metricsToken = "metrics-test-token-0123456789"

// writeToken writes a token file of mode 0600 into dir.
func writeToken(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "control.token")
	if err := os.WriteFile(p, []byte(metricsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startNodeControl is startNode with a control mapping of the test's own.
func startNodeControl(t *testing.T, dir, controlYAML, cfg string) (*Node, *hosttest.SyncBuffer) {
	t.Helper()
	cfg = "cache_dir: " + sharedCache + "\nlisten: {tcp: 127.0.0.1:0, quic: 127.0.0.1:0}\ndata_dir: " +
		filepath.Join(dir, "data") + "\ncontrol: " + controlYAML + "\n" + cfg
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &hosttest.SyncBuffer{}
	n, err := New(context.Background(), Options{ConfigPath: path, Logger: logs.Logger(), WatchSettle: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, logs
}

// scrape fetches /metrics with the token and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, addr, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: HTTP %d: %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include want (counter, gauge, or a histogram's sample count).
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// counters maps every counter series (and histogram count) to its value.
func counters(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			key := name
			for _, l := range m.Label {
				key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
			}
			switch {
			case m.Counter != nil && strings.HasPrefix(name, "pycomms_"):
				out[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// noneWentDown fails for a counter of before that is lower, or gone, in
// after.
func noneWentDown(t *testing.T, when string, before, after map[string]float64) {
	t.Helper()
	for k, v := range before {
		if a, ok := after[k]; !ok || a < v {
			t.Errorf("%s: %s went from %v to %v (present: %v)", when, k, v, a, ok)
		}
	}
}

// TestMetricsScrape scrapes a real node: calls counted per plugin and
// service in the latency histogram, errors by status, pool and reload
// figures, and every counter still as high after a hot swap of the
// plugin's file and after a config reload.
func TestMetricsScrape(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ab.wasm")
	copyFile(t, repo("testdata", "wat", "echo_a.wasm"), wasm)
	tok := writeToken(t, dir)
	callerWasm := abs(t, "caller.wasm")
	cfg := "plugins:\n  - {name: ab, path: ab.wasm, services: [ab], instances: 3}\n" +
		"  - {name: nocall, path: " + callerWasm + ", services: [nocall]}\n"
	n, _ := startNodeControl(t, dir, "{listen: 127.0.0.1:0, token_file: "+tok+"}", cfg)
	addr := n.ControlAddr()
	c := control.NewClient(addr, control.WithBearerToken(metricsToken))
	ctx := context.Background()

	// Without the token, /metrics is refused.
	if resp, err := http.Get("http://" + addr + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	calls := 0
	call := func() (string, error) {
		calls++
		r, err := c.Call(ctx, "ab.x", []byte("hi"), nil, 5*time.Second)
		return string(r), err
	}
	for range 5 {
		if _, err := call(); err != nil {
			t.Fatal(err)
		}
	}
	_, callErr := c.Call(ctx, "nocall.x", []byte("hi"), nil, 5*time.Second)
	if callErr == nil {
		t.Fatal("nocall.x succeeded; the test needs a plugin error")
	}
	status := message.StatusOf(callErr).String()

	f1 := scrape(t, addr, metricsToken)
	ab := map[string]string{"plugin": "ab", "service": "ab"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pycomms_call_duration_seconds", ab, float64(calls)},
		{"pycomms_call_duration_seconds", map[string]string{"plugin": "nocall", "service": "nocall"}, 1},
		{"pycomms_call_errors_total", map[string]string{"plugin": "nocall", "service": "nocall", "status": status}, 1},
		{"pycomms_plugin_messages_total", map[string]string{"plugin": "ab"}, float64(calls)},
		{"pycomms_plugin_instances", map[string]string{"plugin": "ab"}, 3},
		{"pycomms_plugin_up", map[string]string{"plugin": "ab"}, 1},
		{"pycomms_router_calls_total", nil, float64(calls + 1)},
		{"pycomms_config_reloads_total", map[string]string{"result": "applied"}, 0},
		{"pycomms_plugin_swaps_total", map[string]string{"result": "applied"}, 0},
		{"pycomms_links_open", map[string]string{"transport": "tcp"}, 0},
		{"pycomms_membership_events_total", map[string]string{"event": "found"}, 0},
	} {
		if v, ok := sample(f1, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if _, ok := sample(f1, "pycomms_call_errors_total", ab); ok {
		t.Errorf("an error series for ab, which answered every call")
	}
	for name, f := range f1 {
		if !strings.HasPrefix(name, "pycomms_") {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "subject" || l.GetName() == "method" {
					t.Errorf("%s has a %s label", name, l.GetName())
				}
			}
		}
	}

	// A hot swap: the plugin's counters and its histogram go on from
	// where they were.
	replaceFile(t, repo("testdata", "wat", "echo_b.wasm"), wasm)
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("new version serving", func() error {
		if r, err := call(); r != "B:hi" {
			return fmt.Errorf("%q %v", r, err)
		}
		return nil
	}))
	f2 := scrape(t, addr, metricsToken)
	noneWentDown(t, "after a swap", counters(f1), counters(f2))
	if v, _ := sample(f2, "pycomms_call_duration_seconds", ab); v != float64(calls) {
		t.Errorf("histogram count after the swap = %v, want %d", v, calls)
	}
	if v, _ := sample(f2, "pycomms_plugin_messages_total", map[string]string{"plugin": "ab"}); v != float64(calls) {
		t.Errorf("plugin messages after the swap = %v, want %d (the old version's count kept)", v, calls)
	}
	if v, _ := sample(f2, "pycomms_plugin_swaps_total", map[string]string{"result": "applied"}); v < 1 {
		t.Errorf("swaps applied = %v, want at least 1", v)
	}

	// A config reload that changes the plugin (instances): a new version
	// again, and a counted reload.
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(mustRead(t, path), "instances: 3", "instances: 4", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := call(); err != nil {
		t.Fatal(err)
	}
	f3 := scrape(t, addr, metricsToken)
	noneWentDown(t, "after a config reload", counters(f2), counters(f3))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pycomms_config_reloads_total", map[string]string{"result": "applied"}, 1},
		{"pycomms_plugin_instances", map[string]string{"plugin": "ab"}, 4},
		{"pycomms_call_duration_seconds", ab, float64(calls)},
		{"pycomms_plugin_messages_total", map[string]string{"plugin": "ab"}, float64(calls)},
	} {
		if v, ok := sample(f3, c.name, c.labels); !ok || v != c.want {
			t.Errorf("after reload: %s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}

	// A reload that removes a plugin: its counters stay, frozen, and its
	// gauges go.
	cfgNow := mustRead(t, path)
	i := strings.Index(cfgNow, "  - {name: nocall")
	if i < 0 {
		t.Fatalf("config has no nocall line:\n%s", cfgNow)
	}
	if err := os.WriteFile(path, []byte(cfgNow[:i]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	f4 := scrape(t, addr, metricsToken)
	noneWentDown(t, "after removing a plugin", counters(f3), counters(f4))
	if _, ok := sample(f4, "pycomms_plugin_up", map[string]string{"plugin": "nocall"}); ok {
		t.Errorf("a removed plugin still has pycomms_plugin_up")
	}
	if v, ok := sample(f4, "pycomms_plugin_messages_total", map[string]string{"plugin": "nocall"}); !ok || v != 1 {
		t.Errorf("removed plugin's messages = %v (present %v), want 1, frozen", v, ok)
	}
}

// TestControlUnixSocket: control.listen unix:///path serves the API on a
// socket of mode 0600 that the client reaches with a unix:// address;
// the token applies there too; Close removes the socket.
func TestControlUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "pyc") // socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "control.sock")
	tok := writeToken(t, dir)
	n, logs := startNodeControl(t, dir, "{listen: 'unix://"+sock+"', token_file: "+tok+"}", "plugins:\n  - {name: echo, path: builtin:echo, services: [echo]}\n")
	if got := n.ControlAddr(); got != "unix://"+sock {
		t.Fatalf("ControlAddr = %q", got)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v %v", sock, fi.Mode(), err)
	}
	ctx := context.Background()
	r, err := control.NewClient(n.ControlAddr(), control.WithBearerToken(metricsToken)).Call(ctx, "echo.upper", []byte("hi"), nil, 5*time.Second)
	if err != nil || !strings.Contains(string(r), "HI") {
		t.Fatalf("call over the socket: %q %v", r, err)
	}
	if _, err := control.NewClient(n.ControlAddr()).Call(ctx, "echo.x", nil, nil, time.Second); err == nil {
		t.Error("call without the token succeeded")
	}
	if strings.Contains(logs.String(), metricsToken) {
		t.Errorf("the node's log shows the token")
	}
	n.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}

// TestControlBeyondLoopbackNeedsToken: a node whose control API listens
// on every interface does not start without control.token_file, and the
// error names the key; nothing listens (the refusal comes from the
// config, before any socket).
func TestControlBeyondLoopbackNeedsToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pycomms.yaml")
	cfg := "control: 0.0.0.0:0\nlisten: {tcp: 127.0.0.1:0, quic: 127.0.0.1:0}\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), Options{ConfigPath: path})
	if err == nil {
		n.Close()
		t.Fatal("a node with control on 0.0.0.0 and no token was created")
	}
	if !strings.Contains(err.Error(), "control.token_file") {
		t.Errorf("error does not name control.token_file: %v", err)
	}
}

// TestControlUnixSocketStaleAndLive: a socket file left by a node that
// died is replaced; one a live process listens on is not (the start fails
// as a listen error naming control, and the file stays).
func TestControlUnixSocketStaleAndLive(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "pyc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "control.sock")

	// Stale: bound, closed without unlinking.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("no stale socket to test with: %v", err)
	}
	n, _ := startNodeControl(t, t.TempDir(), "'unix://"+sock+"'", "")
	if _, err := control.NewClient(n.ControlAddr()).Version(context.Background()); err != nil {
		t.Fatalf("node on a replaced stale socket: %v", err)
	}
	n.Close()

	// Live: another listener holds it.
	live, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "pycomms.yaml")
	cfg := "cache_dir: " + sharedCache + "\nlisten: {tcp: 127.0.0.1:0, quic: 127.0.0.1:0}\ndata_dir: " + filepath.Join(dir, "data") + "\ncontrol: 'unix://" + sock + "'\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n2, err := New(context.Background(), Options{ConfigPath: path, Logger: (&hosttest.SyncBuffer{}).Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	err = n2.Start()
	var le *ListenError
	if !errors.As(err, &le) || le.Key != "control" || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start with a live socket: %v", err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("the live socket was removed: %v", err)
	}

	// Not a socket: a file of the operator's is never replaced.
	plain := filepath.Join(sockDir, "plain")
	if err := os.WriteFile(plain, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(cfg, sock, plain, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	n3, err := New(context.Background(), Options{ConfigPath: path, Logger: (&hosttest.SyncBuffer{}).Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	if err := n3.Start(); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Start on a plain file: %v", err)
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep" {
		t.Errorf("the plain file was changed: %q %v", b, err)
	}
}

// TestMetricsTransportRestart: a transport plugin's counters, per plugin,
// keep what its connections carried when a reload restarts it (a new
// transport whose own counters start at zero), traffic since the last
// scrape included.
func TestMetricsTransportRestart(t *testing.T) {
	dir := t.TempDir()
	n, _ := startNodeControl(t, dir, "127.0.0.1:0", linejsonConfig)
	addr := n.ControlAddr()
	c := control.NewClient(addr)
	conn, err := net.DialTimeout("tcp", gatewayAddr(t, c), eventuallyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(eventuallyTimeout))
	roundTrip := func(id int) {
		t.Helper()
		fmt.Fprintf(conn, `{"op":"call","id":%d,"subject":"echo.upper","data":"ok"}`+"\n", id)
		line := make([]byte, 256)
		if n, err := conn.Read(line); err != nil || !strings.Contains(string(line[:n]), `"data":"OK"`) {
			t.Fatalf("gateway call %d: %q %v", id, line[:n], err)
		}
	}
	roundTrip(1)
	gw := map[string]string{"plugin": "gateway"}
	hosttest.CheckFor(t, eventuallyTimeout, hosttest.Describe("first call counted", func() error {
		if v, _ := sample(scrape(t, addr, ""), "pycomms_transport_received_messages_total", gw); v != 1 {
			return fmt.Errorf("received messages %v", v)
		}
		return nil
	}))
	f1 := scrape(t, addr, "")
	if v, _ := sample(f1, "pycomms_transport_connections_open", gw); v != 1 {
		t.Errorf("open connections %v, want 1", v)
	}
	roundTrip(2) // after the scrape: only folding keeps it

	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(mustRead(t, path), "read_buffer: 1KiB", "read_buffer: 2KiB", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	f2 := scrape(t, addr, "")
	noneWentDown(t, "after the transport restarted", counters(f1), counters(f2))
	if v, _ := sample(f2, "pycomms_transport_received_messages_total", gw); v != 2 {
		t.Errorf("received messages = %v after the restart, want 2", v)
	}
	for _, name := range []string{"pycomms_transport_received_bytes_total", "pycomms_transport_sent_bytes_total"} {
		before, _ := sample(f1, name, gw)
		if v, _ := sample(f2, name, gw); v <= before {
			t.Errorf("%s = %v after the restart, want more than the %v of the last scrape", name, v, before)
		}
	}
	if v, _ := sample(f2, "pycomms_transport_connections_accepted_total", gw); v != 1 {
		t.Errorf("accepted connections %v, want 1", v)
	}
}
