package compare

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pycomms/pycomms-host/internal/netbaseline"
)

// wapcEchoWasm is testdata/wapc_echo.wat built with wat2wasm
// (TestWAPCEchoIsFresh keeps it in step with its source).
//
//go:embed testdata/wapc_echo.wasm
var wapcEchoWasm []byte

// EchoWATPath is where the pycomms-ABI WAT echo lives, from the repository
// root.
var EchoWATPath = filepath.Join("testdata", "wat", "echo.wasm")

// FindRepoRoot walks up from dir to the repository root: the directory
// that holds testdata/wat/echo.wasm and go.mod.
func FindRepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("compare: %w", err)
	}
	for {
		if fileExists(filepath.Join(d, EchoWATPath)) && fileExists(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("compare: no directory above %s holds %s and go.mod: run from inside the repository", dir, EchoWATPath)
		}
		d = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Env holds every networked contender, started once and measured in
// interleaved rounds: our two hosts over TLS and over QUIC (the far host
// serving the WAT echo), embedded NATS in plaintext and over TLS, and the
// raw TLS and QUIC echoes of internal/netbaseline.
type Env struct {
	OursTLS, OursQUIC *Pair
	NATS, NATSTLS     *NATS
	RawTLS, RawQUIC   *netbaseline.Echo
}

// Names of the networked contenders, as they appear in errors.
const (
	cOursTLS  = "ours TLS"
	cOursGo   = "ours TLS, Go responder"
	cOursQUIC = "ours QUIC"
	cNATS     = "NATS"
	cNATSTLS  = "NATS TLS"
	cRawTLS   = "raw TLS"
	cRawQUIC  = "raw QUIC"
)

// StartEnv starts every networked contender; root is the repository root.
func StartEnv(root string) (_ *Env, err error) {
	echo := filepath.Join(root, EchoWATPath)
	e := &Env{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.OursTLS, err = StartPair("tcp", echo); err != nil {
		return nil, err
	}
	if e.OursQUIC, err = StartPair("quic", echo); err != nil {
		return nil, err
	}
	if e.NATS, err = StartNATS(false); err != nil {
		return nil, err
	}
	if e.NATSTLS, err = StartNATS(true); err != nil {
		return nil, err
	}
	if e.RawTLS, err = netbaseline.NewTLSEcho(); err != nil {
		return nil, fmt.Errorf("compare: raw TLS echo: %w", err)
	}
	if e.RawQUIC, err = netbaseline.NewQUICEcho(); err != nil {
		return nil, fmt.Errorf("compare: raw QUIC echo: %w", err)
	}
	return e, nil
}

// Close stops every contender.
func (e *Env) Close() {
	for _, p := range []*Pair{e.OursTLS, e.OursQUIC} {
		if p != nil {
			p.Close()
		}
	}
	for _, n := range []*NATS{e.NATS, e.NATSTLS} {
		if n != nil {
			n.Close()
		}
	}
	for _, r := range []*netbaseline.Echo{e.RawTLS, e.RawQUIC} {
		if r != nil {
			r.Close()
		}
	}
}

// calls returns each networked contender's call of payload.
func (e *Env) calls(payload []byte) map[string]func() error {
	raw := func(r *netbaseline.Echo) func() error {
		return func() error {
			out, err := r.Call(payload)
			if err == nil && len(out) != len(payload) {
				err = fmt.Errorf("raw echo: %d bytes, want %d", len(out), len(payload))
			}
			return err
		}
	}
	return map[string]func() error{
		cOursTLS:  func() error { return e.OursTLS.Call(payload) },
		cOursGo:   func() error { return e.OursTLS.CallGo(payload) },
		cOursQUIC: func() error { return e.OursQUIC.Call(payload) },
		cNATS:     func() error { return e.NATS.Call(payload) },
		cNATSTLS:  func() error { return e.NATSTLS.Call(payload) },
		cRawTLS:   raw(e.RawTLS),
		cRawQUIC:  raw(e.RawQUIC),
	}
}

// payload is size bytes of lower-case letters, which every echo
// upper-cases.
func payload(size int) []byte { return bytes.Repeat([]byte("a"), size) }

// warm makes a few hundred calls of each contender, 64 at a time, so that
// instances, buffers and flow-control windows are set up before timing.
func warm(calls map[string]func() error, callers int) error {
	for name, call := range calls {
		if _, err := Concurrent(50*time.Millisecond, callers, call); err != nil {
			return fmt.Errorf("compare: warming %s: %w", name, err)
		}
	}
	return nil
}

// Throughput measures request/reply with callers concurrent callers at
// size bytes: rounds interleaved rounds of d per contender. Its rows
// compare our TLS and QUIC hosts with plaintext and TLS NATS and with the
// raw echoes, in calls/s and in calls per CPU-second.
func (e *Env) Throughput(size, callers, rounds int, d time.Duration) ([]Row, error) {
	calls := e.calls(payload(size))
	if err := warm(calls, callers); err != nil {
		return nil, err
	}
	var cs []contender
	for _, name := range []string{cOursTLS, cNATS, cRawTLS, cOursGo, cOursQUIC, cNATSTLS, cRawQUIC} {
		call := calls[name]
		cs = append(cs, contender{name, func() (Sample, error) { return Concurrent(d, callers, call) }})
	}
	s, err := interleave(rounds, cs)
	if err != nil {
		return nil, err
	}
	sz := SizeName(size)
	rr := fmt.Sprintf("request/reply calls/s, %d callers, %s, TLS, Wasm echo", callers, sz)
	cpu := fmt.Sprintf("same, calls per CPU-second, %s", sz)
	goResp := fmt.Sprintf("same with a plain-Go responder, %s", sz)
	quic := fmt.Sprintf("QUIC, Wasm echo, %s", sz)
	quicCPU := fmt.Sprintf("QUIC, calls per CPU-second, %s", sz)
	return []Row{
		withUnit(row("x_nats", rr, s, cOursTLS, cNATS, "plaintext NATS", callsPerSec), "calls/s"),
		row("x_nats_tls", rr, s, cOursTLS, cNATSTLS, "NATS over TLS", callsPerSec),
		row("x_rawtls", rr, s, cOursTLS, cRawTLS, "raw TLS echo", callsPerSec),
		withUnit(row("x_nats_cpu", cpu, s, cOursTLS, cNATS, "plaintext NATS", callsPerCPU), "calls/CPU-s"),
		row("x_rawtls_cpu", cpu, s, cOursTLS, cRawTLS, "raw TLS echo", callsPerCPU),
		withUnit(row("x_go_nats", goResp, s, cOursGo, cNATS, "plaintext NATS", callsPerSec), "go-calls/s"),
		row("x_go_rawtls", goResp, s, cOursGo, cRawTLS, "raw TLS echo", callsPerSec),
		withUnit(row("x_quic_nats", quic, s, cOursQUIC, cNATS, "plaintext NATS", callsPerSec), "quic-calls/s"),
		row("x_rawquic", quic, s, cOursQUIC, cRawQUIC, "raw quic-go one-stream echo", callsPerSec),
		row("x_rawquic_cpu", quicCPU, s, cOursQUIC, cRawQUIC, "raw quic-go one-stream echo", callsPerCPU),
	}, nil
}

// Latency measures sequential calls (one at a time) at size bytes over TLS:
// ours, plaintext NATS and the raw TLS echo, each for d per round.
func (e *Env) Latency(size, rounds int, d time.Duration) ([]Row, error) {
	calls := e.calls(payload(size))
	var cs []contender
	for _, name := range []string{cOursTLS, cNATS, cRawTLS} {
		call := calls[name]
		if _, err := Sequential(20*time.Millisecond, 50, call); err != nil {
			return nil, fmt.Errorf("compare: warming %s: %w", name, err)
		}
		cs = append(cs, contender{name, func() (Sample, error) { return Sequential(d, 100, call) }})
	}
	s, err := interleave(rounds, cs)
	if err != nil {
		return nil, err
	}
	sz := SizeName(size)
	f50 := fmt.Sprintf("p50 of sequential calls, TLS, %s", sz)
	f99 := fmt.Sprintf("p99 of sequential calls, TLS, %s", sz)
	return []Row{
		withUnit(row("x_nats_p50", f50, s, cOursTLS, cNATS, "plaintext NATS", p50), "p50-ns"),
		row("x_rawtls_p50", f50, s, cOursTLS, cRawTLS, "raw TLS echo", p50),
		withUnit(row("x_nats_p99", f99, s, cOursTLS, cNATS, "plaintext NATS", p99), "p99-ns"),
		row("x_rawtls_p99", f99, s, cOursTLS, cRawTLS, "raw TLS echo", p99),
	}, nil
}

// errNoEvents is returned when a pub/sub run delivered nothing at all.
var errNoEvents = errors.New("no event was received")
