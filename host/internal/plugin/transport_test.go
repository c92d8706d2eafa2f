package plugin

import (
	"context"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
)

// TestKindFromExports: a module's kind is read from its exports, and a
// module loaded as the other kind is refused with both kinds named.
func TestKindFromExports(t *testing.T) {
	ctx := context.Background()
	for name, want := range map[string]abi.PluginKind{"echo": abi.PluginHandler, "transport_echo": abi.PluginTransport} {
		got, err := KindOf(ctx, fixture(t, name+".wasm"))
		if err != nil || got != want {
			t.Errorf("KindOf(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	e, err := NewEngine(EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	err = e.Check(ctx, Spec{Name: "t", Wasm: fixture(t, "transport_echo.wasm")})
	if err == nil || !strings.Contains(err.Error(), "is a transport plugin") || !strings.Contains(err.Error(), "kind: transport") {
		t.Errorf("a transport loaded as a handler: %v", err)
	}
	err = e.CheckTransport(ctx, Spec{Name: "h", Wasm: fixture(t, "echo.wasm")})
	if err == nil || !strings.Contains(err.Error(), "is a handler plugin") || !strings.Contains(err.Error(), "kind: handler") {
		t.Errorf("a handler loaded as a transport: %v", err)
	}
	if err := e.CheckTransport(ctx, Spec{Name: "t", Wasm: fixture(t, "transport_echo.wasm")}); err != nil {
		t.Errorf("transport_echo does not load as a transport: %v", err)
	}
}
