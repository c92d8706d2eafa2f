package plugin

import (
	"context"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
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

var deliveredSink *message.Message

// TestDeliveredRequestOneAllocation: the message of a delivered request
// and the slot its reply's headers land in are one allocation, so a
// reply without headers costs nothing more than before.
func TestDeliveredRequestOneAllocation(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { deliveredSink = newDelivered(abi.KindRequest) }); n != 1 {
		t.Fatalf("newDelivered(request): %v allocations, want 1", n)
	}
	if m := newDelivered(abi.KindRequest); m.ReplyHeaders == nil || *m.ReplyHeaders != nil {
		t.Fatalf("a delivered request's ReplyHeaders: %v; want an empty slot", m.ReplyHeaders)
	}
	if m := newDelivered(abi.KindEvent); m.ReplyHeaders != nil {
		t.Fatal("a delivered event has a reply headers slot")
	}
}
