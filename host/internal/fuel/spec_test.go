package fuel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The WebAssembly spec suite as wazero ships it (wast2json output in its
// module directory): every module the suite calls valid must behave the
// same instrumented as not, and every module it calls invalid or malformed
// must stay refused after instrumentation. This is what keeps the rewriter
// from turning an out-of-range index into a reference to the fuel counter
// or the tick type it appends.

type specFile struct {
	SourceFile string        `json:"source_filename"`
	Commands   []specCommand `json:"commands"`
}

type specCommand struct {
	Type       string     `json:"type"`
	Line       int        `json:"line"`
	Name       string     `json:"name"`
	Filename   string     `json:"filename"`
	As         string     `json:"as"`
	ModuleType string     `json:"module_type"`
	Action     specAction `json:"action"`
}

type specAction struct {
	Type   string      `json:"type"`
	Module string      `json:"module"`
	Field  string      `json:"field"`
	Args   []specValue `json:"args"`
}

type specValue struct {
	Type     string `json:"type"`
	LaneType string `json:"lane_type"`
	Value    any    `json:"value"`
}

// words converts an argument into wazero's uint64 stack representation.
func (v specValue) words() ([]uint64, error) {
	if v.Type == "v128" {
		lanes, ok := v.Value.([]any)
		if !ok {
			return nil, fmt.Errorf("v128 value %v", v.Value)
		}
		width := map[string]int{"i8": 8, "i16": 16, "i32": 32, "i64": 64, "f32": 32, "f64": 64}[v.LaneType]
		if width == 0 || len(lanes)*width != 128 {
			return nil, fmt.Errorf("v128 lane type %q with %d lanes", v.LaneType, len(lanes))
		}
		var w [2]uint64
		for i, l := range lanes {
			s, _ := l.(string)
			x, err := strconv.ParseUint(s, 10, width)
			if err != nil {
				return nil, fmt.Errorf("v128 lane %q: %w", s, err)
			}
			bit := i * width
			w[bit/64] |= x << (bit % 64)
		}
		return w[:], nil
	}
	s, _ := v.Value.(string)
	if v.Value == nil || s == "null" {
		return []uint64{0}, nil
	}
	x, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s value %q: %w", v.Type, s, err)
	}
	if v.Type == "externref" {
		x++ // wazero's null externref is 0, the suite's externref 0 is not null
	}
	return []uint64{x}, nil
}

// specDir is wazero's spectest directory in the module cache. Building
// this test needs the module, so `go list` finds it after `go mod
// download`; a missing directory fails the test rather than skipping it.
func specDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		t.Fatalf("locate wazero's module directory: go list -m: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "internal", "integration_test", "spectest")
	if _, err := os.Stat(filepath.Join(dir, "testdata", "spectest.wasm")); err != nil {
		t.Fatalf("wazero's spec suite not found (run go mod download): %v", err)
	}
	return dir
}

// specSide is one runtime running the suite: plain or instrumented.
type specSide struct {
	rt         wazero.Runtime
	instrument bool
	named      map[string]api.Module
	last       api.Module
}

func newSpecSide(ctx context.Context, t *testing.T, features api.CoreFeatures, spectest []byte, instrument bool) *specSide {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(features))
	t.Cleanup(func() { rt.Close(ctx) })
	if instrument {
		_, err := rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) { s[0] = Period }), nil, []api.ValueType{api.ValueTypeI32}).
			Export(ImportTick).
			NewFunctionBuilder().WithGoModuleFunction(growImport, i32, i32).Export(ImportGrow).Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rt.InstantiateWithConfig(ctx, spectest, wazero.NewModuleConfig().WithName("spectest")); err != nil {
		t.Fatal(err)
	}
	return &specSide{rt: rt, instrument: instrument, named: map[string]api.Module{}}
}

// load instantiates a module under name ("" for anonymous); the error
// says whether the instrumenter or wazero refused it.
func (s *specSide) load(ctx context.Context, b []byte, name string) (api.Module, error) {
	if s.instrument {
		out, err := Instrument(b)
		if err != nil {
			return nil, fmt.Errorf("instrument: %w", err)
		}
		b = out
	}
	return s.rt.InstantiateWithConfig(ctx, b, wazero.NewModuleConfig().WithName(name))
}

// invoke runs an action and returns its results, or the first line of
// the error (the stack trace below it names functions by index, which
// the rewriter shifts).
func (s *specSide) invoke(ctx context.Context, a specAction) (string, error) {
	m := s.last
	if a.Module != "" {
		m = s.named[a.Module]
	}
	if m == nil {
		return "", errors.New("no module")
	}
	if a.Type == "get" {
		g := m.ExportedGlobal(a.Field)
		if g == nil {
			return "", fmt.Errorf("no global %q", a.Field)
		}
		return fmt.Sprint(g.Get()), nil
	}
	f := m.ExportedFunction(a.Field)
	if f == nil {
		return "", fmt.Errorf("no function %q", a.Field)
	}
	var args []uint64
	for _, v := range a.Args {
		w, err := v.words()
		if err != nil {
			return "", err
		}
		args = append(args, w...)
	}
	res, err := f.Call(ctx, args...)
	if err != nil {
		line, _, _ := strings.Cut(err.Error(), "\n")
		return "error: " + line, nil
	}
	return fmt.Sprint(res), nil
}

