package plugin

import (
	"slices"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/config"
)

// TestSpecDefaultsAreTheConfigDefaults: a Spec field left zero takes the
// default of its config key, the one KEYS.md documents (instances was 1
// here while the config said 2).
func TestSpecDefaultsAreTheConfigDefaults(t *testing.T) {
	v := load(t, newEngine(t), Spec{Name: "echo", Wasm: fixture(t, "echo.wasm")})
	got := v.Spec()
	want := Spec{
		Name:      "echo",
		Instances: config.DefaultInstances,
		Queue:     config.DefaultQueue,
		Memory:    config.DefaultMemory,
		Timeout:   config.DefaultTimeout,
		MaxReply:  config.DefaultMaxReply,
		MaxModule: config.DefaultMaxModule,
	}
	if !slices.Equal(got.Grants, abi.DefaultGrants()) {
		t.Errorf("grants %v, want %v", got.Grants, abi.DefaultGrants())
	}
	got.Grants, got.Config = nil, nil
	if got.Name != want.Name || got.Instances != want.Instances || got.Queue != want.Queue || got.Memory != want.Memory ||
		got.Timeout != want.Timeout || got.MaxReply != want.MaxReply || got.MaxModule != want.MaxModule {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
}
