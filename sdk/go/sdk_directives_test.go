package pycomms

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
)

// The //go:wasmimport and //go:wasmexport directives need literal names, so
// they cannot use the abi constants. This test parses the SDK's own source
// (all files, whatever their build constraints) and checks every directive
// against package abi, and each function's arity against SPEC.md.

type directive struct {
	kind   string // "wasmimport" or "wasmexport"
	module string // wasmimport only
	name   string
	fn     *ast.FuncDecl
}

func sdkDirectives(t *testing.T) []directive {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []directive
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		attached := map[*ast.Comment]bool{}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Doc == nil {
				continue
			}
			for _, c := range fn.Doc.List {
				fields := strings.Fields(c.Text)
				switch {
				case len(fields) > 0 && fields[0] == "//go:wasmimport":
					if len(fields) != 3 {
						t.Fatalf("%s: malformed directive %q", fset.Position(c.Pos()), c.Text)
					}
					out = append(out, directive{kind: "wasmimport", module: fields[1], name: fields[2], fn: fn})
					attached[c] = true
				case len(fields) > 0 && fields[0] == "//go:wasmexport":
					if len(fields) != 2 {
						t.Fatalf("%s: malformed directive %q", fset.Position(c.Pos()), c.Text)
					}
					out = append(out, directive{kind: "wasmexport", name: fields[1], fn: fn})
					attached[c] = true
				}
			}
		}
		// A directive not in a function's doc comment is silently ignored
		// by the compiler; catch it here instead.
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if strings.HasPrefix(c.Text, "//go:wasm") && !attached[c] {
					t.Errorf("%s: directive %q is not attached to a function", fset.Position(c.Pos()), c.Text)
				}
			}
		}
	}
	return out
}

func TestDirectivesMatchABI(t *testing.T) {
	var imports, exports []string
	for _, d := range sdkDirectives(t) {
		switch d.kind {
		case "wasmimport":
			if d.module != abi.ImportModule {
				t.Errorf("%s imports from module %q, want abi.ImportModule %q", d.fn.Name.Name, d.module, abi.ImportModule)
			}
			if _, ok := abi.ImportCapability(d.name); !ok {
				t.Errorf("%s imports %q, which is not an abi import", d.fn.Name.Name, d.name)
			}
			if d.fn.Body != nil {
				t.Errorf("%s: a wasmimport function must have no body", d.fn.Name.Name)
			}
			imports = append(imports, d.name)
		case "wasmexport":
			if d.fn.Body == nil {
				t.Errorf("%s: a wasmexport function needs a body", d.fn.Name.Name)
			}
			exports = append(exports, d.name)
		}
	}
	slices.Sort(imports)
	slices.Sort(exports)

	var wantImports []string
	for _, im := range abi.Imports() {
		wantImports = append(wantImports, im.Name)
	}
	slices.Sort(wantImports)
	if !slices.Equal(imports, wantImports) {
		t.Errorf("SDK imports %v, abi defines %v (each exactly once)", imports, wantImports)
	}
	wantExports := []string{abi.ExportABIVersion, abi.ExportAlloc, abi.ExportHandle, abi.ExportHandleBatch}
	slices.Sort(wantExports)
	if !slices.Equal(exports, wantExports) {
		t.Errorf("SDK exports %v, abi defines %v (each exactly once)", exports, wantExports)
	}
}

// i32Types are the Go types the SDK uses for ABI values; all lower to i32.
var i32Types = map[string]bool{"int32": true, "uint32": true, "unsafe.Pointer": true}

func TestDirectiveSignaturesMatchSpec(t *testing.T) {
	spec := specSignatures(t)
	for _, d := range sdkDirectives(t) {
		want, ok := spec[d.name]
		if !ok {
			t.Errorf("SPEC.md has no signature row for %q", d.name)
			continue
		}
		var params []string
		for _, f := range d.fn.Type.Params.List {
			typ := typeString(f.Type)
			n := max(len(f.Names), 1)
			for range n {
				params = append(params, typ)
			}
		}
		var results []string
		if d.fn.Type.Results != nil {
			for _, f := range d.fn.Type.Results.List {
				results = append(results, typeString(f.Type))
			}
		}
		for _, typ := range append(slices.Clone(params), results...) {
			if !i32Types[typ] {
				t.Errorf("%s (%s): Go type %s is not one the SDK maps to i32", d.fn.Name.Name, d.name, typ)
			}
		}
		if len(params) != want.params || len(results) != want.results {
			t.Errorf("%s (%s): %d params and %d results, SPEC.md says %d and %d",
				d.fn.Name.Name, d.name, len(params), len(results), want.params, want.results)
		}
	}
}

func typeString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return typeString(e.X) + "." + e.Sel.Name
	}
	return "?"
}

type specSig struct{ params, results int }

// specRow matches a signature row of SPEC.md's export and import tables:
// | `name` | `(a i32, b i32) -> i32` | ...
var specRow = regexp.MustCompile("^\\|\\s*`([a-z_]+)`\\s*\\|\\s*`\\(([^)]*)\\)\\s*->\\s*(i32|\\(\\))`")

// specSignatures reads the i32 arity of every function in SPEC.md.
func specSignatures(t *testing.T) map[string]specSig {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "abi", "SPEC.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sigs := map[string]specSig{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := specRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var sig specSig
		if strings.TrimSpace(m[2]) != "" {
			for _, p := range strings.Split(m[2], ",") {
				if !strings.HasSuffix(strings.TrimSpace(p), " i32") {
					t.Fatalf("SPEC.md: %s: parameter %q is not an i32", m[1], p)
				}
				sig.params++
			}
		}
		if m[3] == "i32" {
			sig.results = 1
		}
		sigs[m[1]] = sig
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(sigs) == 0 {
		t.Fatal("SPEC.md: found no signature rows")
	}
	return sigs
}
