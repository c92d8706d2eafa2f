package plugin

// The shipped codecs (builtin:json-cbor in C, builtin:gzip in Go) through
// the real runtime: Version.Convert on their committed builds, the ones a
// config loads with path: builtin:NAME.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/plugins"
)

const (
	typeJSON = "application/json"
	typeCBOR = "application/cbor"
)

func loadBuiltinCodec(t testing.TB, e *Engine, name string, spec Spec) *Version {
	t.Helper()
	wasm, ok := plugins.Builtin(name)
	if !ok {
		t.Fatalf("no builtin:%s", name)
	}
	spec.Name, spec.Wasm = name, wasm
	return loadCodec(t, e, spec)
}

// jcConvert runs one case of the json-cbor table and answers as the
// native driver does: "= " and the output (CBOR as hex, JSON as text), or
// "! " and the error text, which must come with status invalid.
func jcConvert(t *testing.T, v *Version, c hosttest.JCCase) string {
	t.Helper()
	from, to := typeJSON, typeCBOR
	if c.Dir == "c" {
		from, to = typeCBOR, typeJSON
	}
	out, err := v.Convert(context.Background(), from, to, c.In)
	if err != nil {
		if st := message.StatusOf(err); st != abi.StatusInvalid {
			t.Errorf("%s: status %s (%v), want invalid or success", c, st, err)
		}
		return "! " + err.Error()
	}
	if c.Dir == "j" {
		return "= " + hex.EncodeToString(out)
	}
	return "= " + string(out)
}

