package hosttest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNoHostPackage keeps the rule of the package doc: the kit
// imports no host/... package, so that host/internal/mesh's in-package
// tests can import it without a cycle.
func TestImportsNoHostPackage(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/pycomms/pycomms-host/host/") {
				t.Errorf("%s imports %s: hosttest must not import host/... (package cluster may)", f, path)
			}
		}
	}
}
