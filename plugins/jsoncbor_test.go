package plugins

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

const (
	jsoncborWasmPath  = "plugins/jsoncbor/jsoncbor.wasm"
	jsoncborToolchain = "plugins/jsoncbor/jsoncbor.wasm.clang-version"
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
	cases := hosttest.JSONCBORCases(t, repoRoot)
	dirs, ins := make([]string, len(cases)), make([][]byte, len(cases))
	for i, c := range cases {
		dirs[i], ins[i] = c.Dir, c.In
	}
	for i, got := range run(dirs, ins) {
		if err := cases[i].Check(got); err != nil {
			t.Errorf("%s: %v", cases[i], err)
		}
	}
}
