package node

import (
	"slices"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/host/config"
)

// TestLiveKeysAreApplied: every key the config table declares Live must
// be one Reload applies: the peers list (Mesh.SetPeers) and the plugins
// with every key of theirs (apply). Any other key changed by a reload is
// refused, named by config.RestartKeysChanged; a key declared Live that
// Reload does not apply would be accepted and silently ignored.
func TestLiveKeysAreApplied(t *testing.T) {
	// drain_timeout is read from the applied config when a drain starts
	// (Node.DrainTimeout; TestDrainTimeoutIsLive).
	// control.token_file and control.public_metrics are applied to the
	// running control API (setControlAuth; TestControlTokenRotatedByReload).
	// queues.* are handed to the queue store by applyQueues after every
	// applied reload (TestQueueOptionsAreLive).
	applied := []string{"peers", "plugins", "drain_timeout", "control.token_file", "control.public_metrics",
		"queues.max_attempts", "queues.backoff", "queues.max_backoff", "queues.max_depth"}
	for _, k := range config.Keys() {
		if k.Reload == config.Live && !strings.HasPrefix(k.Path, "plugins[].") && !slices.Contains(applied, k.Path) {
			t.Errorf("%s is declared Live, but Reload does not apply it: declare it Restart, or apply it in Reload", k.Path)
		}
	}
}