func TestSpecSuite(t *testing.T) {
	if raceEnabled {
		// One goroutine per file and nothing shared, so the race detector
		// has nothing to find, and it makes the suite 15x slower (~5 min).
		// scripts/test.sh runs it in its pass without -race.
		t.Skip("the spec suite runs in the pass without -race")
	}
	dir := specDir(t)
	spectest, err := os.ReadFile(filepath.Join(dir, "testdata", "spectest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	var files, commands int
	for _, suite := range []struct {
		name     string
		features api.CoreFeatures
	}{{"v1", api.CoreFeaturesV1}, {"v2", api.CoreFeaturesV2}} {
		jsons, err := filepath.Glob(filepath.Join(dir, suite.name, "testdata", "*.json"))
		if err != nil || len(jsons) == 0 {
			t.Fatalf("no spec files in %s/%s: %v", dir, suite.name, err)
		}
		for _, path := range jsons {
			files++
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var f specFile
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			commands += len(f.Commands)
			t.Run(suite.name+"/"+strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
				t.Parallel()
				runSpecFile(t, filepath.Dir(path), f, suite.features, spectest)
			})
		}
	}
	t.Logf("%d spec files, %d commands", files, commands)
}

func runSpecFile(t *testing.T, dir string, f specFile, features api.CoreFeatures, spectest []byte) {
	ctx := context.Background()
	plain := newSpecSide(ctx, t, features, spectest, false)
	metered := newSpecSide(ctx, t, features, spectest, true)
	read := func(c specCommand) []byte {
		b, err := os.ReadFile(filepath.Join(dir, c.Filename))
		if err != nil {
			t.Fatalf("line %d: %v", c.Line, err)
		}
		return b
	}
	for i := 0; i < len(f.Commands); i++ {
		c := f.Commands[i]
		where := fmt.Sprintf("%s:%d %s", f.SourceFile, c.Line, c.Type)
		switch c.Type {
		case "module":
			b := read(c)
			var as string
			if i+1 < len(f.Commands) && f.Commands[i+1].Type == "register" {
				as = f.Commands[i+1].As
				i++
			}
			pm, perr := plain.load(ctx, b, as)
			mm, merr := metered.load(ctx, b, as)
			if perr != nil {
				// wazero itself refuses a few modules the suite calls valid;
				// the instrumented copy must not do better.
				if merr == nil {
					t.Errorf("%s %s: wazero refuses the module (%v) but accepts it instrumented", where, c.Filename, perr)
				}
				pm, mm = nil, nil
			} else if merr != nil {
				t.Errorf("%s %s: valid module refused after instrumentation: %v", where, c.Filename, merr)
				mm = nil
			}
			plain.last, metered.last = pm, mm
			if c.Name != "" {
				plain.named[c.Name], metered.named[c.Name] = pm, mm
			}
		case "register":
			// A register that does not follow its module re-registers a
			// named one; wazero cannot alias an instance, and the suite
			// has none of these in v1/v2.
			t.Errorf("%s: register not directly after its module", where)
		case "assert_return", "action", "assert_trap", "assert_exhaustion", "assert_exception":
			if plain.last == nil && c.Action.Module == "" {
				continue // the module wazero refused above
			}
			want, perr := plain.invoke(ctx, c.Action)
			got, merr := metered.invoke(ctx, c.Action)
			if perr != nil || merr != nil {
				if (perr == nil) != (merr == nil) {
					t.Errorf("%s %s: plain %v, instrumented %v", where, c.Action.Field, perr, merr)
				}
				continue
			}
			if got != want {
				t.Errorf("%s %s%v: instrumented gives %s, plain %s", where, c.Action.Field, c.Action.Args, got, want)
			}
		case "assert_invalid", "assert_malformed", "assert_unlinkable", "assert_uninstantiable":
			if c.ModuleType == "text" {
				continue // .wat text: the suite's own parser tests
			}
			b := read(c)
			_, perr := plain.load(ctx, b, "")
			_, merr := metered.load(ctx, b, "")
			if perr != nil && merr == nil {
				t.Errorf("%s %s: refused plain (%v) but accepted after instrumentation", where, c.Filename, perr)
			}
			if perr == nil && merr != nil {
				t.Errorf("%s %s: accepted plain but refused after instrumentation: %v", where, c.Filename, merr)
			}
		default:
			t.Errorf("%s: unknown command", where)
		}
	}
}
