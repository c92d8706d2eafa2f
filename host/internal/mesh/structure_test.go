package mesh

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The mesh stays made of small parts (doc.go, "Parts"): no type with more
// than maxMethods methods, no file longer than maxLines, and every file
// listed in the package doc, so that the list stays the map of the code.
const (
	maxMethods = 30
	maxLines   = 700
)

func TestPartsStaySmall(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\t(\w+\.go) `).FindAllStringSubmatch(string(doc), -1) {
		listed[m[1]] = true
	}
	fset := token.NewFileSet()
	methods := map[string]int{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(src), "\n"); n > maxLines {
			t.Errorf("%s has %d lines, more than %d: split it along a part's edge", f, n, maxLines)
		}
		if f != "doc.go" && !listed[f] {
			t.Errorf("%s is not listed in doc.go's Parts", f)
		}
		delete(listed, f)
		af, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil {
				continue
			}
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				methods[id.Name]++
			}
		}
	}
	for f := range listed {
		t.Errorf("doc.go's Parts list %s, which does not exist", f)
	}
	for typ, n := range methods {
		if n > maxMethods {
			t.Errorf("type %s has %d methods, more than %d: give one of its jobs a type of its own", typ, n, maxMethods)
		}
	}
}
