package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
)

// Example embeds a node in a Go program: a config file names one plugin
// (here the hand-written WAT echo, which replies with its payload
// upper-cased), New loads it, Start serves it, and the program calls it
// in-process with Node.Call and over the local control API with its client.
// The node joins no mesh (listen.tcp and listen.quic are "") and its
// control API takes a free loopback port.
func Example() {
	dir, err := os.MkdirTemp("", "pycomms-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	// A real program names its own plugin file; the example uses the
	// repository's reference fixture.
	wasm, err := filepath.Abs(filepath.Join("..", "..", "testdata", "wat", "echo.wasm"))
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := fmt.Sprintf(`control: 127.0.0.1:0
listen: {tcp: "", quic: ""}
cache_dir: %q
data_dir: %q
plugins:
  - name: upper
    path: %q
    services: [upper]
`, filepath.Join(dir, "cache"), filepath.Join(dir, "data"), wasm)
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	n, err := node.New(ctx, node.Options{
		ConfigPath: path,
		// A program passes os.Environ() to honour PYCOMMS_* overrides; the
		// example takes its config from the file alone.
		Env:    nil,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := n.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()

	// In-process: no socket between the program and the plugin.
	reply, err := n.Call(ctx, &message.Message{
		Kind:     abi.KindRequest,
		Subject:  "upper.say",
		Payload:  []byte("hello, embedder"),
		Deadline: time.Now().Add(10 * time.Second),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply))

	// Through the control API, as another process would.
	c := control.NewClient(n.ControlAddr())
	reply, err = c.Call(ctx, "upper.say", []byte("hello, client"), nil, 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply))

	// Output:
	// HELLO, EMBEDDER
	// HELLO, CLIENT
}

// ExampleNode_Serve serves a service from a plain Go function: the node
// routes requests for it from this program, from the control API and from
// mesh peers, as it routes them to a plugin.
func ExampleNode_Serve() {
	dir, err := os.MkdirTemp("", "pycomms-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg := fmt.Sprintf("control: 127.0.0.1:0\nlisten: {tcp: \"\", quic: \"\"}\ncache_dir: %q\ndata_dir: %q\n",
		filepath.Join(dir, "cache"), filepath.Join(dir, "data"))
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	n, err := node.New(ctx, node.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := n.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()

	stop, err := n.Serve("greeter", []string{"greet"}, func(ctx context.Context, m *message.Message) ([]byte, error) {
		return []byte("hello, " + string(m.Payload)), nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	c := control.NewClient(n.ControlAddr())
	reply, err := c.Call(ctx, "greet.say", []byte("gopher"), nil, 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply))

	// Output:
	// hello, gopher
}
