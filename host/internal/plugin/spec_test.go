package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/plugins"
)

// Tests of what abi/SPEC.md promises a plugin, one behaviour each.

// TestHandleStatus: the status pycomms_handle returns (SPEC section 3).
// no_method fails with the host's own text, dropping what the guest set
// with reply; another failure status carries the reply text; a status
// outside the table is an ABI violation: trap, instance replaced.
func TestHandleStatus(t *testing.T) {
	e := newEngine(t)
	v := load(t, e, Spec{Name: "status", Wasm: fixture(t, "status.wasm"), Instances: 1})
	for _, tc := range []struct {
		payload  string
		status   abi.Status
		exact    string
		restarts uint64
	}{
		{"\x09", abi.StatusNoMethod, `plugin "status" does not implement "status.x"`, 0},
		{"\x05", abi.StatusTimeout, `plugin "status": status.x: text from the guest`, 0},
		{"\x0d", abi.StatusUnsupportedType, `plugin "status": status.x: text from the guest`, 0},
		{"\x0e", abi.StatusTrap, `plugin "status": status.x: ABI violation: pycomms_handle returned unknown status 14`, 1},
		{"\xff", abi.StatusTrap, `plugin "status": status.x: ABI violation: pycomms_handle returned unknown status 255`, 2},
	} {
		_, err := request(v, "status.x", tc.payload, 5*time.Second)
		if message.StatusOf(err) != tc.status || err.Error() != tc.exact {
			t.Errorf("status %d: got %v (%v), want %v %q", tc.payload[0], err, message.StatusOf(err), tc.status, tc.exact)
		}
		if v.Restarts() != tc.restarts {
			t.Errorf("status %d: %d restarts, want %d", tc.payload[0], v.Restarts(), tc.restarts)
		}
	}
}

// TestStartupLimit: instantiation, _initialize and pycomms_abi_version
// share one limit, 10 s or limits.timeout when longer (SPEC section 2): a
// plugin whose _initialize never returns is refused naming it.
func TestStartupLimit(t *testing.T) {
	e := newEngine(t)
	_, err := e.Load(context.Background(), Spec{Name: "initloop", Wasm: fixture(t, "initloop.wasm"), Timeout: 100 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "instantiate: did not finish within 10s") {
		t.Fatalf("got %v, want the load refused: did not finish within 10s", err)
	}
}

// TestConfigGetForms: what config_get returns (SPEC section 4), through
// the Go echo's echo.prefix, which prints config_get("prefix") before the
// payload: keys are case-sensitive, a list is its items joined by ",", a
// map has no value of its own (its leaves are "prefix.KEY"), null is "".
func TestConfigGetForms(t *testing.T) {
	e := newEngine(t)
	goEcho, ok := plugins.Builtin("echo")
	if !ok {
		t.Fatal("no builtin Go echo")
	}
	for _, tc := range []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"string", map[string]any{"prefix": "p:"}, "p:x"},
		{"other case", map[string]any{"Prefix": "p:", "PREFIX": "P:"}, "x"},
		{"number", map[string]any{"prefix": 42}, "42x"},
		{"list", map[string]any{"prefix": []any{"a", 1, true}}, "a,1,truex"},
		{"map", map[string]any{"prefix": map[string]any{"k": "v"}}, "x"},
		{"null", map[string]any{"prefix": nil}, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := load(t, e, Spec{Name: "echo", Wasm: goEcho, Instances: 1, Config: tc.config})
			got, err := request(v, "echo.prefix", "x", 10*time.Second)
			if err != nil || string(got) != tc.want {
				t.Fatalf("config %v: echo.prefix x = %q, %v; want %q", tc.config, got, err, tc.want)
			}
		})
	}
	// The leaves of a map are reached with dotted keys.
	v := load(t, e, Spec{Name: "echo", Wasm: goEcho, Instances: 1, Config: map[string]any{"prefix": map[string]any{"k": "v"}}})
	if got := v.cfgFlat["prefix.k"]; got != "v" {
		t.Fatalf(`config_get("prefix.k") would return %q, want "v"`, got)
	}
}

// TestHeaderLookupIsExact: header keys arrive lower-cased (the control API
// lower-cases them) and the header import matches a key exactly.
func TestHeaderLookupIsExact(t *testing.T) {
	e := newEngine(t)
	goEcho, ok := plugins.Builtin("echo")
	if !ok {
		t.Fatal("no builtin Go echo")
	}
	v := load(t, e, Spec{Name: "echo", Wasm: goEcho, Instances: 1})
	ask := func(key string) ([]byte, error) {
		return v.Request(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "echo.headers",
			Payload: []byte(key), Headers: abi.Headers{"trace-id": "t1"}, Deadline: time.Now().Add(10 * time.Second)})
	}
	if got, err := ask("trace-id"); err != nil || string(got) != "trace-id=t1\n" {
		t.Fatalf("trace-id: %q, %v", got, err)
	}
	if _, err := ask("Trace-Id"); message.StatusOf(err) != abi.StatusNotFound {
		t.Fatalf("Trace-Id: %v, want not_found", err)
	}
}