// TestShippedJSONCBORTable runs the json-cbor case table (the one the
// native build runs in plugins/) through builtin:json-cbor.
func TestShippedJSONCBORTable(t *testing.T) {
	e := newEngine(t)
	v := loadBuiltinCodec(t, e, "json-cbor", Spec{Instances: 1})
	want := []abi.CodecPair{{Kind: abi.CodecType, From: typeJSON, To: typeCBOR}, {Kind: abi.CodecType, From: typeCBOR, To: typeJSON}}
	if got := v.Pairs(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("pairs %v, want %v", got, want)
	}
	for _, c := range hosttest.JSONCBORCases(t, "../../..") {
		if err := c.Check(jcConvert(t, v, c)); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	if v.Restarts() != 0 {
		t.Errorf("%d instance restarts: no input may trap the codec", v.Restarts())
	}
}

// TestShippedJSONCBORLimits: output the instance cannot hold is too_large,
// output over max_reply is too_large, and the instance serves on.
func TestShippedJSONCBORLimits(t *testing.T) {
	e := newEngine(t)
	v := loadBuiltinCodec(t, e, "json-cbor", Spec{Instances: 1, MaxReply: 64 << 10, Memory: 4 << 20})
	ctx := context.Background()
	// 100 000 CBOR nulls (100 KB) become 500 KB of JSON: over max_reply.
	in := append([]byte{0x9f}, append(bytes.Repeat([]byte{0xf6}, 100_000), 0xff)...)
	_, err := v.Convert(ctx, typeCBOR, typeJSON, in)
	wantStatus(t, err, abi.StatusTooLarge, "max_reply")
	// 3 MB of nulls would be 15 MB of JSON: more than the 4 MiB instance
	// can grow to; the codec's realloc fails and it says so.
	in = append([]byte{0x9f}, append(bytes.Repeat([]byte{0xf6}, 3_000_000), 0xff)...)
	_, err = v.Convert(ctx, typeCBOR, typeJSON, in)
	wantStatus(t, err, abi.StatusTooLarge, "does not fit in the codec's memory")
	out, err := v.Convert(ctx, typeJSON, typeCBOR, []byte(`{"still":"serving"}`))
	if err != nil || !bytes.Equal(out, []byte("\xa1\x65still\x67serving")) {
		t.Fatalf("after the refusals: %x, %v", out, err)
	}
	if v.Restarts() != 0 {
		t.Errorf("%d instance restarts, want 0: running out of memory is an answer, not a trap", v.Restarts())
	}
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestShippedGzip: builtin:gzip round-trips, refuses what is not gzip with
// invalid, and stops a bomb at max_output (config) or max_reply (limits)
// with too_large, keeping its instance.
func TestShippedGzip(t *testing.T) {
	e := newEngine(t)
	v := loadBuiltinCodec(t, e, "gzip", Spec{Instances: 1})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 1000, 200_000} {
		in := make([]byte, n)
		for i := range in {
			in[i] = byte('a' + r.IntN(4))
		}
		z, err := v.Convert(ctx, abi.Identity, "gzip", in)
		if err != nil {
			t.Fatalf("gzip %d bytes: %v", n, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatalf("compress/gzip cannot read the codec's gzip of %d bytes: %v", n, err)
		}
		var plain bytes.Buffer
		if _, err := plain.ReadFrom(zr); err != nil || !bytes.Equal(plain.Bytes(), in) {
			t.Fatalf("the codec's gzip of %d bytes reads back as %d bytes, %v", n, plain.Len(), err)
		}
		back, err := v.Convert(ctx, "gzip", abi.Identity, gz(t, in))
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("gunzip of %d bytes: %d bytes, %v", n, len(back), err)
		}
	}
	// two members, one stream (RFC 1952)
	back, err := v.Convert(ctx, "gzip", abi.Identity, append(gz(t, []byte("hello, ")), gz(t, []byte("world"))...))
	if err != nil || string(back) != "hello, world" {
		t.Fatalf("two members: %q, %v", back, err)
	}

	good := gz(t, []byte(strings.Repeat("pycomms ", 1000)))
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-6] ^= 0xff // the CRC-32
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not gzip", []byte("plain text"), "gzip: not gzip data"},
		{"empty", nil, "gzip: not gzip data"},
		{"truncated", good[:len(good)/2], "gzip: truncated"},
		{"bad checksum", corrupt, "gzip: corrupt after"},
		{"garbage after a member", append(bytes.Clone(good), "junk after the gzip member"...), "gzip: corrupt after 8000 bytes of output: gzip: invalid header"},
		{"short garbage after a member", append(bytes.Clone(good), "junk"...), "gzip: truncated after 8000 bytes"},
	} {
		_, err := v.Convert(ctx, "gzip", abi.Identity, c.in)
		t.Run(c.name, func(t *testing.T) { wantStatus(t, err, abi.StatusInvalid, c.want) })
	}

	// A bomb: 64 MiB of zeros in ~64 KB of gzip, four times the instance's
	// whole memory (16 MiB); decoding stops at the default max_output.
	bomb := gz(t, make([]byte, 64<<20))
	_, err = v.Convert(ctx, "gzip", abi.Identity, bomb)
	wantStatus(t, err, abi.StatusTooLarge, "gzip: decoded output exceeds max_output (1048576 bytes)")
	// Exactly max_output decodes.
	if out, err := v.Convert(ctx, "gzip", abi.Identity, gz(t, make([]byte, 1<<20))); err != nil || len(out) != 1<<20 {
		t.Fatalf("1 MiB, exactly max_output: %d bytes, %v", len(out), err)
	}
	if v.Restarts() != 0 {
		t.Errorf("%d instance restarts, want 0", v.Restarts())
	}

	// max_output from the config; max_reply below it stops the output too.
	small := loadBuiltinCodec(t, e, "gzip", Spec{Instances: 1, Config: map[string]any{"max_output": "4KiB"}})
	_, err = small.Convert(ctx, "gzip", abi.Identity, gz(t, make([]byte, 4097)))
	wantStatus(t, err, abi.StatusTooLarge, "max_output (4096 bytes)")
	if out, err := small.Convert(ctx, "gzip", abi.Identity, gz(t, make([]byte, 4096))); err != nil || len(out) != 4096 {
		t.Fatalf("4 KiB with max_output 4KiB: %d bytes, %v", len(out), err)
	}
	capped := loadBuiltinCodec(t, e, "gzip", Spec{Instances: 1, MaxReply: 1000})
	_, err = capped.Convert(ctx, "gzip", abi.Identity, gz(t, make([]byte, 5000)))
	wantStatus(t, err, abi.StatusTooLarge, "exceeds max_reply (1000 bytes)")
	bad := loadBuiltinCodec(t, e, "gzip", Spec{Instances: 1, Config: map[string]any{"max_output": "lots"}})
	_, err = bad.Convert(ctx, "gzip", abi.Identity, gz(t, []byte("x")))
	wantStatus(t, err, abi.StatusHandlerError, `gzip: config max_output: "lots" is not a size`)
}
