package node_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestTransportRoutingOrder: a service carried by a transport on host a
// and served by a handler on host b is answered, on a, by a's transport
// (the local owner) and, on b, by b's handler; a's call does not fall
// back to the mesh while the transport has no connection (SPEC 13.5).
func TestTransportRoutingOrder(t *testing.T) {
	transport := fmt.Sprintf("  - {name: wire, path: %q, kind: transport, services: [svc], accept: [tcp://127.0.0.1:0], watch: false}\n",
		cluster.TestdataPath("wat", "transport_echo.wasm"))
	cl := cluster.Start(t, cluster.Options{Names: []string{"a", "b"},
		Plugins: map[string]string{"a": transport, "b": cluster.WatEcho("echo", "svc")}})
	a, b := cl.Host("a").Node(), cl.Host("b").Node()
	call := func(n *node.Node) (string, error) {
		out, err := n.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "svc.x",
			Payload: []byte("hi"), Deadline: time.Now().Add(5 * time.Second)})
		return string(out), err
	}
	if _, err := call(a); message.StatusOf(err) != abi.StatusUnreachable {
		t.Fatalf("a's call with no transport connection: %v, want unreachable (no fall back to b)", err)
	}
	var listening string
	for _, p := range a.Plugins() {
		if p.Name == "wire" && p.Transport != nil && len(p.Transport.Listening) == 1 {
			listening = strings.TrimPrefix(p.Transport.Listening[0], "tcp://")
		}
	}
	conn, err := net.DialTimeout("tcp", listening, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if out, err := call(a); err != nil || out != "hi" {
			return fmt.Errorf("a's call: %q, %v; want the transport's %q", out, err, "hi")
		}
		return nil
	})
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("the transport's peer read %q, %v", buf, err)
	}
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if out, err := call(b); err != nil || out != "HI" {
			return fmt.Errorf("b's call: %q, %v; want its own handler's %q", out, err, "HI")
		}
		return nil
	})
}
