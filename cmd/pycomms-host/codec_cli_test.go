package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContentTypeCLI: call, pub and sub with --content-type and --accept
// against a real node with the WAT codec codec_upper (text/plain ->
// text/x-upper, identity <-> x-rev) and handlers that declare accepts;
// unsupported_type is exit 10 and HTTP 415.
func TestContentTypeCLI(t *testing.T) {
	codecPath, err := filepath.Abs(filepath.Join("..", "..", "testdata", "wat", "codec_upper.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	n := runNodeInProcess(t, `control: CONTROL
listen: {tcp: "", quic: ""}
data_dir: data
cache_dir: cache
plugins:
  - {name: upper, path: `+codecPath+`, kind: codec}
  - {name: up, path: `+watEchoAbs(t)+`, services: [up], accepts: [text/x-upper]}
  - {name: plain, path: `+watEchoAbs(t)+`, services: [plain], accepts: [text/plain]}
`)
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"call", "up.x", "abc", "--content-type", "text/plain"}, 0, "ABC\n", ""},
		{[]string{"call", "up.x", "{}", "--content-type", "application/json"}, 10, "",
			`pycomms-host: up.x: content-type application/json: plugin "up" accepts text/x-upper and no codec converts application/json to any of them` + "\n"},
		{[]string{"call", "plain.x", "abc", "--content-type", "text/plain", "--accept", "application/json"}, 10, "",
			"no codec converts it to any type of accept: application/json"},
		{[]string{"call", "plain.x", "abc", "--content-type", "text/plain", "--accept", "application/json,text/x-upper"}, 0, "ABC\n", ""},
		{[]string{"call", "up.x", "abc", "--content-type", "nonsense"}, 1, "", `--content-type "nonsense": not a media type`},
		{[]string{"call", "up.x", "abc", "--content-type", "text/plain", "-H", "content-type=text/plain"}, 1, "", "give the content-type once"},
		{[]string{"pub", "t.x", "abc", "--content-type", "text/plain"}, 0, "", ""},
		{[]string{"send", "up.x", "abc", "--content-type", "text/plain"}, 0, "", ""},
	} {
		r := runCLI(t, "", append(tc.args, "--control", n.addr)...)
		if r.code != tc.code || (tc.stdout != "" && r.stdout != tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%v: exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
				tc.args, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}

	// HTTP: Content-Type maps to content-type (octet-stream does not),
	// 415 for unsupported_type, and the reply's type is its Content-Type.
	post := func(ct, accept string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, "http://"+n.addr+"/v1/call/plain.x", strings.NewReader("abc"))
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if r := post("text/plain", "text/x-upper"); r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/x-upper" {
		t.Errorf("HTTP call text/plain, accept text/x-upper: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if r := post("text/plain", "application/json"); r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("HTTP call with an Accept nobody reaches: %d, want 415", r.StatusCode)
	}
	if r := post("application/octet-stream", "*/*"); r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("HTTP call of octet-stream bytes: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if r := post("application/json", ""); r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("HTTP call with Content-Type application/json to a text/plain handler: %d, want 415", r.StatusCode)
	}

	// sub --accept: typed events are converted; one that cannot be is
	// skipped and the stream goes on.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	stderr := &bytes.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"sub", "ev.>", "--accept", "text/x-upper", "--control", n.addr}, strings.NewReader(""), pw, stderr)
		pw.Close()
	}()
	defer func() { cancel(); pr.Close(); <-done }()
	lines := bufio.NewReader(pr)
	got := make(chan string, 4)
	go func() {
		for {
			l, err := lines.ReadString('\n')
			if err != nil {
				close(got)
				return
			}
			got <- l
		}
	}()
	// The subscription is in place once an event published now arrives.
	deadline := time.Now().Add(30 * time.Second)
	first := ""
	for first == "" && time.Now().Before(deadline) {
		if r := runCLI(t, "", "pub", "ev.a", "abc", "--content-type", "text/plain", "--control", n.addr); r.code != 0 {
			t.Fatalf("pub: %+v", r)
		}
		select {
		case first = <-got:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if first != "ABC\n" {
		t.Fatalf("sub --accept text/x-upper: first line %q, want ABC", first)
	}
	for _, args := range [][]string{
		{"pub", "ev.b", "{}", "--content-type", "application/json"}, // skipped
		{"pub", "ev.c", "untyped"},                                  // no type: as it is
		{"pub", "ev.d", "xyz", "--content-type", "text/plain"},
	} {
		if r := runCLI(t, "", append(args, "--control", n.addr)...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	var rest []string
	for len(rest) < 2 {
		select {
		case l := <-got:
			if l != "ABC\n" { // a repeat of the probe
				rest = append(rest, l)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("sub lines after the skipped event: %q", rest)
		}
	}
	if rest[0] != "untyped\n" || rest[1] != "XYZ\n" {
		t.Fatalf("sub lines %q, want untyped then XYZ (the JSON event skipped)", rest)
	}
	cancel()
	pr.Close()
	if code := <-done; code != 0 {
		t.Errorf("interrupted sub exited %d", code)
	}
	done <- 0 // for the deferred wait
	if !strings.Contains(stderr.String(), "warning: 1 events skipped so far: no codec converts them to --accept text/x-upper") {
		t.Errorf("sub stderr %q lacks the skipped warning", stderr)
	}
}
