package compare

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/node"
)

// Linejson is one host serving the WAT echo (service "echo", 8 instances)
// and the linejson gateway (builtin:linejson, 2 instances) on loopback,
// reached two ways from this process: through the gateway (a Go client
// writing one JSON line per call on its own TCP connection, as a legacy
// app would) and through the control API (control.Client.Call), the
// direct way for an app that is not a plugin.
type Linejson struct {
	n       *node.Node
	dir     string
	gateway string // host:port of the gateway's accept entry
	client  *control.Client
}

// StartLinejson starts the host with echoWasm (testdata/wat/echo.wasm).
func StartLinejson(echoWasm string) (_ *Linejson, err error) {
	dir, err := os.MkdirTemp("", "pycomms-linejson-")
	if err != nil {
		return nil, fmt.Errorf("compare: temp dir: %w", err)
	}
	l := &Linejson{dir: dir}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	cfg := fmt.Sprintf(`node: {name: linejson}
control: 127.0.0.1:0
listen: {tcp: "", quic: ""}
cache_dir: %q
data_dir: %q
log: {level: error}
plugins:
  - {name: echo, path: %q, services: [echo], instances: 8, queue: 65536, watch: false, limits: {timeout: 10s}}
  - {name: gateway, path: "builtin:linejson", kind: transport, accept: [tcp://127.0.0.1:0], grants: [call], limits: {timeout: 10s}}
`, filepath.Join(dir, "cache"), filepath.Join(dir, "data"), echoWasm)
	path := filepath.Join(dir, "pycomms.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	if l.n, err = node.New(context.Background(), node.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return nil, fmt.Errorf("compare: linejson host: %w", err)
	}
	if err := l.n.Start(); err != nil {
		l.n.Close()
		l.n = nil
		return nil, fmt.Errorf("compare: linejson host: %w", err)
	}
	l.client = control.NewClient(l.n.ControlAddr())
	ti, err := l.transport()
	if err != nil {
		return nil, err
	}
	if len(ti.Listening) != 1 {
		return nil, fmt.Errorf("compare: the gateway listens on %v", ti.Listening)
	}
	l.gateway = strings.TrimPrefix(ti.Listening[0], "tcp://")
	return l, nil
}

func (l *Linejson) transport() (*control.TransportInfo, error) {
	for _, p := range l.n.Plugins() {
		if p.Name == "gateway" && p.Transport != nil {
			return p.Transport, nil
		}
	}
	return nil, errors.New("compare: the gateway is not serving")
}

// Close stops the host and removes its files.
func (l *Linejson) Close() {
	if l.n != nil {
		l.n.Close()
	}
	os.RemoveAll(l.dir)
}

// lineConn is one gateway connection making calls one at a time.
type lineConn struct {
	c    net.Conn
	r    *bufio.Reader
	line []byte
	want []byte
	id   int
}

func (l *Linejson) dial(payload []byte) (*lineConn, error) {
	c, err := net.Dial("tcp", l.gateway)
	if err != nil {
		return nil, fmt.Errorf("compare: dial the gateway: %w", err)
	}
	data := strconv.Quote(string(payload)) // a JSON string: payload is ASCII
	lc := &lineConn{c: c, r: bufio.NewReaderSize(c, 256<<10)}
	lc.line = []byte(`{"op":"call","subject":"echo.x","data":` + data + "}\n")
	lc.want = []byte(`{"ok":true,"data":` + strings.ToUpper(data) + "}\n")
	return lc, nil
}

// call makes one call through the gateway and checks the answer.
func (lc *lineConn) call() error {
	if _, err := lc.c.Write(lc.line); err != nil {
		return err
	}
	got, err := lc.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.Equal(got, lc.want) {
		return fmt.Errorf("compare: the gateway answered %.200q", got)
	}
	return nil
}

func (l *Linejson) direct(payload []byte) error {
	reply, err := l.client.Call(context.Background(), "echo.x", payload, nil, 10*time.Second)
	if err == nil && !bytes.Equal(reply, bytes.ToUpper(payload)) {
		err = fmt.Errorf("compare: the control API answered %.200q", reply)
	}
	return err
}

// Measure compares, in interleaved rounds of d each, calls of size-byte
// payloads through the gateway with calls through the control API: p50 of
// sequential calls, and calls/s from callers concurrent callers (each with
// its own gateway connection). It also reports the plugin's share of a
// sequential call: the time spent in the gateway's events (a call is two:
// the line arriving and the reply) next to the mean time per call.
func (l *Linejson) Measure(size, callers, rounds int, d time.Duration) ([]Row, error) {
	payload := bytes.Repeat([]byte("a"), size)
	conns := make([]*lineConn, callers)
	for i := range conns {
		c, err := l.dial(payload)
		if err != nil {
			return nil, err
		}
		defer c.c.Close()
		conns[i] = c
	}
	var shareOurs, shareBase []Sample
	samples, err := interleave(rounds, []contender{
		{"linejson seq", func() (Sample, error) {
			before, err := l.transport()
			if err != nil {
				return Sample{}, err
			}
			s, err := Sequential(d, 100, conns[0].call)
			after, terr := l.transport()
			if err = errors.Join(err, terr); err == nil && s.Calls > 0 {
				spent := time.Duration(after.EventNanos - before.EventNanos)
				shareOurs = append(shareOurs, Sample{Calls: s.Calls, Wall: spent})
				shareBase = append(shareBase, Sample{Calls: s.Calls, Wall: s.Wall})
			}
			return s, err
		}},
		{"control seq", func() (Sample, error) { return Sequential(d, 100, func() error { return l.direct(payload) }) }},
		{"linejson conc", func() (Sample, error) {
			next := make(chan *lineConn, len(conns))
			for _, c := range conns {
				next <- c
			}
			return Concurrent(d, callers, func() error {
				c := <-next
				defer func() { next <- c }()
				return c.call()
			})
		}},
		{"control conc", func() (Sample, error) {
			return Concurrent(d, callers, func() error { return l.direct(payload) })
		}},
	})
	if err != nil {
		return nil, err
	}
	samples["plugin share"], samples["call time"] = shareOurs, shareBase
	name := SizeName(size)
	return []Row{
		withUnit(row("x_control_p50", "linejson call p50, "+name, samples, "linejson seq", "control seq", "control API", p50), "ns_p50"),
		withUnit(row("x_control", fmt.Sprintf("linejson calls/s, %d callers, %s", callers, name), samples, "linejson conc", "control conc", "control API", callsPerSec), "calls/s"),
		withUnit(fraction(row("plugin_share", "linejson plugin time per sequential call (2 events), "+name, samples, "plugin share", "call time", "of the time per call", nsPerCall)), "ns_plugin"),
	}, nil
}

// fraction shows a row's ratio as a share.
func fraction(r Row) Row {
	r.Fraction = true
	return r
}
