package hosttest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// JSONCBORCasesFile is the case table of builtin:json-cbor, relative to
// the repository root.
const JSONCBORCasesFile = "plugins/jsoncbor/testdata/cases.tsv"

// JCCase is one conversion of builtin:json-cbor and its expected result:
// Dir "j" (JSON -> CBOR) or "c" (CBOR -> JSON), the input, and Want: "= "
// and the output (CBOR as lower-case hex, JSON as text) or "! " and part
// of the error message (the status is invalid).
type JCCase struct {
	Line int // in JSONCBORCasesFile; 0 for the generated cases
	Dir  string
	In   []byte
	Want string
}

// JSONCBORCases reads the case table (root is the repository root) and
// adds the cases too long to write there: the nesting limit (256) in both
// directions, long tag chains, bignum lengths. The native test in plugins
// and the test through the Wasm build in host/internal/plugin both run it.
func JSONCBORCases(t testing.TB, root string) []JCCase {
	t.Helper()
	path := filepath.Join(root, filepath.FromSlash(JSONCBORCasesFile))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []JCCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Split(line, "\t")
		if len(fs) != 3 || (fs[0] != "j" && fs[0] != "c") || !(strings.HasPrefix(fs[2], "= ") || strings.HasPrefix(fs[2], "! ")) {
			t.Fatalf("%s:%d: want DIR<tab>INPUT<tab>= OUT or ! ERROR, got %q", JSONCBORCasesFile, n, line)
		}
		c := JCCase{Line: n, Dir: fs[0], Want: fs[2]}
		if hx, ok := strings.CutPrefix(fs[1], "hex:"); ok || c.Dir == "c" {
			if !ok {
				hx = fs[1]
			}
			c.In, err = hex.DecodeString(strings.ReplaceAll(hx, " ", ""))
			if err != nil {
				t.Fatalf("%s:%d: %v", JSONCBORCasesFile, n, err)
			}
		} else {
			c.In = []byte(fs[1])
		}
		if c.Dir == "j" && strings.HasPrefix(c.Want, "= ") {
			c.Want = "= " + strings.ReplaceAll(c.Want[2:], " ", "")
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return append(cases, jcLongCases()...)
}

func jcLongCases() []JCCase {
	deep := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	cdeep := func(n int) []byte { return append(bytes.Repeat([]byte{0x81}, n), 0x00) }
	ideep := func(n int) []byte { return append(bytes.Repeat([]byte{0x9f}, n), bytes.Repeat([]byte{0xff}, n)...) }
	return []JCCase{
		{Dir: "j", In: deep(256), Want: "= " + strings.Repeat("81", 255) + "80"},
		{Dir: "j", In: deep(257), Want: "! nesting deeper than 256 at byte 256"},
		{Dir: "j", In: []byte(strings.Repeat(`{"a":`, 257) + "1" + strings.Repeat("}", 257)), Want: "! nesting deeper than 256 at byte 1280"},
		{Dir: "j", In: []byte(strings.Repeat("[", 1<<20)), Want: "! nesting deeper than 256 at byte 256"},
		{Dir: "j", In: []byte("[" + strings.Repeat("0,", 199_999) + "0]"), Want: "= 9a00030d40" + strings.Repeat("00", 200_000)},
		{Dir: "c", In: cdeep(256), Want: "= " + strings.Repeat("[", 256) + "0" + strings.Repeat("]", 256)},
		{Dir: "c", In: cdeep(257), Want: "! nesting deeper than 256 at byte 256"},
		{Dir: "c", In: ideep(256), Want: "= " + strings.Repeat("[", 256) + strings.Repeat("]", 256)},
		{Dir: "c", In: ideep(257), Want: "! nesting deeper than 256 at byte 256"},
		{Dir: "c", In: bytes.Repeat([]byte{0x81}, 1<<20), Want: "! nesting deeper than 256 at byte 256"},
		{Dir: "c", In: bytes.Repeat([]byte{0xc1}, 1<<16), Want: "! nesting deeper than 256 at byte 256 (tags count as levels)"},
		{Dir: "c", In: append(bytes.Repeat([]byte{0xc1}, 256), 0x00), Want: "= 0"},
		{Dir: "c", In: append(append(bytes.Repeat([]byte{0x81}, 128), bytes.Repeat([]byte{0xc1}, 128)...), 0x80), Want: "! nesting deeper than 256 at byte 256"},
		{Dir: "c", In: append(append(bytes.Repeat([]byte{0x81}, 128), bytes.Repeat([]byte{0xc1}, 127)...), 0x80), Want: "= " + strings.Repeat("[", 129) + strings.Repeat("]", 129)},
		{Dir: "c", In: append([]byte{0xc2, 0x58, 65, 1}, make([]byte, 64)...), Want: "! bignum (tag 2) at byte 0 has 65 bytes, more than the 64 converted"},
		{Dir: "c", In: append([]byte{0xc2, 0x58, 66, 0, 1}, make([]byte, 64)...), Want: "! has 65 bytes"},
		{Dir: "c", In: append([]byte{0xc2, 0x58, 64, 0xff}, bytes.Repeat([]byte{0xff}, 63)...), Want: "= 13407807929942597099574024998205846127479365820592393377723561443721764030073546976801874298166903427690031858186486050853753882811946569946433649006084095"},
	}
}

// Check compares an answer ("= " and the output, CBOR as hex and JSON as
// text, or "! " and the error message) with the case.
func (c JCCase) Check(got string) error {
	if strings.HasPrefix(c.Want, "! ") {
		if !strings.HasPrefix(got, "! ") || !strings.Contains(got, c.Want[2:]) {
			return fmt.Errorf("got %.200q, want an error with %q", got, c.Want[2:])
		}
		return nil
	}
	if got != c.Want {
		return fmt.Errorf("got %.300q, want %.300q", got, c.Want)
	}
	return nil
}

func (c JCCase) String() string {
	in := string(c.In)
	if c.Dir == "c" {
		in = hex.EncodeToString(c.In)
	}
	if c.Line > 0 {
		return fmt.Sprintf("%s:%d (%s %.60q)", JSONCBORCasesFile, c.Line, c.Dir, in)
	}
	return fmt.Sprintf("%s %.60q", c.Dir, in)
}
