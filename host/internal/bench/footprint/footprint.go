package footprint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
)

// Snapshot is the process's memory at one moment, after a forced GC.
type Snapshot struct {
	HeapInuse  int64 // runtime.MemStats.HeapInuse, bytes
	StackInuse int64 // runtime.MemStats.StackInuse, bytes
	RSS        int64 // resident set, bytes (/proc/self/statm)
	Goroutines int64
}

// Take forces GCs that also return free pages to the OS until the heap
// stops shrinking, and reads the figures. One GC is not enough: memory
// that wazero frees through cleanups (a closed host's modules and linear
// memories, about 3 MB for 33 WAT instances) is released only after the
// cleanup goroutine has run, some milliseconds after the GC that queued
// it; a snapshot taken before then carries a closed host's memory.
func Take() (Snapshot, error) {
	var ms runtime.MemStats
	debug.FreeOSMemory()
	runtime.ReadMemStats(&ms)
	// Stable once two reads 25 ms apart differ by less than a page (8 KiB
	// span); at most 40 reads (1 s).
	for range 40 {
		prev := ms.HeapInuse
		time.Sleep(25 * time.Millisecond)
		debug.FreeOSMemory()
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse <= prev && prev-ms.HeapInuse < 8<<10 {
			break
		}
	}
	rss, err := residentBytes()
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{
		HeapInuse:  int64(ms.HeapInuse),
		StackInuse: int64(ms.StackInuse),
		RSS:        rss,
		Goroutines: int64(runtime.NumGoroutine()),
	}, nil
}

