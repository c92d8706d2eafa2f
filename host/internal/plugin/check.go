package plugin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/fuel"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// checkModule verifies exports and imports against ABI v1 so that a plugin
// that cannot work is refused at load, with every problem named.
func checkModule(mod wazero.CompiledModule, kind abi.PluginKind) error {
	var problems []string
	exports := mod.ExportedFunctions()
	if err := kindMismatch(exports, kind); err != nil {
		return err
	}
	want := []struct {
		name    string
		params  []api.ValueType
		results []api.ValueType
	}{
		{abi.ExportABIVersion, nil, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportAlloc, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportHandle, slices.Repeat([]api.ValueType{api.ValueTypeI32}, 5), []api.ValueType{api.ValueTypeI32}},
	}
	switch kind {
	case abi.PluginTransport:
		want[2].name, want[2].params = abi.ExportTransportEvent, slices.Repeat([]api.ValueType{api.ValueTypeI32}, 7)
	case abi.PluginCodec:
		want[2].name, want[2].params = abi.ExportCodecConvert, slices.Repeat([]api.ValueType{api.ValueTypeI32}, 4)
		want = append(want, want[0])
		want[3].name = abi.ExportCodecPairs
	}
	for _, w := range want {
		def, ok := exports[w.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %q", w.name))
			continue
		}
		if !slices.Equal(def.ParamTypes(), w.params) || !slices.Equal(def.ResultTypes(), w.results) {
			problems = append(problems, fmt.Sprintf("export %q has signature %s, want %s",
				w.name, sig(def.ParamTypes(), def.ResultTypes()), sig(w.params, w.results)))
		}
	}
	if def, ok := exports[abi.ExportHandleBatch]; ok {
		params, results := slices.Repeat([]api.ValueType{api.ValueTypeI32}, 3), []api.ValueType{api.ValueTypeI32}
		if !slices.Equal(def.ParamTypes(), params) || !slices.Equal(def.ResultTypes(), results) {
			problems = append(problems, fmt.Sprintf("optional export %q has signature %s, want %s",
				abi.ExportHandleBatch, sig(def.ParamTypes(), def.ResultTypes()), sig(params, results)))
		}
	}
	if _, ok := mod.ExportedMemories()[abi.ExportMemory]; !ok {
		problems = append(problems, fmt.Sprintf("missing export %q (memory)", abi.ExportMemory))
	}
	for _, def := range mod.ImportedFunctions() {
		modName, name, _ := def.Import()
		switch modName {
		case wasi_snapshot_preview1.ModuleName:
		case fuel.ImportModule:
			if name != fuel.ImportTick && name != fuel.ImportGrow {
				problems = append(problems, fmt.Sprintf("imports %s.%s from a module reserved for the host", modName, name))
			}
		case abi.ImportModule:
			hf, ok := hostImports[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports unknown host function %s.%s", modName, name))
				continue
			}
			if p := importForKind(name, kind); p != "" {
				problems = append(problems, p)
				continue
			}
			if !slices.Equal(def.ParamTypes(), hf.params) || !slices.Equal(def.ResultTypes(), hf.results) {
				problems = append(problems, fmt.Sprintf("import %s.%s has signature %s, want %s", modName, name,
					sig(def.ParamTypes(), def.ResultTypes()), sig(hf.params, hf.results)))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s from unknown module %q (only %q and %q exist)",
				modName, name, modName, abi.ImportModule, wasi_snapshot_preview1.ModuleName))
		}
	}
	for _, def := range mod.ImportedMemories() {
		modName, name, _ := def.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s: a plugin must define its own memory", modName, name))
	}
	if len(problems) > 0 {
		return fmt.Errorf("not a pycomms ABI v%d plugin: %s", abi.Version, strings.Join(problems, "; "))
	}
	return nil
}

func sig(params, results []api.ValueType) string {
	n := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ",")
	}
	return "(" + n(params) + ")->(" + n(results) + ")"
}
