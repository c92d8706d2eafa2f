package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const linejsonConfig = `
plugins:
  - name: echo
    path: builtin:echo
    services: [echo]
  - name: gateway
    path: builtin:linejson
    kind: transport
    accept: [tcp://127.0.0.1:0]
    topics: [news.>]
    grants: [call, send, publish, log]
    limits: {read_buffer: 1KiB}
`

// TestLinejsonPythonApp runs testdata/linejson/app.py, a Python app with
// only the standard library, against the linejson gateway: it calls,
// sends, publishes and receives the event it subscribed to; a malformed
// line gets an error line and the connection keeps working.
func TestLinejsonPythonApp(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 not found (required when CI=true)")
		}
		t.Skip("python3 not found")
	}
	_, c, _ := startNode(t, t.TempDir(), linejsonConfig)
	addr := gatewayAddr(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), eventuallyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, repo("testdata", "linejson", "app.py"), addr).CombinedOutput()
	if err != nil {
		t.Fatalf("app.py: %v\n%s", err, out)
	}
	want := []string{
		`{"id":1,"ok":true}`,
		`{"id":2,"ok":true,"data":"HI"}`,
		`{"id":3,"ok":true}`,
		`{"id":4,"ok":true}`,
		`{"data":{"n":1},"event":"news.today"}`,
		`{"ok":false,"error":"malformed line: invalid character 'h' in literal true (expecting 'r')","status":"invalid"}`,
		`{"id":5,"ok":false,"error":"no handler for \"nobody.here\" on this host or any of the 0 other hosts it knows","status":"no_handler"}`,
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("app.py read:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLinejsonOversizedLine: a line longer than limits.read_buffer closes
// that connection only.
func TestLinejsonOversizedLine(t *testing.T) {
	_, c, _ := startNode(t, t.TempDir(), linejsonConfig)
	addr := gatewayAddr(t, c)
	dial := func() net.Conn {
		conn, err := net.DialTimeout("tcp", addr, eventuallyTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(eventuallyTimeout))
		return conn
	}
	good, bad := dial(), dial()
	bad.Write(bytes.Repeat([]byte("x"), 4096))
	// Closed: EOF, or a reset (the host closed with bytes unread).
	if _, err := io.Copy(io.Discard, bad); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the oversized line's connection was not closed: %v", err)
	}
	good.Write([]byte(`{"op":"call","id":7,"subject":"echo.upper","data":"ok"}` + "\n"))
	line := make([]byte, 256)
	n, err := good.Read(line)
	if err != nil || string(line[:n]) != `{"id":7,"ok":true,"data":"OK"}`+"\n" {
		t.Fatalf("the other connection read %q, %v", line[:n], err)
	}
	if ti := transportNamed(t, c, "gateway").Transport; ti.Closes["read buffer full"] != 1 {
		t.Errorf("closes %v: want one for the read buffer", ti.Closes)
	}
}
