package plugin

import (
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/tetratelabs/wazero/api"
)

// TestHostImplementsEveryImport keeps hostImpls in step with abi.Imports:
// the abi package declares each import once, and the host must implement
// exactly those, with the signatures derived from that declaration.
func TestHostImplementsEveryImport(t *testing.T) {
	imports := append(abi.Imports(), abi.TransportImports()...)
	if len(hostImports) != len(imports) {
		t.Errorf("hostImports has %d entries, abi.Imports and abi.TransportImports %d", len(hostImports), len(imports))
	}
	for _, im := range imports {
		hi, ok := hostImports[im.Name]
		if !ok || hi.fn == nil {
			t.Errorf("abi import %q has no host implementation in hostImpls or transportImpls", im.Name)
			continue
		}
		if len(hi.params) != len(im.Params) || len(hi.results) != 1 {
			t.Errorf("import %q: host signature %s, abi says %s", im.Name, sig(hi.params, hi.results), im.Signature())
		}
		for _, p := range append(append([]api.ValueType{}, hi.params...), hi.results...) {
			if p != api.ValueTypeI32 {
				t.Errorf("import %q: host signature %s is not all i32", im.Name, sig(hi.params, hi.results))
				break
			}
		}
	}
	for name := range hostImpls {
		if _, ok := abi.ImportCapability(name); !ok {
			t.Errorf("hostImpls implements %q, which is not an abi import", name)
		}
	}
	for name := range transportImpls {
		if !abi.IsTransportImport(name) {
			t.Errorf("transportImpls implements %q, which is not an abi transport import", name)
		}
	}
}
