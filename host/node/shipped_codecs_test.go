package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// cborSumWasm builds testdata/cbor/cbor_sum.c, a C handler that takes only
// CBOR (sum.ints: an array of integers -> {"sum": total, "n": count}), into
// dir and returns its path.
func cborSumWasm(t testing.TB, dir string) string {
	t.Helper()
	sdk, err := filepath.Abs(repo("sdk", "c"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Abs(repo("testdata", "cbor", "cbor_sum.c"))
	if err != nil {
		t.Fatal(err)
	}
	wasm := hosttest.BuildWasmC(t, sdk, src, filepath.Join(sdk, "pycomms.c"))
	path := filepath.Join(dir, "cbor_sum.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const jsonCBORConfig = `
plugins:
  - name: json-cbor
    path: builtin:json-cbor
    kind: codec
  - name: sum
    path: %s
    services: [sum]
    accepts: [application/cbor]
`

// TestJSONCallToCBORHandler is issue 17's path: a control API call in JSON
// reaches a handler that takes only CBOR, converted by builtin:json-cbor,
// and its CBOR reply comes back as JSON; a CBOR call to the same handler
// is not converted; what the codec refuses reaches the caller as invalid
// naming the byte.
func TestJSONCallToCBORHandler(t *testing.T) {
	dir := t.TempDir()
	_, c, _ := startNode(t, dir, fmt.Sprintf(jsonCBORConfig, cborSumWasm(t, dir)))
	ctx := context.Background()
	call := func(payload []byte, h map[string]string) ([]byte, error) {
		return c.Call(ctx, "sum.ints", payload, h, 10*time.Second)
	}
	asJSON := map[string]string{"content-type": "application/json"}

	got, err := call([]byte(`[1, 2, 3, -10, 9007199254740993]`), asJSON)
	if err != nil || string(got) != `{"sum":9007199254740989,"n":5}` {
		t.Fatalf("JSON call: %q, %v; want the CBOR reply as JSON", got, err)
	}
	// The same as curl sends it: plain HTTP Content-Type, and the reply's
	// type back as the HTTP Content-Type.
	resp, err := http.Post("http://"+c.Addr()+"/v1/call/sum.ints", "application/json", strings.NewReader(`[40,2]`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != `{"sum":42,"n":2}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("HTTP POST with Content-Type: application/json: %d %q (Content-Type %q), %v; want 200 {\"sum\":42,\"n\":2} as application/json",
			resp.StatusCode, body, resp.Header.Get("Content-Type"), err)
	}
	// The same handler called in CBOR: nothing converted either way.
	cborReply := []byte{0xa2, 0x63, 's', 'u', 'm', 0x06, 0x61, 'n', 0x03}
	got, err = call([]byte{0x83, 0x01, 0x02, 0x03}, map[string]string{"content-type": "application/cbor"})
	if err != nil || !bytes.Equal(got, cborReply) {
		t.Fatalf("CBOR call: %x, %v; want %x", got, err, cborReply)
	}
	// JSON in, CBOR asked for back.
	got, err = call([]byte(`[1,2,3]`), map[string]string{"content-type": "application/json", "accept": "application/cbor"})
	if err != nil || !bytes.Equal(got, cborReply) {
		t.Fatalf("JSON call with accept: application/cbor: %x, %v; want %x", got, err, cborReply)
	}
	// Without content-type the JSON text reaches the handler unconverted,
	// which refuses it: the conversion above is what made it CBOR.
	_, err = call([]byte(`[1,2,3]`), nil)
	if message.StatusOf(err) != abi.StatusInvalid || !strings.Contains(err.Error(), "sum: the payload is not a CBOR array (first byte 0x5b)") {
		t.Fatalf("JSON without content-type: %v, want the handler's refusal", err)
	}
	// What the codec refuses: the caller gets invalid, naming the byte.
	for _, tc := range []struct{ in, want string }{
		{`{"a":1,"a":2}`, "duplicate member name at byte 7 (first at byte 1)"},
		{`[1,2`, "unexpected end of JSON at byte 4"},
		{`"\ud800"`, "lone high surrogate"},
		{strings.Repeat("[", 300), "nesting deeper than 256 at byte 256"},
	} {
		_, err = call([]byte(tc.in), asJSON)
		if message.StatusOf(err) != abi.StatusInvalid || !strings.Contains(err.Error(), "json-cbor: json->cbor: "+tc.want) {
			t.Errorf("%.20q: %v, want invalid with %q", tc.in, err, tc.want)
		}
	}
	// The handler's own refusal passes through.
	_, err = call([]byte(`[1,"two"]`), asJSON)
	if message.StatusOf(err) != abi.StatusInvalid || !strings.Contains(err.Error(), "sum: element 1 at byte 2 is not a CBOR integer") {
		t.Fatalf(`[1,"two"]: %v, want the handler's invalid`, err)
	}
}
