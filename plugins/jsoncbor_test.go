package plugins

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	jsoncborWasmPath  = "plugins/jsoncbor/jsoncbor.wasm"
	jsoncborToolchain = "plugins/jsoncbor/jsoncbor.wasm.clang-version"
	jsoncborCases     = "plugins/jsoncbor/testdata/cases.tsv"
)

// TestJSONCBORIsFresh: plugins/jsoncbor/jsoncbor.wasm is what
// scripts/build-fixtures.sh builds from plugins/jsoncbor and the C codec
// SDK today (compared when the local toolchain is the recorded one), it is
// builtin:json-cbor, and a codec by its exports.
func TestJSONCBORIsFresh(t *testing.T) {
	committed, err := os.ReadFile(inRepo(jsoncborWasmPath))
	if err != nil {
		t.Fatal(err)
	}
	checkCodecExports(t, jsoncborWasmPath, committed)
	if b, ok := Builtin("json-cbor"); !ok || !bytes.Equal(b, committed) {
		t.Errorf("builtin:json-cbor is not %s", jsoncborWasmPath)
	}
	requireTool(t, "clang-14")
	out := build(t, "c")
	committedID, err := os.ReadFile(inRepo(jsoncborToolchain))
	if err != nil {
		t.Fatalf("%v (run %s)", err, buildScript)
	}
	localID, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(jsoncborToolchain)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committedID, localID) {
		t.Skipf("%s was built with a different toolchain, so its bytes are not compared:\ncommitted:\n%slocal:\n%s",
			jsoncborWasmPath, committedID, localID)
	}
	fresh, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(jsoncborWasmPath)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, fresh) {
		t.Errorf("%s is stale: it differs from what %s builds from plugins/jsoncbor and sdk/c (%d vs %d bytes); run %s and commit the result",
			jsoncborWasmPath, buildScript, len(committed), len(fresh), buildScript)
	}
}

// TestGoCodecsAreFresh: each bundled Go codec's DIR/DIR.wasm is what
// mkwasm.go builds from source today, and a codec by its exports.
func TestGoCodecsAreFresh(t *testing.T) {
	for _, dir := range []string{"gzip"} {
		t.Run(dir, func(t *testing.T) {
			wasm := filepath.Join(dir, dir+".wasm")
			committed, err := os.ReadFile(wasm)
			if err != nil {
				t.Fatal(err)
			}
			checkCodecExports(t, wasm, committed)
			checkGoBuildFresh(t, dir, committed)
		})
	}
}

// jcCase is one row of plugins/jsoncbor/testdata/cases.tsv: dir "j" (JSON
// -> CBOR) or "c" (CBOR -> JSON), the input bytes, and want: "= " and the
// output (CBOR as hex, JSON as text) or "! " and part of the error.
type jcCase struct {
	line int
	dir  string
	in   []byte
	want string
}

