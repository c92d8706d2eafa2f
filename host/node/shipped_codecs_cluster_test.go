package node_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestGzipAcrossTwoHosts is issue 17's gzip path: host a (no codec at
// all) sends a gzip-encoded payload; host b's handler takes text/plain and
// no gzip, so b's builtin:gzip decodes it before delivery; a reply asked
// for with accept-encoding: gzip comes back encoded by b; a gzip bomb and
// a corrupt payload fail the one call with too_large and invalid.
func TestGzipAcrossTwoHosts(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Names: []string{"b", "a"},
		Plugins: map[string]string{"b": fmt.Sprintf(`  - {name: gzip, path: builtin:gzip, kind: codec, instances: 1}
  - {name: upper, path: %q, services: [echo], accepts: [text/plain], instances: 1, watch: false}
`, cluster.TestdataPath("wat", "echo.wasm"))}})
	a := cl.Host("a")
	hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("a routes echo to b", func() error { return a.HasRoute("echo") }))

	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	call := func(payload []byte, h map[string]string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return a.Client.Call(ctx, "echo.upper", payload, h, 10*time.Second)
	}
	text := strings.Repeat("hello over gzip, ", 200)
	gzipped := map[string]string{"content-type": "text/plain", "content-encoding": "gzip"}

	got, err := call(gz([]byte(text)), gzipped)
	if err != nil || string(got) != strings.ToUpper(text) {
		t.Fatalf("gzip-encoded call from a: %.40q (%d bytes), %v; want the decoded payload upper-cased", got, len(got), err)
	}
	// The reply encoded on the way back, as accept-encoding asks.
	got, err = call([]byte("plain"), map[string]string{"content-type": "text/plain", "accept-encoding": "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("reply with accept-encoding gzip is not gzip (%q): %v", got, err)
	}
	if plain, err := io.ReadAll(zr); err != nil || string(plain) != "PLAIN" {
		t.Fatalf("gzip reply decodes to %q, %v", plain, err)
	}
	// A bomb (64 MiB of zeros in ~64 KB) stops at b's max_output.
	_, err = call(gz(make([]byte, 64<<20)), gzipped)
	if message.StatusOf(err) != abi.StatusTooLarge || !strings.Contains(err.Error(), "decoded output exceeds max_output") {
		t.Fatalf("gzip bomb: %v, want too_large from max_output", err)
	}
	_, err = call([]byte("not gzip at all"), gzipped)
	if message.StatusOf(err) != abi.StatusInvalid || !strings.Contains(err.Error(), "gzip: not gzip data") {
		t.Fatalf("corrupt gzip: %v, want invalid", err)
	}
	// And b serves on.
	if got, err := call(gz([]byte("again")), gzipped); err != nil || string(got) != "AGAIN" {
		t.Fatalf("after the bomb: %q, %v", got, err)
	}
}

// TestJSONCallToCBORHandlerAcrossHosts: the JSON call of
// TestJSONCallToCBORHandler made on host a, which has no codec, to the
// CBOR-only handler on host b, whose builtin:json-cbor converts the
// request and the reply.
func TestJSONCallToCBORHandlerAcrossHosts(t *testing.T) {
	sdk := cluster.TestdataPath("..", "sdk", "c")
	wasm := hosttest.BuildWasmC(t, sdk, cluster.TestdataPath("cbor", "cbor_sum.c"), filepath.Join(sdk, "pycomms.c"))
	path := filepath.Join(t.TempDir(), "cbor_sum.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	cl := cluster.Start(t, cluster.Options{Names: []string{"b", "a"},
		Plugins: map[string]string{"b": fmt.Sprintf(`  - {name: json-cbor, path: builtin:json-cbor, kind: codec, instances: 1}
  - {name: sum, path: %q, services: [sum], accepts: [application/cbor], instances: 1, watch: false}
`, path)}})
	a := cl.Host("a")
	hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("a routes sum to b", func() error { return a.HasRoute("sum") }))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := a.Client.Call(ctx, "sum.ints", []byte(`[1,2,3,4]`), map[string]string{"content-type": "application/json"}, 10*time.Second)
	if err != nil || string(got) != `{"sum":10,"n":4}` {
		t.Fatalf("JSON call on a: %q, %v; want b's CBOR reply as JSON", got, err)
	}
	_, err = a.Client.Call(ctx, "sum.ints", []byte(`{"a":1,"a":2}`), map[string]string{"content-type": "application/json"}, 10*time.Second)
	if message.StatusOf(err) != abi.StatusInvalid || !strings.Contains(err.Error(), "duplicate member name at byte 7") {
		t.Fatalf("duplicate keys through a: %v, want b's codec's invalid", err)
	}
}
