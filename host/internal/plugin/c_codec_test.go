package plugin

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestCSDKCodec builds sdk/c/testdata/codec_upper.c with the C codec SDK
// (clang-14 and wasi-libc; skipped without them, except in CI) and runs
// it: its pairs load, a conversion replies, pc_config_get reads the
// config, and each failure reaches the caller with its status and text:
// invalid and too_large as returned, a status outside section 6 as
// internal (the SDK's, not an ABI violation: the instance is kept).
func TestCSDKCodec(t *testing.T) {
	sdk := filepath.Join("..", "..", "..", "sdk", "c")
	wasm := hosttest.BuildWasmC(t, sdk, filepath.Join(sdk, "testdata", "codec_upper.c"), filepath.Join(sdk, "pycomms_codec.c"))
	e := newEngine(t)
	v := loadCodec(t, e, Spec{Name: "cup", Wasm: wasm, Instances: 1, Config: map[string]any{"prefix": ">> "}})
	want := []abi.CodecPair{{Kind: abi.CodecType, From: "text/plain", To: "text/x-upper"}, {Kind: abi.CodecEncoding, From: abi.Identity, To: "x-check"}}
	if got := v.Pairs(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("pairs %v, want %v", got, want)
	}
	ctx := context.Background()
	if out, err := v.Convert(ctx, "text/plain", "text/x-upper", []byte("hello, c")); err != nil || string(out) != "HELLO, C" {
		t.Fatalf("upper: %q, %v", out, err)
	}
	if out, err := v.Convert(ctx, abi.Identity, "x-check", []byte("fine")); err != nil || string(out) != ">> fine" {
		t.Fatalf("x-check with config prefix: %q, %v", out, err)
	}
	_, err := v.Convert(ctx, abi.Identity, "x-check", []byte("ibad"))
	wantStatus(t, err, abi.StatusInvalid, "x-check: byte 0 is i")
	_, err = v.Convert(ctx, abi.Identity, "x-check", []byte("large"))
	wantStatus(t, err, abi.StatusTooLarge, "x-check: too large on purpose")
	_, err = v.Convert(ctx, abi.Identity, "x-check", []byte("unknown"))
	wantStatus(t, err, abi.StatusInternal, "codec: unknown status")
	if v.Restarts() != 0 {
		t.Errorf("%d restarts: every failure here is the codec's answer, not an ABI violation", v.Restarts())
	}
}
