package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

func loadCodec(t testing.TB, e *Engine, spec Spec) *Version {
	t.Helper()
	v, err := e.LoadCodec(context.Background(), spec)
	if err != nil {
		t.Fatalf("load codec %s: %v", spec.Name, err)
	}
	t.Cleanup(v.Close)
	return v
}

func wantStatus(t *testing.T, err error, st abi.Status, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want status %s", st)
	}
	if got := message.StatusOf(err); got != st || !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q (status %s), want status %s containing %q", err, got, st, contains)
	}
}

func TestCodecUpperWAT(t *testing.T) {
	e := newEngine(t)
	v := loadCodec(t, e, Spec{Name: "upper", Wasm: fixture(t, "codec_upper.wasm"), Instances: 2})
	want := []abi.CodecPair{
		{Kind: abi.CodecType, From: "text/plain", To: "text/x-upper"},
		{Kind: abi.CodecEncoding, From: abi.Identity, To: "x-rev"},
		{Kind: abi.CodecEncoding, From: "x-rev", To: abi.Identity},
	}
	if got := v.Pairs(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("pairs %v, want %v", got, want)
	}
	ctx := context.Background()
	for _, c := range []struct{ from, to, in, want string }{
		{"text/plain", "text/x-upper", "hello, World", "HELLO, WORLD"},
		{abi.Identity, "x-rev", "abc", "cba"},
		{"x-rev", abi.Identity, "", ""},
		{"x-rev", abi.Identity, strings.Repeat("xy", 50000), strings.Repeat("yx", 50000)},
	} {
		out, err := v.Convert(ctx, c.from, c.to, []byte(c.in))
		if err != nil {
			t.Fatalf("%s -> %s: %v", c.from, c.to, err)
		}
		if string(out) != c.want {
			t.Fatalf("%s -> %s %.20q: got %.20q", c.from, c.to, c.in, out)
		}
	}
	_, err := v.Convert(ctx, "text/plain", "text/x-upper", []byte("\xffbad"))
	wantStatus(t, err, abi.StatusInvalid, "input starts with 0xff")
	_, err = v.Convert(ctx, "text/x-upper", "text/plain", []byte("x"))
	wantStatus(t, err, abi.StatusUnsupportedType, "does not convert text/x-upper to text/plain")
	if v.Restarts() != 0 {
		t.Fatalf("%d restarts after conversions that broke nothing", v.Restarts())
	}
	p := New("upper", v)
	if _, err := p.Convert(ctx, "text/plain", "text/x-upper", []byte("a")); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Calls != 7 || st.Errors != 2 || st.Failures[abi.StatusInvalid] != 1 || st.Failures[abi.StatusUnsupportedType] != 1 {
		t.Fatalf("stats %+v, want 7 conversions, 2 failures (invalid, unsupported_type)", st)
	}
}

func TestCodecHostileWAT(t *testing.T) {
	e := newEngine(t)
	v := loadCodec(t, e, Spec{Name: "hostile", Wasm: fixture(t, "codec_hostile.wasm"), Instances: 2,
		Timeout: 300 * time.Millisecond, MaxReply: 4096})
	ctx := context.Background()
	in := []byte("payload")

	start := time.Now()
	_, err := v.Convert(ctx, "text/plain", "text/x-loop", in)
	wantStatus(t, err, abi.StatusTimeout, "did not finish within its deadline")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a looping conversion took %v to stop (timeout 300ms)", d)
	}
	if v.Restarts() != 1 {
		t.Fatalf("restarts %d after a loop, want 1", v.Restarts())
	}
	_, err = v.Convert(ctx, "text/plain", "text/x-trap", in)
	wantStatus(t, err, abi.StatusTrap, "unreachable")
	if v.Restarts() != 2 {
		t.Fatalf("restarts %d after a trap, want 2", v.Restarts())
	}
	_, err = v.Convert(ctx, "text/plain", "text/x-big", in)
	wantStatus(t, err, abi.StatusTooLarge, "exceeds max_reply (4096 bytes)")
	_, err = v.Convert(ctx, "text/plain", "application/json", in)
	wantStatus(t, err, abi.StatusInternal, `codec "hostile" produced invalid application/json output`)
	_, err = v.Convert(ctx, "text/plain", "application/cbor", in)
	wantStatus(t, err, abi.StatusInternal, `codec "hostile" produced invalid application/cbor output`)
	if v.Restarts() != 2 {
		t.Fatalf("restarts %d: too large and garbage output must keep the instance", v.Restarts())
	}
	// A sender's deadline shorter than the timeout bounds a conversion too.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = v.Convert(cctx, "text/plain", "text/x-loop", in)
	wantStatus(t, err, abi.StatusTimeout, "deadline")
	p := New("hostile", v)
	st := p.Stats()
	for s, n := range map[abi.Status]uint64{abi.StatusTimeout: 2, abi.StatusTrap: 1, abi.StatusTooLarge: 1, abi.StatusInternal: 2} {
		if st.Failures[s] != n {
			t.Errorf("failures[%s] = %d, want %d (all: %v)", s, st.Failures[s], n, st.Failures)
		}
	}
	// Every instance still serves: the pool is whole.
	for range 4 {
		if _, err := v.Convert(ctx, "text/plain", "text/x-big", nil); message.StatusOf(err) != abi.StatusTooLarge {
			t.Fatalf("after the hostile conversions: %v", err)
		}
	}
	// A status outside SPEC section 6 is an ABI violation of the export
	// that returned it.
	before := v.Restarts()
	_, err = v.Convert(ctx, "text/plain", "text/x-status", in)
	wantStatus(t, err, abi.StatusTrap, "ABI violation: pycomms_codec_convert returned unknown status 99")
	if v.Restarts() != before+1 {
		t.Fatalf("restarts %d after an unknown status, want %d: the instance is replaced", v.Restarts(), before+1)
	}
}

func TestCodecRefusedAtLoad(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	for _, c := range []struct {
		file string
		load func(Spec) error
		want []string
	}{
		{"codec_badpairs.wasm", func(s Spec) error { _, err := e.LoadCodec(ctx, s); return err },
			[]string{`line 2 "type text/plain"`, "3 fields"}},
		{"codec_both.wasm", func(s Spec) error { _, err := e.LoadCodec(ctx, s); return err },
			[]string{abi.ExportHandle, abi.ExportCodecConvert, "one kind"}},
		{"codec_both.wasm", func(s Spec) error { _, err := e.Load(ctx, s, nil); return err },
			[]string{abi.ExportHandle, abi.ExportCodecConvert, "one kind"}},
		{"codec_call.wasm", func(s Spec) error { _, err := e.LoadCodec(ctx, s); return err },
			[]string{"imports pycomms:host/v1.call", "codec"}},
		{"codec_upper.wasm", func(s Spec) error { _, err := e.Load(ctx, s, nil); return err },
			[]string{"is a codec plugin", "kind: codec"}},
		{"echo.wasm", func(s Spec) error { _, err := e.LoadCodec(ctx, s); return err },
			[]string{"is a handler plugin"}},
	} {
		err := c.load(Spec{Name: "x", Wasm: fixture(t, c.file), Instances: 1})
		if err == nil {
			t.Errorf("%s: loaded, want refused", c.file)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\nwant it to contain %q", c.file, err, w)
			}
		}
	}
	if err := e.CheckCodec(ctx, Spec{Name: "upper", Wasm: fixture(t, "codec_upper.wasm")}); err != nil {
		t.Fatalf("CheckCodec of a good codec: %v", err)
	}
}