// residentBytes reads the second field of /proc/self/statm (resident
// pages).
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("footprint: resident set: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("footprint: resident set: /proc/self/statm has %d fields", len(f))
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("footprint: resident set: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// PerUnit is the growth between two snapshots divided by n (the links or
// instances added), in bytes (goroutines as a count).
type PerUnit struct {
	Heap, Stack, RSS, Goroutines float64
}

// Per returns (after - before) / n.
func Per(before, after Snapshot, n int) PerUnit {
	d := float64(n)
	return PerUnit{
		Heap:       float64(after.HeapInuse-before.HeapInuse) / d,
		Stack:      float64(after.StackInuse-before.StackInuse) / d,
		RSS:        float64(after.RSS-before.RSS) / d,
		Goroutines: float64(after.Goroutines-before.Goroutines) / d,
	}
}

// Median returns the element-wise median of ps (the lower middle for an
// even count).
func Median(ps []PerUnit) PerUnit {
	pick := func(f func(PerUnit) float64) float64 {
		v := make([]float64, len(ps))
		for i, p := range ps {
			v[i] = f(p)
		}
		slices.Sort(v)
		return v[(len(v)-1)/2]
	}
	return PerUnit{
		Heap:       pick(func(p PerUnit) float64 { return p.Heap }),
		Stack:      pick(func(p PerUnit) float64 { return p.Stack }),
		RSS:        pick(func(p PerUnit) float64 { return p.RSS }),
		Goroutines: pick(func(p PerUnit) float64 { return p.Goroutines }),
	}
}

// host is one node started from a config file in its own directory.
type host struct {
	n    *node.Node
	path string // its config file
	body string // the config's common part (name, dirs, secret)
}

// startHost writes a config for host name under dir (its own cache and
// data directories unless cache is set, no control API, a shared cluster
// secret, extra appended) and starts it.
func startHost(dir, name, cache, extra string) (*host, error) {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("footprint: %s: %w", name, err)
	}
	if cache == "" {
		cache = filepath.Join(d, "cache")
	}
	h := &host{path: filepath.Join(d, "pycomms.yaml"), body: fmt.Sprintf(`node: {name: %s}
control: {listen: ""}
cache_dir: %q
data_dir: %q
log: {level: error}
trust: {secret: footprint-benchmark-cluster-secret}
`, name, cache, filepath.Join(d, "data"))}
	if err := h.write(extra); err != nil {
		return nil, err
	}
	n, err := node.New(context.Background(), node.Options{ConfigPath: h.path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("footprint: host %s: %w", name, err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		return nil, fmt.Errorf("footprint: host %s: %w", name, err)
	}
	h.n = n
	return h, nil
}

func (h *host) write(extra string) error {
	if err := os.WriteFile(h.path, []byte(h.body+extra), 0o644); err != nil {
		return fmt.Errorf("footprint: config: %w", err)
	}
	return nil
}

// freePort returns a port that was free on 127.0.0.1 for TCP ("tcp") or
// UDP ("quic") a moment ago: a spoke's listen address must be known before
// the hub's config names it.
func freePort(transport string) (int, error) {
	switch transport {
	case "quic":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("footprint: free UDP port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	case "tcp":
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("footprint: free TCP port: %w", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	return 0, errors.New("footprint: transport must be tcp or quic, not " + transport)
}

// Links measures the memory of n established links over transport ("tcp",
// which is TLS, or "quic"): a hub and n spokes, unlinked, then linked by a
// reload of the hub's peers. It returns the growth per link.
func Links(transport string, n int) (_ PerUnit, err error) {
	dir, err := os.MkdirTemp("", "pycomms-footprint-")
	if err != nil {
		return PerUnit{}, fmt.Errorf("footprint: temp dir: %w", err)
	}
	var hosts []*host
	defer func() {
		for _, h := range hosts {
			h.n.Close()
		}
		os.RemoveAll(dir)
	}()
	hub, err := startHost(dir, "hub", "", "listen: {tcp: \"\", quic: \"\"}\n")
	if err != nil {
		return PerUnit{}, err
	}
	hosts = append(hosts, hub)
	var peers []string
	for i := range n {
		port, err := freePort(transport)
		if err != nil {
			return PerUnit{}, err
		}
		listen := fmt.Sprintf("listen: {tcp: \"127.0.0.1:%d\", quic: \"\"}\n", port)
		if transport == "quic" {
			listen = fmt.Sprintf("listen: {tcp: \"\", quic: \"127.0.0.1:%d\"}\n", port)
		}
		s, err := startHost(dir, fmt.Sprintf("spoke%d", i), "", listen)
		if err != nil {
			return PerUnit{}, err
		}
		hosts = append(hosts, s)
		peers = append(peers, fmt.Sprintf("%q", fmt.Sprintf("%s://127.0.0.1:%d", transport, port)))
	}
	before, err := Take()
	if err != nil {
		return PerUnit{}, err
	}
	if err := hub.write("listen: {tcp: \"\", quic: \"\"}\npeers: [" + strings.Join(peers, ", ") + "]\n"); err != nil {
		return PerUnit{}, err
	}
	if err := hub.n.Reload(context.Background()); err != nil {
		return PerUnit{}, fmt.Errorf("footprint: hub reload with %d peers: %w", n, err)
	}
	if err := settled(hosts, n, 60*time.Second); err != nil {
		return PerUnit{}, err
	}
	after, err := Take()
	if err != nil {
		return PerUnit{}, err
	}
	return Per(before, after, n), nil
}

// settled polls until the hub has n links up and every spoke knows all n
// other hosts (the hub up, the other spokes through membership), and
// their counts have not changed for 500 ms.
func settled(hosts []*host, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var stableSince time.Time
	var last string
	for time.Now().Before(deadline) {
		state := meshState(hosts)
		ok := upCount(hosts[0].n.Peers()) == n
		for _, s := range hosts[1:] {
			ok = ok && upCount(s.n.Peers()) >= 1 && known(s.n.Peers()) >= n
		}
		switch {
		case !ok || state != last:
			stableSince = time.Time{}
		case stableSince.IsZero():
			stableSince = time.Now()
		case time.Since(stableSince) >= 500*time.Millisecond:
			return nil
		}
		last = state
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("footprint: mesh of a hub and %d spokes not settled after %s: %s", n, limit, last)
}

func upCount(ps []control.PeerInfo) int {
	k := 0
	for _, p := range ps {
		if p.State == control.PeerUp {
			k++
		}
	}
	return k
}

// known counts the live hosts a node knows (linked, relayed or member).
func known(ps []control.PeerInfo) int {
	k := 0
	for _, p := range ps {
		switch p.State {
		case control.PeerUp, control.PeerRelayed, control.PeerMember:
			k++
		}
	}
	return k
}

// meshState is every host's (up, known) counts, to see when they stop
// changing.
func meshState(hosts []*host) string {
	var b strings.Builder
	for _, h := range hosts {
		ps := h.n.Peers()
		fmt.Fprintf(&b, "%d/%d ", upCount(ps), known(ps))
	}
	return b.String()
}

// Plugin is a plugin to measure per instance: its config path (a file, or
// builtin:name) and a service it serves.
type Plugin struct {
	Path, Service string
}

// Instances measures the memory of one plugin instance: for each of
// rounds, a host with the plugin at 1 instance and then at 33, each
// started, called once and snapshotted, then closed; the median over
// rounds of (m(33) - m(1)) / 32. cacheDir is shared by every host, so
// only the first compiles the module.
func Instances(p Plugin, cacheDir string, rounds int) (PerUnit, error) {
	const few, many = 1, 33
	var per []PerUnit
	for range rounds {
		a, err := loaded(p, cacheDir, few)
		if err != nil {
			return PerUnit{}, err
		}
		b, err := loaded(p, cacheDir, many)
		if err != nil {
			return PerUnit{}, err
		}
		per = append(per, Per(a, b, many-few))
	}
	return Median(per), nil
}

// loaded starts a host serving p with k instances, checks that it answers,
// takes a snapshot and closes the host.
func loaded(p Plugin, cacheDir string, k int) (Snapshot, error) {
	dir, err := os.MkdirTemp("", "pycomms-footprint-")
	if err != nil {
		return Snapshot{}, fmt.Errorf("footprint: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	h, err := startHost(dir, "inst", cacheDir, fmt.Sprintf(`listen: {tcp: "", quic: ""}
plugins:
  - {name: p, path: %q, services: [%s], instances: %d, watch: false, limits: {timeout: 10s}}
`, p.Path, p.Service, k))
	if err != nil {
		return Snapshot{}, err
	}
	defer h.n.Close()
	var got int
	for _, pi := range h.n.Plugins() {
		if pi.Name == "p" {
			if pi.State != control.PluginServing {
				return Snapshot{}, fmt.Errorf("footprint: plugin %s is %s: %s", p.Path, pi.State, pi.Error)
			}
			got = pi.Instances
		}
	}
	if got != k {
		return Snapshot{}, fmt.Errorf("footprint: plugin %s has %d instances, want %d", p.Path, got, k)
	}
	in := []byte("footprint")
	out, err := h.n.Call(context.Background(), &message.Message{
		Kind: abi.KindRequest, Subject: p.Service + ".upper", Payload: in,
		Deadline: time.Now().Add(10 * time.Second), From: "footprint",
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("footprint: call %s: %w", p.Path, err)
	}
	if !bytes.Equal(out, bytes.ToUpper(in)) {
		return Snapshot{}, fmt.Errorf("footprint: %s answered %q to %q", p.Path, out, in)
	}
	return Take()
}
