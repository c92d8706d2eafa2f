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
// node or to b by name. A plugin on a that calls b's with call_h reads
// the reply's header with result_header: "Cheaders.r" to a's copy (service
// front) answers "1yes", the x-req it sent and the x-rep b's set.
func TestReplyHeadersThroughTheControlAPI(t *testing.T) {
	item := func(name, service string) string {
		return fmt.Sprintf("  - {name: %s, path: %q, services: [%s], grants: [call], instances: 1, watch: false}\n",
			name, cluster.TestdataPath("wat", "headers.wasm"), service)
	}
	cl := cluster.Start(t, cluster.Options{Plugins: map[string]string{"a": item("front", "front"), "b": item("hdr", "headers")}})
	hosttest.CheckFor(t, 15*time.Second, func() error { return cl.Host("a").HasRoute("headers") })
	want := map[string]string{"x-rep": "yes"}
	for _, tc := range []struct{ host, node string }{{"b", ""}, {"a", ""}, {"a", "b"}} {
		c := control.NewClient(cl.Host(tc.host).ControlAddr())
		reply, rh, err := c.CallNodeHeaders(context.Background(), tc.node, "headers.r", []byte("R"), map[string]string{"x-req": "7"}, 5*time.Second)
		if err != nil || string(reply) != "7" || !maps.Equal(rh, want) {
			t.Errorf("call on %s (node %q) = %q, headers %v, %v; want \"7\", %v", tc.host, tc.node, reply, rh, err, want)
		}
	}
	reply, err := control.NewClient(cl.Host("a").ControlAddr()).Call(context.Background(), "front.x", []byte("Cheaders.r"), nil, 5*time.Second)
	if err != nil || string(reply) != "1yes" {
		t.Errorf("a's plugin calling b's with call_h = %q, %v; want \"1yes\" (the reply header x-rep crossed the mesh)", reply, err)
	}
}
