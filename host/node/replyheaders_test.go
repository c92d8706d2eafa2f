package node_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestReplyHeadersThroughTheControlAPI: headers.wat on host b replies to
// "R" with reply_h (headers {"x-rep": "yes"}, payload the request's header
// x-req). The control API shows those headers whether the call is served
// on the node it reached (b) or crosses the mesh from a, addressed to any
// node or to b by name.
func TestReplyHeadersThroughTheControlAPI(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Plugins: map[string]string{
		"b": fmt.Sprintf("  - {name: hdr, path: %q, services: [headers], instances: 1, watch: false}\n", cluster.TestdataPath("wat", "headers.wasm")),
	}})
	hosttest.CheckFor(t, 15*time.Second, func() error { return cl.Host("a").HasRoute("headers") })
	want := map[string]string{"x-rep": "yes"}
	for _, tc := range []struct{ host, node string }{{"b", ""}, {"a", ""}, {"a", "b"}} {
		c := control.NewClient(cl.Host(tc.host).ControlAddr())
		reply, rh, err := c.CallNodeHeaders(context.Background(), tc.node, "headers.r", []byte("R"), map[string]string{"x-req": "7"}, 5*time.Second)
		if err != nil || string(reply) != "7" || !maps.Equal(rh, want) {
			t.Errorf("call on %s (node %q) = %q, headers %v, %v; want \"7\", %v", tc.host, tc.node, reply, rh, err, want)
		}
	}
}
