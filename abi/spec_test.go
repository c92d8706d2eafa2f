package abi

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// table returns the rows of the markdown table that follows heading in
// SPEC.md, each as its trimmed cells with backquotes removed.
func table(t *testing.T, spec, heading string) [][]string {
	t.Helper()
	i := strings.Index(spec, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("SPEC.md has no heading %q", heading)
	}
	var rows [][]string
	inTable := false
	for _, line := range strings.Split(spec[i+len(heading)+2:], "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.ReplaceAll(strings.TrimSpace(cells[k]), "`", "")
		}
		if strings.HasPrefix(cells[0], "---") || cells[0] == "name" || cells[0] == "item" || cells[0] == "limit" {
			continue
		}
		rows = append(rows, cells)
	}
	return rows
}

func readSpec(t *testing.T) string {
	b, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSpecVersion(t *testing.T) {
	spec := readSpec(t)
	rows := table(t, spec, "## 1. Versioning")
	want := map[string]string{
		"ABI version":   strconv.Itoa(Version),
		"host accepts":  "[" + strconv.Itoa(MinVersion) + ", " + strconv.Itoa(MaxVersion) + "]",
		"import module": ImportModule,
	}
	for _, r := range rows {
		if w, ok := want[r[0]]; ok {
			if r[1] != w {
				t.Errorf("SPEC.md %s = %q, package says %q", r[0], r[1], w)
			}
			delete(want, r[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("SPEC.md versioning table lacks %v", want)
	}
	if !strings.HasPrefix(spec, "# pycomms plugin ABI, version "+strconv.Itoa(Version)+"\n") {
		t.Error("SPEC.md title does not name the ABI version")
	}
}

func TestSpecExports(t *testing.T) {
	got := map[string]bool{}
	for _, r := range table(t, readSpec(t), "## 3. Exports (guest provides)") {
		got[r[0]] = true
	}
	for _, name := range []string{ExportABIVersion, ExportAlloc, ExportHandle, ExportMemory, ExportInitialize, ExportHandleBatch} {
		if !got[name] {
			t.Errorf("export %q is in the package but not in SPEC.md", name)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("export %q is in SPEC.md but not in the package", name)
	}
}

func TestSpecBatchLimits(t *testing.T) {
	want := map[string]string{
		"fixed part of a record":            fmt.Sprintf("%d bytes", BatchRecordHeader),
		"records in one batch, at most":     fmt.Sprint(BatchMaxCount),
		"bytes in one batch (len), at most": fmt.Sprint(BatchMaxBytes),
	}
	rows := table(t, readSpec(t), "### 3.1 Batches of sends and events")
	for _, r := range rows {
		w, ok := want[r[0]]
		if !ok {
			t.Errorf("SPEC.md batch limit %q is not in the package", r[0])
			continue
		}
		if r[1] != w {
			t.Errorf("SPEC.md batch limit %q is %q, the package says %q", r[0], r[1], w)
		}
		delete(want, r[0])
	}
	for k := range want {
		t.Errorf("batch limit %q is in the package but not in SPEC.md", k)
	}
}

func TestSpecImports(t *testing.T) {
	rows := table(t, readSpec(t), "## 4. Imports (host provides, module `pycomms:host/v1`)")
	sig := regexp.MustCompile(`^\((.*)\) -> i32$`)
	seen := map[string]bool{}
	byName := map[string]Import{}
	for _, im := range Imports() {
		byName[im.Name] = im
	}
	for _, r := range rows {
		name, signature, grant := r[0], r[1], r[2]
		seen[name] = true
		c, ok := ImportCapability(name)
		if !ok {
			t.Errorf("import %q is in SPEC.md but not in Imports", name)
			continue
		}
		if want := string(c); (want == "" && grant != "none") || (want != "" && grant != want) {
			t.Errorf("import %q: SPEC.md grant %q, package %q", name, grant, want)
		}
		if !sig.MatchString(signature) {
			t.Errorf("import %q: signature %q is not (i32...) -> i32", name, signature)
		}
		if want := byName[name].Signature(); signature != want {
			t.Errorf("import %q: SPEC.md signature %q, package %q", name, signature, want)
		}
	}
	for _, im := range Imports() {
		if !seen[im.Name] {
			t.Errorf("import %q is in the package but not in SPEC.md", im.Name)
		}
	}
}

func TestSpecStatuses(t *testing.T) {
	rows := table(t, readSpec(t), "## 6. Status codes")
	if len(rows) != len(Statuses()) {
		t.Errorf("SPEC.md lists %d statuses, package %d", len(rows), len(Statuses()))
	}
	for _, r := range rows {
		s, ok := ParseStatus(r[0])
		if !ok {
			t.Errorf("status %q is in SPEC.md but not in the package", r[0])
			continue
		}
		if strconv.Itoa(int(s)) != r[1] {
			t.Errorf("status %q: SPEC.md %s, package %d", r[0], r[1], s)
		}
	}
}

func TestSpecKindsLevelsCapabilities(t *testing.T) {
	spec := readSpec(t)
	kinds := map[string]Kind{"request": KindRequest, "send": KindSend, "event": KindEvent}
	for _, r := range table(t, spec, "## 5. Message kinds") {
		if k, ok := kinds[r[0]]; !ok || strconv.Itoa(int(k)) != r[1] || k.String() != r[0] {
			t.Errorf("kind %v does not match the package", r)
		}
		delete(kinds, r[0])
	}
	if len(kinds) > 0 {
		t.Errorf("kinds missing from SPEC.md: %v", kinds)
	}
	levels := map[string]Level{"debug": LevelDebug, "info": LevelInfo, "warn": LevelWarn, "error": LevelError}
	for _, r := range table(t, spec, "## 7. Log levels") {
		if l, ok := levels[r[0]]; !ok || strconv.Itoa(int(l)) != r[1] {
			t.Errorf("level %v does not match the package", r)
		}
		delete(levels, r[0])
	}
	if len(levels) > 0 {
		t.Errorf("levels missing from SPEC.md: %v", levels)
	}
	caps := map[Capability]bool{}
	for _, c := range Capabilities() {
		caps[c] = true
	}
	for _, r := range table(t, spec, "## 8. Capabilities") {
		c := Capability(r[0])
		if !caps[c] {
			t.Errorf("capability %q is in SPEC.md but not the package", c)
		}
		for _, imp := range strings.Split(r[1], ",") {
			if got, _ := ImportCapability(strings.TrimSpace(imp)); got != c {
				t.Errorf("capability %q: import %q does not need it in the package", c, imp)
			}
		}
		delete(caps, c)
	}
	if len(caps) > 0 {
		t.Errorf("capabilities missing from SPEC.md: %v", caps)
	}
}

// TestProtocolVersions keeps the host-to-host protocol range declared here
// in step with PROTOCOL.md (host/internal/wire's own test checks the rest of it).
func TestProtocolVersions(t *testing.T) {
	b, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	want := "[" + strconv.Itoa(ProtocolMinVersion) + ", " + strconv.Itoa(ProtocolMaxVersion) + "]"
	found := false
	for _, r := range table(t, doc, "## 1. Versions") {
		if r[0] == "protocol versions" {
			found = true
			if r[1] != want {
				t.Errorf("PROTOCOL.md protocol versions %s, package %s", r[1], want)
			}
		}
	}
	if !found {
		t.Error("PROTOCOL.md section 1 has no protocol versions row")
	}
	if title := "# pycomms host-to-host protocol, version " + strconv.Itoa(ProtocolMaxVersion) + "\n"; !strings.HasPrefix(doc, title) {
		t.Errorf("PROTOCOL.md title is not %q", title)
	}
}
