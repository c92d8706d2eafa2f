package wire

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// These tests keep abi/PROTOCOL.md and this package in step: every number
// and name in the document's tables must be the package's, and the other
// way round.

func readProtocol(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../../abi/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// protocolTable returns the body rows of the first markdown table after
// heading, each as its trimmed cells with backquotes removed.
func protocolTable(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("PROTOCOL.md has no heading %q", heading)
	}
	var rows [][]string
	inTable, headerRow := false, true
	for _, line := range strings.Split(doc[i+len(heading)+2:], "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			if strings.HasPrefix(line, "#") {
				t.Fatalf("PROTOCOL.md %q has no table before the next heading", heading)
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.ReplaceAll(strings.TrimSpace(cells[k]), "`", "")
		}
		if headerRow || strings.HasPrefix(cells[0], "---") {
			headerRow = false
			continue
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("PROTOCOL.md %q: empty table", heading)
	}
	return rows
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("PROTOCOL.md: %q is not a number", s)
	}
	return n
}

func TestProtocolVersion(t *testing.T) {
	doc := readProtocol(t)
	if want := fmt.Sprintf("# pycomms host-to-host protocol, version %d\n", MaxVersion); !strings.HasPrefix(doc, want) {
		t.Errorf("PROTOCOL.md title is not %q", want)
	}
	for _, r := range protocolTable(t, doc, "## 1. Versions") {
		if r[0] == "protocol versions" {
			if want := fmt.Sprintf("[%d, %d]", MinVersion, MaxVersion); r[1] != want {
				t.Errorf("PROTOCOL.md protocol versions %s, package %s", r[1], want)
			}
			return
		}
	}
	t.Error("PROTOCOL.md versions table lacks the protocol versions")
}

func TestProtocolFrameTypes(t *testing.T) {
	seen := map[FrameType]bool{}
	for _, r := range protocolTable(t, readProtocol(t), "## 4. Frame types") {
		ft := FrameType(atoi(t, r[1]))
		if !ft.known() || ft.String() != r[0] {
			t.Errorf("PROTOCOL.md frame type %s = %s; the package calls %d %q", r[0], r[1], ft, ft)
		}
		seen[ft] = true
	}
	for ft := range 256 {
		if FrameType(ft).known() && !seen[FrameType(ft)] {
			t.Errorf("frame type %d (%v) is in the package but not in PROTOCOL.md", ft, FrameType(ft))
		}
	}
}

func TestProtocolEnvelopeKeys(t *testing.T) {
	rows := protocolTable(t, readProtocol(t), "### 7.1 Keys")
	if len(rows) != numKeys {
		t.Errorf("PROTOCOL.md lists %d envelope keys, the package %d", len(rows), numKeys)
	}
	fields := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Envelope]()) {
		fields[snake(f.Name)] = f
	}
	for _, r := range rows {
		key, name, typ := atoi(t, r[0]), r[1], r[2]
		if key >= numKeys || keyNames[key] != name {
			t.Errorf("PROTOCOL.md envelope key %d is %q; the package does not agree", key, name)
			continue
		}
		f, ok := fields[name]
		if !ok {
			t.Errorf("envelope key %q has no Envelope field", name)
			continue
		}
		if got := wireType(f.Type); got != typ {
			t.Errorf("envelope key %q: PROTOCOL.md type %q, Envelope.%s is %q", name, typ, f.Name, got)
		}
	}
}

func TestProtocolKinds(t *testing.T) {
	seen := map[MsgKind]bool{}
	for _, r := range protocolTable(t, readProtocol(t), "### 7.2 Kinds") {
		k := MsgKind(atoi(t, r[1]))
		if k.String() != r[0] {
			t.Errorf("PROTOCOL.md kind %s = %s; the package calls %d %q", r[0], r[1], k, k)
		}
		seen[k] = true
	}
	for k := KindRequest; k <= KindCancel; k++ {
		if !seen[k] {
			t.Errorf("kind %v is in the package but not in PROTOCOL.md", k)
		}
	}
}

func TestProtocolErrorCodes(t *testing.T) {
	seen := map[ErrorCode]bool{}
	for _, r := range protocolTable(t, readProtocol(t), "## 8. Error codes") {
		c := ErrorCode(atoi(t, r[1]))
		if c.String() != r[0] {
			t.Errorf("PROTOCOL.md error code %s = %s; the package calls %d %q", r[0], r[1], c, c)
		}
		seen[c] = true
	}
	for c := range ErrorCode(len(codeNames)) {
		if codeNames[c] != "" && !seen[c] {
			t.Errorf("error code %v is in the package but not in PROTOCOL.md", c)
		}
	}
}

