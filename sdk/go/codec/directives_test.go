package codec

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
)

// TestDirectives: the //go:wasmexport and //go:wasmimport names (literal,
// as the directives need) are the abi package's: the four exports of a
// codec, and only imports a codec may use.
func TestDirectives(t *testing.T) {
	src, err := os.ReadFile("guest_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	var exports []string
	for _, line := range strings.Split(string(src), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "//go:wasmexport":
			exports = append(exports, f[1])
		case len(f) == 3 && f[0] == "//go:wasmimport":
			if f[1] != abi.ImportModule || !slices.Contains(abi.CodecMayImport(), f[2]) {
				t.Errorf("imports %s %s: a codec may import only %v from %s", f[1], f[2], abi.CodecMayImport(), abi.ImportModule)
			}
		}
	}
	slices.Sort(exports)
	want := []string{abi.ExportABIVersion, abi.ExportAlloc, abi.ExportCodecConvert, abi.ExportCodecPairs}
	slices.Sort(want)
	if !slices.Equal(exports, want) {
		t.Errorf("exports %v, want %v", exports, want)
	}
	if k, err := abi.KindOf(exports); k != abi.PluginCodec {
		t.Errorf("abi.KindOf(%v) = %q, %v; want a codec", exports, k, err)
	}
}
