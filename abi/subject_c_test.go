package abi

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSubjectTableC builds the C SDK's subject code (sdk/c/pycomms_subject.h)
// natively with clang-14 and runs every case of testdata/subjects.txt
// through it, so the C SDK accepts and matches exactly what the host does.
// Without clang-14 it skips, except in CI (CI=true), where that fails.
func TestSubjectTableC(t *testing.T) {
	clang, err := exec.LookPath("clang-14")
	if err != nil {
		msg := "clang-14 not found on PATH: install it with scripts/install-toolchains.sh"
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (required when CI=true)", msg)
		}
		t.Skip(msg)
	}
	sdk, err := filepath.Abs(filepath.Join("..", "sdk", "c"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "subject_driver")
	// -Wno-unknown-attributes: pycomms.h marks its host imports with Wasm
	// import attributes, which a native target ignores.
	build := exec.Command(clang, "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-attributes",
		"-I", sdk, "-o", bin, filepath.Join(sdk, "testdata", "subject_driver.c"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", build, err, out)
	}

	cases := readSubjectCases(t)
	var in bytes.Buffer
	for _, c := range cases {
		in.WriteString(map[string]string{"subject": "s", "pattern": "p", "match": "m"}[c.op])
		for _, a := range c.args {
			in.WriteString(" " + hex.EncodeToString([]byte(a)))
		}
		in.WriteByte('\n')
	}
	run := exec.Command(bin)
	run.Stdin = &in
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("subject_driver: %v\n%s", err, stderr.Bytes())
	}
	answers := strings.Fields(string(out))
	if len(answers) != len(cases) {
		t.Fatalf("subject_driver answered %d cases of %d", len(answers), len(cases))
	}
	for i, c := range cases {
		if want := fmt.Sprint(map[bool]int{false: 0, true: 1}[c.want]); answers[i] != want {
			t.Errorf("%v: the C SDK says %s, the table %s", c, answers[i], want)
		}
	}
}
