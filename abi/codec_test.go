package abi

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSpecCodec keeps SPEC.md section 14 in step with codec.go: the
// exports and the pairs limits.
func TestSpecCodec(t *testing.T) {
	spec := readSpec(t)
	exports := map[string]bool{}
	for _, r := range table(t, spec, "### 14.1 Exports") {
		exports[r[0]] = true
	}
	for _, name := range []string{ExportABIVersion, ExportAlloc, ExportCodecPairs, ExportCodecConvert, ExportMemory} {
		if !exports[name] {
			t.Errorf("codec export %q is in the package but not in SPEC.md 14.1", name)
		}
		delete(exports, name)
	}
	for name := range exports {
		t.Errorf("codec export %q is in SPEC.md 14.1 but not in the package", name)
	}
	want := map[string]string{
		"pairs per codec, at most":     fmt.Sprint(MaxCodecPairs),
		"bytes of pairs text, at most": fmt.Sprint(MaxCodecPairsText),
	}
	for _, r := range table(t, spec, "### 14.2 Pairs") {
		w, ok := want[r[0]]
		if !ok {
			t.Errorf("SPEC.md pairs limit %q is not in the package", r[0])
			continue
		}
		if r[1] != w {
			t.Errorf("SPEC.md pairs limit %q is %q, the package says %q", r[0], r[1], w)
		}
		delete(want, r[0])
	}
	for k := range want {
		t.Errorf("pairs limit %q is in the package but not in SPEC.md", k)
	}
	for _, name := range CodecMayImport() {
		if !strings.Contains(spec[strings.Index(spec, "### 14.3 Imports"):], "`"+name+"`") {
			t.Errorf("SPEC.md 14.3 does not name import %q that a codec may use", name)
		}
	}
}

func TestParseCodecPairs(t *testing.T) {
	got, err := ParseCodecPairs([]byte("type application/json application/cbor\ntype application/cbor application/json\nencoding identity gzip\nencoding gzip identity\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []CodecPair{
		{CodecType, "application/json", "application/cbor"},
		{CodecType, "application/cbor", "application/json"},
		{CodecEncoding, Identity, "gzip"},
		{CodecEncoding, "gzip", Identity},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	var b strings.Builder
	for i := range MaxCodecPairs + 1 {
		fmt.Fprintf(&b, "type a/x%d a/y\n", i)
	}
	many := b.String()
	for _, c := range []struct{ text, want string }{
		{"", "empty"},
		{"type a/b a/c\n\ntype a/c a/b", "line 2 is empty"},
		{"type a/b  a/c", "line 1"},
		{"type a/b a/c\ntype a/b", "line 2"},
		{"kind a/b a/c", `line 1 "kind a/b a/c": unknown kind`},
		{"type Application/JSON a/c", "line 1"},
		{"type a/b a/*", "line 1"},
		{"type a/b; charset=utf-8 a/c", "line 1"},
		{"type a/b a/b", "the same"},
		{"type a/b a/c\ntype a/b a/c", "line 2 \"type a/b a/c\": duplicate of line 1"},
		{"encoding gzip br", "exactly one"},
		{"encoding identity identity", "exactly one"},
		{"encoding identity GZIP", "line 1"},
		{"type a/b a/c\r\n", "line 1"},
		{many, "65 pairs"},
		{strings.Repeat("x", MaxCodecPairsText+1), "more than 4096"},
	} {
		_, err := ParseCodecPairs([]byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseCodecPairs(%.40q) = %v, want an error containing %q", c.text, err, c.want)
		}
	}
}

func TestKindOfCodec(t *testing.T) {
	if k, err := KindOf([]string{ExportAlloc, ExportCodecPairs, ExportCodecConvert}); k != PluginCodec || err != nil {
		t.Errorf("codec exports: %q, %v", k, err)
	}
	_, err := KindOf([]string{ExportHandle, ExportCodecConvert})
	if err == nil || !strings.Contains(err.Error(), ExportHandle) || !strings.Contains(err.Error(), ExportCodecConvert) {
		t.Errorf("handle+convert: %v, want an error naming both", err)
	}
}
