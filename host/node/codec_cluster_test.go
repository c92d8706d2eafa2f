package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestCodecAcrossHosts: the host that delivers converts. A call from host
// a to a plugin with accepts on host b arrives with its content-type and
// content-encoding, b's codec decodes and converts it, and a type b cannot
// convert comes back to a as unsupported_type.
func TestCodecAcrossHosts(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Names: []string{"b", "a"}, Transport: "tcp",
		Plugins: map[string]string{"b": fmt.Sprintf("  - {name: upper, path: %q, kind: codec}\n  - {name: up, path: %q, services: [up], accepts: [text/x-upper], instances: 1}\n",
			cluster.TestdataPath("wat", "codec_upper.wasm"), cluster.TestdataPath("wat", "echo_a.wasm"))}})
	a := cl.Host("a").Node()
	call := func(payload string, h abi.Headers) ([]byte, error) {
		return a.Call(context.Background(), &message.Message{Kind: abi.KindRequest, Subject: "up.x",
			Payload: []byte(payload), Headers: h, Deadline: time.Now().Add(5 * time.Second), From: "test"})
	}
	hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("a reaches up on b", func() error {
		out, err := call("x", nil)
		if err != nil {
			return err
		}
		if string(out) != "A:x" {
			return fmt.Errorf("reply %q", out)
		}
		return nil
	}))
	out, err := call("olleh", abi.Headers{"content-type": "text/plain", "content-encoding": "x-rev"})
	if err != nil || string(out) != "A:HELLO" {
		t.Fatalf("typed, encoded call from a to b: %q, %v; want A:HELLO (decoded and converted on b)", out, err)
	}
	_, err = call("{}", abi.Headers{"content-type": "application/json"})
	if message.StatusOf(err) != abi.StatusUnsupportedType || !strings.Contains(err.Error(), `plugin "up" accepts text/x-upper`) {
		t.Fatalf("unconvertible call across hosts: %v, want unsupported_type from b", err)
	}
}
