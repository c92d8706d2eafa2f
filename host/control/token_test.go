package control_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLogged starts a server on loopback that logs at debug level into
// the returned buffer.
func startLogged(t *testing.T, opts ...control.Option) (string, *syncBuffer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := control.NewServer(controltest.NewBackend(), controltest.Version, logger, opts...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return l.Addr().String(), logs
}

const testToken = "tok-0123456789abcdef-secret"

// TestTokenRequired: with a token configured every route needs it, a
// missing or wrong one is 401 with status denied and a WWW-Authenticate
// challenge, the right one passes, the health probes pass without it, and
// the token never reaches the log, whatever the client sent.
func TestTokenRequired(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("# metrics\n")) })
	addr, logs := startLogged(t, control.WithToken(testToken), control.WithMetrics(metrics))
	base := "http://" + addr
	bearer := func(tok string) map[string][]string { return map[string][]string{"Authorization": {"Bearer " + tok}} }

	for _, c := range []struct {
		name   string
		header map[string][]string
		want   string // part of the error
	}{
		{"none", nil, "needs a token"},
		{"wrong", bearer("tok-0123456789abcdef-wrong!"), "does not match"},
		{"prefix", bearer(testToken[:len(testToken)-1]), "does not match"},
		{"longer", bearer(testToken + "x"), "does not match"},
		{"basic", map[string][]string{"Authorization": {"Basic " + testToken}}, "must be Bearer"},
	} {
		for _, path := range []string{"/v1/health", "/v1/plugins", "/metrics", "/v1/nope"} {
			r := rawDo(t, "GET", base+path, nil, c.header)
			if r.code != http.StatusUnauthorized {
				t.Errorf("%s %s: HTTP %d, want 401: %s", c.name, path, r.code, r.body)
				continue
			}
			e := errorBody(t, r)
			if e.Status != abi.StatusDenied.String() || !strings.Contains(e.Error, c.want) {
				t.Errorf("%s %s: %+v, want status denied and %q", c.name, path, e, c.want)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: WWW-Authenticate %q", c.name, path, r.header.Get("WWW-Authenticate"))
			}
		}
	}
	if r := rawDo(t, "POST", base+"/v1/call/echo.x", strings.NewReader("hi"), nil); r.code != http.StatusUnauthorized {
		t.Errorf("call without token: HTTP %d, want 401", r.code)
	}

	for _, path := range []string{"/v1/health", "/metrics"} {
		if r := rawDo(t, "GET", base+path, nil, bearer(testToken)); r.code != http.StatusOK {
			t.Errorf("%s with the token: HTTP %d: %s", path, r.code, r.body)
		}
	}
	// The Go client sends it too; without it, it gets status denied.
	if _, err := control.NewClient(addr, control.WithBearerToken(testToken)).Health(context.Background()); err != nil {
		t.Errorf("client with token: %v", err)
	}
	_, err := control.NewClient(addr).Health(context.Background())
	wantStatus(t, err, abi.StatusDenied)

	// The probes are exempt: without a token they reach the router (here
	// they are not routes of this server, so 404, not 401).
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := rawDo(t, "GET", base+path, nil, nil); r.code == http.StatusUnauthorized {
			t.Errorf("%s needs a token: %s", path, r.body)
		}
	}
	if log := logs.String(); strings.Contains(log, testToken) || strings.Contains(log, "0123456789abcdef") {
		t.Errorf("the log shows the token:\n%s", log)
	} else if !strings.Contains(log, "status=401") {
		t.Errorf("the log has no 401 request line, so the check above saw nothing:\n%s", log)
	}
}

// TestPublicMetrics: control.public_metrics lets /metrics through without
// the token, and nothing else.
func TestPublicMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("# metrics\n")) })
	addr, _ := startLogged(t, control.WithToken(testToken), control.WithMetrics(metrics), control.WithPublicMetrics(true))
	if r := rawDo(t, "GET", "http://"+addr+"/metrics", nil, nil); r.code != http.StatusOK || string(r.body) != "# metrics\n" {
		t.Errorf("/metrics: HTTP %d %q", r.code, r.body)
	}
	if r := rawDo(t, "GET", "http://"+addr+"/v1/health", nil, nil); r.code != http.StatusUnauthorized {
		t.Errorf("/v1/health: HTTP %d, want 401", r.code)
	}
}

// TestNoTokenOpen: without a token configured, the API is as before.
func TestNoTokenOpen(t *testing.T) {
	addr, _ := startLogged(t)
	if r := rawDo(t, "GET", "http://"+addr+"/v1/health", nil, nil); r.code != http.StatusOK {
		t.Errorf("/v1/health: HTTP %d", r.code)
	}
}

// TestReadTokenFile: mode wider than 0600 is refused naming the key and
// the mode; short tokens are refused; white space around is trimmed; no
// error shows the token.
func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok, err := control.ReadTokenFile("k", write("ok", "  "+testToken+"\n", 0o600))
	if err != nil || tok != testToken {
		t.Fatalf("ReadTokenFile = %q, %v", tok, err)
	}
	if _, err := control.ReadTokenFile("k", write("ro", testToken, 0o400)); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	for _, c := range []struct {
		name, data string
		mode       os.FileMode
		want       string
	}{
		{"group", testToken, 0o640, "k: " + dir + "/group has mode 0640"},
		{"world", testToken, 0o604, "mode 0604"},
		{"short", "short", 0o600, "5 bytes, fewer than the 16"},
		{"space", "tok-0123456789 abcdef", 0o600, "space, control or non-ASCII"},
		{"big", strings.Repeat("a", control.MaxTokenFile+1), 0o600, "more than the 4096 bytes"},
	} {
		_, err := control.ReadTokenFile("k", write(c.name, c.data, c.mode))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "0123456789") {
			t.Errorf("%s: error shows the token: %v", c.name, err)
		}
	}
}

// TestUnixClient: the client reaches a server on a unix socket through a
// unix:// address, sending Host localhost, which the server accepts.
func TestUnixClient(t *testing.T) {
	dir, err := os.MkdirTemp("", "pyc") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(controltest.NewBackend(), controltest.Version, nil, control.WithToken(testToken))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	c := control.NewClient("unix://"+sock, control.WithBearerToken(testToken))
	if _, err := c.Version(context.Background()); err != nil {
		t.Fatalf("Version over %s: %v", c.Addr(), err)
	}
	_, err = control.NewClient("unix://" + sock).Version(context.Background())
	wantStatus(t, err, abi.StatusDenied)
	_, err = control.NewClient("unix://rel.sock").Version(context.Background())
	wantStatus(t, err, abi.StatusInvalid)
}