// readJCCases parses the case table; it is shared with the test that runs
// the same table through the Wasm build (host/internal/plugin).
func readJCCases(t *testing.T) []jcCase {
	t.Helper()
	f, err := os.Open(inRepo(jsoncborCases))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []jcCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || (f[0] != "j" && f[0] != "c") || !(strings.HasPrefix(f[2], "= ") || strings.HasPrefix(f[2], "! ")) {
			t.Fatalf("%s:%d: want DIR<tab>INPUT<tab>= OUT or ! ERROR, got %q", jsoncborCases, n, line)
		}
		c := jcCase{line: n, dir: f[0], want: f[2]}
		if hx, ok := strings.CutPrefix(f[1], "hex:"); ok || c.dir == "c" {
			if !ok {
				hx = f[1]
			}
			c.in, err = hex.DecodeString(strings.ReplaceAll(hx, " ", ""))
			if err != nil {
				t.Fatalf("%s:%d: %v", jsoncborCases, n, err)
			}
		} else {
			c.in = []byte(f[1])
		}
		if c.dir == "j" && strings.HasPrefix(c.want, "= ") {
			c.want = "= " + strings.ReplaceAll(c.want[2:], " ", "")
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return append(cases, jcDeepCases()...)
}

// jcDeepCases are the nesting limit (256 open arrays or maps) in both
// directions, too long to write in the table.
func jcDeepCases() []jcCase {
	deep := func(n int) []byte {
		return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	cdeep := func(n int) []byte { return append(bytes.Repeat([]byte{0x81}, n), 0x00) }
	ideep := func(n int) []byte { return append(bytes.Repeat([]byte{0x9f}, n), bytes.Repeat([]byte{0xff}, n)...) }
	return []jcCase{
		{dir: "j", in: deep(256), want: "= " + strings.Repeat("81", 255) + "80"},
		{dir: "j", in: deep(257), want: "! nesting deeper than 256 at byte 256"},
		{dir: "j", in: []byte(strings.Repeat(`{"a":`, 257) + "1" + strings.Repeat("}", 257)), want: "! nesting deeper than 256 at byte 1280"},
		{dir: "j", in: []byte(strings.Repeat("[", 1<<20)), want: "! nesting deeper than 256 at byte 256"},
		{dir: "c", in: cdeep(256), want: "= " + strings.Repeat("[", 256) + "0" + strings.Repeat("]", 256)},
		{dir: "c", in: cdeep(257), want: "! nesting deeper than 256 at byte 256"},
		{dir: "c", in: ideep(256), want: "= " + strings.Repeat("[", 256) + strings.Repeat("]", 256)},
		{dir: "c", in: ideep(257), want: "! nesting deeper than 256 at byte 256"},
		{dir: "c", in: bytes.Repeat([]byte{0xc1}, 1<<16), want: "! unexpected end of CBOR data at byte 65536"},
		{dir: "c", in: append([]byte{0xc2, 0x58, 65, 1}, make([]byte, 64)...), want: "! bignum (tag 2) at byte 0 has 65 bytes, more than the 64 converted"},
		{dir: "c", in: append([]byte{0xc2, 0x58, 66, 0, 1}, make([]byte, 64)...), want: "! has 65 bytes"},
		{dir: "c", in: append([]byte{0xc2, 0x58, 64, 0xff}, bytes.Repeat([]byte{0xff}, 63)...), want: "= 13407807929942597099574024998205846127479365820592393377723561443721764030073546976801874298166903427690031858186486050853753882811946569946433649006084095"},
	}
}

// jcCheck compares one answer ("= HEX-or-text" or "! STATUS message") with
// a case; dir "j" answers carry CBOR as hex, dir "c" JSON as text.
func jcCheck(c jcCase, got string) error {
	if strings.HasPrefix(c.want, "! ") {
		if !strings.HasPrefix(got, "! ") || !strings.Contains(got, c.want[2:]) {
			return fmt.Errorf("got %.200q, want an error with %q", got, c.want[2:])
		}
		return nil
	}
	if got != c.want {
		return fmt.Errorf("got %.300q, want %.300q", got, c.want)
	}
	return nil
}

func (c jcCase) String() string {
	in := string(c.in)
	if c.dir == "c" {
		in = hex.EncodeToString(c.in)
	}
	if c.line > 0 {
		return fmt.Sprintf("%s:%d (%s %.60q)", jsoncborCases, c.line, c.dir, in)
	}
	return fmt.Sprintf("%s %.60q", c.dir, in)
}

// jcDriver builds plugins/jsoncbor/testdata/jc_driver.c natively and
// returns a function that runs a batch of conversions through it: for each
// input its answer, "= " and the output (CBOR as hex, JSON as text) or
// "! STATUS message".
func jcDriver(t *testing.T) func(dirs []string, ins [][]byte) []string {
	t.Helper()
	requireTool(t, "clang-14")
	bin := filepath.Join(t.TempDir(), "jc_driver")
	cc := exec.Command("clang-14", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=undefined", "-fsanitize-trap=all",
		"-D_FORTIFY_SOURCE=2", "-o", bin, inRepo("plugins/jsoncbor/testdata/jc_driver.c"), "-lm")
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cc.Args, err, out)
	}
	return func(dirs []string, ins [][]byte) []string {
		t.Helper()
		var in bytes.Buffer
		for i, d := range dirs {
			in.WriteString(d + " " + hex.EncodeToString(ins[i]) + "\n")
		}
		run := exec.Command(bin)
		run.Stdin = &in
		var stderr bytes.Buffer
		run.Stderr = &stderr
		out, err := run.Output()
		if err != nil {
			t.Fatalf("jc_driver: %v\n%s", err, stderr.Bytes())
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(got) != len(dirs) {
			t.Fatalf("jc_driver answered %d of %d inputs", len(got), len(dirs))
		}
		for i, g := range got {
			// "! 2 message": keep the message; "= HEX": JSON back to text
			if rest, ok := strings.CutPrefix(g, "! "); ok {
				_, msg, _ := strings.Cut(rest, " ")
				got[i] = "! " + msg
			} else if dirs[i] == "c" {
				b, err := hex.DecodeString(strings.TrimPrefix(g, "= "))
				if err != nil {
					t.Fatalf("jc_driver: %q: %v", g, err)
				}
				got[i] = "= " + string(b)
			}
		}
		return got
	}
}

// TestJSONCBORTable runs the case table through the conversions compiled
// natively (with UBSan in trap mode: the toolchain here has no sanitizer
// runtimes, so undefined behaviour kills the driver and fails the run);
// host/internal/plugin runs the same table through the Wasm build.
func TestJSONCBORTable(t *testing.T) {
	run := jcDriver(t)
	cases := readJCCases(t)
	dirs, ins := make([]string, len(cases)), make([][]byte, len(cases))
	for i, c := range cases {
		dirs[i], ins[i] = c.dir, c.in
	}
	for i, got := range run(dirs, ins) {
		if err := jcCheck(cases[i], got); err != nil {
			t.Errorf("%s: %v", cases[i], err)
		}
	}
}