func TestProtocolControlBodies(t *testing.T) {
	doc := readProtocol(t)
	for heading, v := range map[string]any{
		"### 6.1 Hello":                         Hello{},
		"### 6.2 ErrorFrame (error and goaway)": ErrorFrame{},
		"### 6.3 Interest":                      Interest{},
		"### 6.4 Ping (ping and pong)":          Ping{},
		"### 6.5 Members":                       Members{},
		"### 6.6 MemberEntry":                   MemberEntry{},
		"### 6.7 MemberRecord":                  MemberRecord{},
		"### 6.8 Ack":                           Ack{},
	} {
		typ := reflect.TypeOf(v)
		want := map[int]reflect.StructField{}
		for _, f := range reflect.VisibleFields(typ) {
			tag := strings.Split(f.Tag.Get("cbor"), ",")
			if len(tag) < 2 || tag[1] != "keyasint" {
				t.Errorf("%s.%s: cbor tag %q does not give an integer key", typ.Name(), f.Name, f.Tag.Get("cbor"))
				continue
			}
			want[atoi(t, tag[0])] = f
		}
		for _, r := range protocolTable(t, doc, heading) {
			key, name, wt := atoi(t, r[0]), r[1], r[2]
			f, ok := want[key]
			if !ok {
				t.Errorf("%s key %d (%s) is in PROTOCOL.md but not in the package", typ.Name(), key, name)
				continue
			}
			if snake(f.Name) != name {
				t.Errorf("%s key %d: PROTOCOL.md calls it %q, the package %s", typ.Name(), key, name, f.Name)
			}
			if got := wireType(f.Type); got != wt {
				t.Errorf("%s key %d (%s): PROTOCOL.md type %q, the package %q", typ.Name(), key, name, wt, got)
			}
			delete(want, key)
		}
		for key, f := range want {
			t.Errorf("%s.%s (key %d) is in the package but not in PROTOCOL.md", typ.Name(), f.Name, key)
		}
	}
}

func TestProtocolQUICStreams(t *testing.T) {
	want := map[string]byte{"main": StreamMain, "frame": StreamFrame}
	for _, r := range protocolTable(t, readProtocol(t), "## 12. QUIC mapping") {
		b, ok := want[r[1]]
		if !ok {
			t.Errorf("PROTOCOL.md stream type %q is not in the package", r[1])
			continue
		}
		if w := fmt.Sprintf("0x%02X (%c)", b, b); r[0] != w {
			t.Errorf("stream type %s: PROTOCOL.md %q, package %q", r[1], r[0], w)
		}
		delete(want, r[1])
	}
	for name := range want {
		t.Errorf("stream type %q is in the package but not in PROTOCOL.md", name)
	}
}

// TestProtocolNumbers checks the limits stated in the text.
func TestProtocolNumbers(t *testing.T) {
	doc := strings.Join(strings.Fields(readProtocol(t)), " ")
	opts := decMode.DecOptions()
	for _, s := range []string{
		fmt.Sprintf("a frame header is %d bytes", HeaderLen),
		fmt.Sprintf("`max_frame` + %d bytes", Overhead),
		fmt.Sprintf("more than %d bytes, header included", SeparateStreamAbove),
		fmt.Sprintf("nested at most %d deep", maxSkipDepth),
		fmt.Sprintf("nesting deeper than %d levels", opts.MaxNestedLevels),
		fmt.Sprintf("arrays or maps of more than %d elements", opts.MaxArrayElements),
		fmt.Sprintf("a key above %d it does not know", numKeys-1),
	} {
		if !strings.Contains(doc, s) {
			t.Errorf("PROTOCOL.md does not say %q", s)
		}
	}
	if opts.MaxArrayElements != opts.MaxMapPairs {
		t.Errorf("PROTOCOL.md states one element limit; the package has %d for arrays and %d for maps", opts.MaxArrayElements, opts.MaxMapPairs)
	}
}

// snake turns a Go field name into the protocol's name: MaxFrame is
// max_frame, ID is id.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) && unicode.IsLower(rune(s[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// wireType names a field's Go type the way PROTOCOL.md's tables do.
func wireType(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[string]():
		return "text"
	case t == reflect.TypeFor[[]byte]():
		return "bytes"
	case t == reflect.TypeFor[map[string]string]():
		return "map text to text"
	case t.Kind() == reflect.Slice:
		return "array of " + wireType(t.Elem())
	case t.Kind() == reflect.Struct:
		return t.Name()
	}
	return t.Kind().String()
}
