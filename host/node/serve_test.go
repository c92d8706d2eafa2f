package node_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

func upper(sends *atomic.Int64) node.Handler {
	return func(ctx context.Context, m *message.Message) ([]byte, error) {
		if m.Kind == abi.KindSend {
			sends.Add(1)
			return nil, nil
		}
		if string(m.Payload) == "fail" {
			return nil, message.Errorf(abi.StatusInvalid, "upper: told to fail")
		}
		return bytes.ToUpper(m.Payload), nil
	}
}

// TestServeGoHandler: a Go handler serves requests and sends on this node
// and, through the mesh, from a peer; its errors keep their status; a
// service a plugin serves is refused; stop removes it.
func TestServeGoHandler(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Names: []string{"a", "b"},
		Plugins: map[string]string{"a": cluster.WatEcho("wat", "wat")}})
	a, b := cl.Host("a").Node(), cl.Host("b").Node()
	var sends atomic.Int64
	stop, err := a.Serve("upper", []string{"upper"}, upper(&sends))
	if err != nil {
		t.Fatal(err)
	}
	call := func(n *node.Node, payload string) (string, error) {
		out, err := n.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "upper.x",
			Payload: []byte(payload), Deadline: time.Now().Add(5 * time.Second)})
		return string(out), err
	}
	if out, err := call(a, "hi"); err != nil || out != "HI" {
		t.Fatalf("local call: %q %v", out, err)
	}
	if _, err := call(a, "fail"); message.StatusOf(err) != abi.StatusInvalid {
		t.Fatalf("a handler's error lost its status: %v", err)
	}
	hosttest.CheckFor(t, 15*time.Second, func() error {
		if out, err := call(b, "peer"); err != nil || out != "PEER" {
			return fmt.Errorf("node b calls a's Go handler: %q %v", out, err)
		}
		return nil
	})
	if err := b.Send(context.Background(), &message.Message{Kind: abi.KindSend, Subject: "upper.x", Payload: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, 5*time.Second, func() error {
		if sends.Load() != 1 {
			return fmt.Errorf("the handler ran %d sends, want 1", sends.Load())
		}
		return nil
	})
	if _, err := a.Serve("clash", []string{"wat"}, upper(&sends)); err == nil {
		t.Fatal("a Go handler took over a plugin's service")
	}
	if _, err := a.Serve("nil", []string{"other"}, nil); err == nil {
		t.Fatal("a nil handler was accepted")
	}
	stop()
	if _, err := call(a, "gone"); message.StatusOf(err) != abi.StatusNoHandler {
		t.Fatalf("call after stop: %v, want no_handler", err)
	}
}
