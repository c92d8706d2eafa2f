package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/node"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Host is one host of a cluster. Its methods that check something return
// an error that starts with the host's name, for hosttest.CheckFor.
type Host struct {
	Name string
	// Index is the host's number in the cluster (HostAt), which tells
	// apart hosts whose names repeat.
	Index int
	// Logs is what the host logged (JSON lines, debug level), across
	// restarts; for a process, its stdout and stderr.
	Logs *hosttest.SyncBuffer
	// Records is the same log, line by line, decoded and timed: which
	// records the host logged, and when.
	Records *hosttest.LogRecords
	// Client is the host's control API client; replaced by each start.
	Client *control.Client

	c     *Cluster
	dir   string
	peers []string // peer URLs its config lists

	// Config the host's next config file says beyond the cluster's
	// defaults (SetPlugins, SetExtra; Options.Trust).
	plugins, extra, trust string
	ownTrust              bool
	edit                  func(string) string // EditConfig
	// The listen addresses the last config file said.
	listenTCP, listenQUIC string

	// The listen addresses of the last start (host:port), reused by a
	// restart.
	tcp, quic, control string

	n      *node.Node // InProcess, while running
	cmd    *exec.Cmd  // Process, while running
	exited chan struct{}
	// lastState is the exited process's state, set before exited closes.
	lastState *os.ProcessState
	frozen    bool
	running   bool
}

// String names the host in messages: its name, with its number when
// another host has the same name.
func (h *Host) String() string {
	for _, o := range h.c.hosts {
		if o != h && o.Name == h.Name {
			return fmt.Sprintf("%s#%d", h.Name, h.Index)
		}
	}
	return h.Name
}

// PeerURL is the host's mesh address for transport ("tcp" or "quic") as a
// peers: entry, once it has started.
func (h *Host) PeerURL(transport string) string {
	if transport == "quic" {
		return "quic://" + h.quic
	}
	return "tcp://" + h.tcp
}

// ListenAddrs are the host's mesh listen addresses (host:port) of its
// last start.
func (h *Host) ListenAddrs() (tcp, quic string) { return h.tcp, h.quic }

// Node is the running node of an InProcess host, nil otherwise.
func (h *Host) Node() *node.Node { return h.n }

// Running reports whether the host was started and not killed since.
func (h *Host) Running() bool { return h.running }

// SetPeers sets the peers: the host's config lists from its next start
// (the test links hosts itself, with Topology None).
func (h *Host) SetPeers(urls ...string) { h.peers = urls }

// Dir is the host's directory: its config (pycomms.yaml) and data.
func (h *Host) Dir() string { return h.dir }

// ConfigPath is the host's config file.
func (h *Host) ConfigPath() string { return filepath.Join(h.dir, "pycomms.yaml") }

// ControlAddr is the host:port of the host's control API since its last
// start, for a client of the test's own (the CLI's --control).
func (h *Host) ControlAddr() string { return h.control }

// SetPlugins replaces the items of the host's plugins: list (YAML, each
// line indented by two spaces) from its next config file (WriteConfig,
// Start).
func (h *Host) SetPlugins(items string) { h.plugins = items }

// SetExtra replaces the top-level YAML that the host's config adds to
// the cluster's keys (Options.Extra), from its next config file.
func (h *Host) SetExtra(yaml string) { h.extra = yaml }

// EditConfig passes every config file the host writes from now on, at a
// start as at WriteConfig, through edit: a config the cluster's settings
// cannot say, such as listen or control addresses a test holds, for a
// host that must fail to start.
func (h *Host) EditConfig(edit func(yaml string) string) { h.edit = edit }

// WriteConfig rewrites the host's config file from its settings now
// (peers, plugins, extra), with the listen addresses its file said (a
// reload cannot change them), for a Reload or a SIGHUP to apply.
func (h *Host) WriteConfig() error {
	_, err := h.config(sameAsFile, nil)
	return err
}

// RewriteConfig is WriteConfig with the file's text passed through edit
// first: a config the cluster's settings cannot say (a key changed in
// place, a broken file).
func (h *Host) RewriteConfig(edit func(yaml string) string) error {
	_, err := h.config(sameAsFile, edit)
	return err
}

// Reload makes the running host apply its config file, as
// `pycomms-host reload` does, and returns the refusal if it refuses: in
// process through node.Reload, for a process through the control API.
// (A process's SIGHUP: Signal.)
func (h *Host) Reload() error {
	if !h.running {
		return fmt.Errorf("host %q: not running", h)
	}
	ctx, cancel := ctx()
	defer cancel()
	var err error
	if h.n != nil {
		err = h.n.Reload(ctx)
	} else {
		err = h.Client.Reload(ctx)
	}
	if err != nil {
		return fmt.Errorf("host %q: reload: %w", h, err)
	}
	return nil
}

// How config writes the listen addresses.
type listenAs int

const (
	freePorts  listenAs = iota // 127.0.0.1:0
	samePorts                  // the ports of the last start (a restart)
	sameAsFile                 // what the last file said (a reload: no listen change)
)

// config writes the host's pycomms.yaml, through edit if not nil, with
// listen addresses as la says.
func (h *Host) config(la listenAs, edit func(string) string) (string, error) {
	o := h.c.opts
	switch {
	case la == samePorts && h.tcp != "":
		h.listenTCP, h.listenQUIC = h.tcp, h.quic
	case la == freePorts || h.listenTCP == "":
		free := net.JoinHostPort(h.listenHost(), "0")
		h.listenTCP, h.listenQUIC = free, free
	}
	quoted := make([]string, len(h.peers))
	for i, p := range h.peers {
		quoted[i] = strconv.Quote(p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "node: {name: %s}\n", h.Name)
	fmt.Fprintf(&b, "control: 127.0.0.1:0\n")
	fmt.Fprintf(&b, "listen: {tcp: %q, quic: %q}\n", h.listenTCP, h.listenQUIC)
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(h.dir, "data"))
	fmt.Fprintf(&b, "cache_dir: %q\n", o.CacheDir)
	fmt.Fprintf(&b, "log: {format: json, level: debug}\n")
	switch {
	case !h.ownTrust:
		fmt.Fprintf(&b, "trust: {secret: %q}\n", o.Secret)
	case h.trust != "":
		fmt.Fprintf(&b, "trust: %s\n", h.trust)
	}
	if o.DeadAfter > 0 {
		fmt.Fprintf(&b, "discovery: {dead_after: %s}\n", o.DeadAfter)
	}
	fmt.Fprintf(&b, "peers: [%s]\n", strings.Join(quoted, ", "))
	if h.plugins != "" {
		b.WriteString("plugins:\n" + h.plugins)
	}
	b.WriteString(h.extra)
	text := b.String()
	if h.edit != nil {
		text = h.edit(text)
	}
	if edit != nil {
		text = edit(text)
	}
	path := h.ConfigPath()
	// A rename, so that a host reading its config never sees half a file.
	if err := os.WriteFile(path+".tmp", []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("host %q: write config: %w", h, err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return "", fmt.Errorf("host %q: write config: %w", h, err)
	}
	return path, nil
}

// Start starts the host (again, after Kill: same identity key, and the
// same ports unless another process took them meanwhile) and waits until
// it listens. Proxies in front of it follow it to new ports.
func (h *Host) Start() error {
	if h.running {
		return fmt.Errorf("host %q: already running", h)
	}
	keep := h.tcp != ""
	err := h.start(keep)
	if err != nil && keep {
		// The old ports are taken: start on free ones.
		h.c.t.Logf("host %q: restart on the same ports failed, using new ones: %v", h, err)
		err = h.start(false)
	}
	if err != nil {
		return err
	}
	for key, p := range h.c.tcpProx {
		if key[1] == h.Name {
			p.SetTarget(h.tcp)
		}
	}
	for key, p := range h.c.udpProx {
		if key[1] == h.Name {
			if err := p.SetServer(h.quic); err != nil {
				return fmt.Errorf("host %q: %w", h, err)
			}
		}
	}
	return nil
}

func (h *Host) start(keep bool) error {
	la := freePorts
	if keep {
		la = samePorts
	}
	path, err := h.config(la, nil)
	if err != nil {
		return err
	}
	from := len(h.Logs.String())
	if h.c.opts.Mode == Process {
		err = h.startProcess(path, from)
	} else {
		err = h.startInProcess(path, from)
	}
	if err != nil {
		return err
	}
	h.running, h.frozen = true, false
	h.Client = control.NewClient(h.control)
	return nil
}

func (h *Host) startInProcess(path string, from int) error {
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(h.Logs, h.Records), &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := node.New(context.Background(), node.Options{ConfigPath: path, Logger: logger, WatchSettle: 50 * time.Millisecond,
		ForgetAfter: h.c.opts.ForgetAfter})
	if err != nil {
		return fmt.Errorf("host %q: new node: %w", h, err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		return fmt.Errorf("host %q: start node: %w", h, err)
	}
	h.n = n
	// Start logs both records before it returns.
	if err := h.readAddrs(from); err != nil {
		n.Close()
		h.n = nil
		return err
	}
	return nil
}

// listenHost is the IP address the host's mesh listens on.
func (h *Host) listenHost() string {
	if ip := h.c.opts.ListenHost[h.Name]; ip != "" {
		return ip
	}
	return "127.0.0.1"
}

// readAddrs fills in the addresses from the "mesh listening" and "node
// started" records logged since offset from.
func (h *Host) readAddrs(from int) error {
	var listening, started map[string]any
	sc := bufio.NewScanner(strings.NewReader(h.Logs.String()[from:]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch m["msg"] {
		case "mesh listening":
			listening = m
		case "node started":
			started = m
		}
	}
	if listening == nil || started == nil {
		return fmt.Errorf("host %q: no \"mesh listening\" and \"node started\" log records yet", h)
	}
	h.tcp = strings.TrimPrefix(fmt.Sprint(listening["tcp"]), "tcp://")
	h.quic = strings.TrimPrefix(fmt.Sprint(listening["quic"]), "quic://")
	h.control = fmt.Sprint(started["control"])
	want := net.ParseIP(h.listenHost())
	for what, addr := range map[string]string{"tcp": h.tcp, "quic": h.quic, "control": h.control} {
		host, _, err := net.SplitHostPort(addr)
		ip := net.ParseIP(host)
		switch {
		case err != nil || ip == nil:
			return fmt.Errorf("host %q: %s address %q is not an ip:port", h, what, addr)
		case what == "control" && !ip.Equal(net.IPv4(127, 0, 0, 1)):
			return fmt.Errorf("host %q: control address %q is not on 127.0.0.1", h, addr)
		case what != "control" && !ip.Equal(want) && !(ip.IsUnspecified() && want.IsUnspecified()):
			// 0.0.0.0 is logged as [::].
			return fmt.Errorf("host %q: %s address %q is not on %s", h, what, addr, want)
		}
	}
	return nil
}

func (h *Host) startProcess(path string, from int) error {
	bin := h.c.opts.Binary
	if bin == "" {
		var err error
		if bin, err = binary(); err != nil {
			return fmt.Errorf("host %q: %w", h, err)
		}
	}
	cmd := exec.Command(bin, "run", "-c", path)
	cmd.Dir = h.dir
	for _, kv := range os.Environ() {
		// Hermetic: no PYCOMMS_* override from the caller's environment.
		if !strings.HasPrefix(kv, "PYCOMMS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, h.c.opts.Env...)
	if h.c.opts.Wrap != nil {
		h.c.opts.Wrap(h, cmd)
	}
	out := io.MultiWriter(h.Logs, h.Records)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	// If the test binary dies (a -timeout panic skips cleanups), the kernel
	// kills the host, even a SIGSTOPped one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("host %q: start %s: %w", h, bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); h.lastState = cmd.ProcessState; close(exited) }()
	h.cmd, h.exited = cmd, exited
	deadline := time.Now().Add(StartTimeout)
	for {
		err := h.readAddrs(from)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			h.cmd = nil
			return fmt.Errorf("host %q exited during start (%v):\n%s", h, cmd.ProcessState, tail(h.Logs.String()[from:], 20))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.kill()
			return fmt.Errorf("host %q: not started within %v: %w", h, StartTimeout, err)
		}
	}
}

// PID is the process id of a running Process host, 0 otherwise.
func (h *Host) PID() int {
	if h.cmd == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Signal sends sig to a running Process host (SIGHUP: reload; SIGTERM: a
// clean stop, which Exited sees). An in-process host has no process of
// its own: Signal returns an error.
func (h *Host) Signal(sig os.Signal) error {
	if h.cmd == nil {
		return fmt.Errorf("host %q: no process to signal (%s, running %v)", h, h.c.opts.Mode, h.running)
	}
	if err := h.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("host %q (pid %d): signal %v: %w", h, h.cmd.Process.Pid, sig, err)
	}
	return nil
}

// Exited returns a channel closed when the process of a Process host
// started last exits on its own or by a signal; nil before its first
// start and in process.
func (h *Host) Exited() <-chan struct{} { return h.exited }

// ExitCode is the exit code of the host's last process once Exited is
// closed (-1 if a signal ended it), or an error while it runs. A process
// that exited during Start has one too.
func (h *Host) ExitCode() (int, error) {
	select {
	case <-h.exited:
	default:
		return 0, fmt.Errorf("host %q: process still running (or never started)", h)
	}
	return h.lastState.ExitCode(), nil
}

// Kill stops the host at once. A process gets SIGKILL: it says nothing to
// its peers, which learn of it from their dead time (TCP: the kernel's
// RST). In process, the Go runtime cannot kill part of itself: Kill closes
// the node, which tells its peers goodbye, so they drop its routes at
// once; a test of a silent death uses Process mode, or Freeze.
func (h *Host) Kill() {
	h.c.t.Helper()
	h.stop()
}

func (h *Host) stop() {
	if !h.running {
		return
	}
	h.running = false
	if h.Client != nil {
		h.Client.CloseIdleConnections()
	}
	if h.n != nil {
		if err := h.n.Close(); err != nil {
			h.c.t.Logf("host %q: close: %v", h, err)
		}
		h.n = nil
	}
	h.kill()
}

// kill SIGKILLs the process (stopped or not) and waits for it.
func (h *Host) kill() {
	if h.cmd == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-h.exited:
	case <-time.After(15 * time.Second):
		h.c.t.Errorf("host %q (pid %d) did not exit within 15s of SIGKILL", h, h.cmd.Process.Pid)
	}
	h.cmd = nil
}

// Restart is Kill then Start.
func (h *Host) Restart() error {
	h.stop()
	return h.Start()
}

// Freeze makes the host stop answering without closing anything. A
// process gets SIGSTOP. In process, the Go runtime cannot stop one node's
// goroutines, so Freeze partitions the proxies of the host's links (the
// cluster must be Proxied): its peers hear nothing, as from a stopped
// process, but the node itself goes on (its timers run, its control API
// answers) and it sees its peers fall silent too. Without proxies it
// returns an error.
func (h *Host) Freeze() error {
	if !h.running {
		return fmt.Errorf("host %q: not running", h)
	}
	if h.cmd != nil {
		if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return fmt.Errorf("host %q: SIGSTOP: %w", h, err)
		}
		h.frozen = true
		return nil
	}
	n := h.eachProxy(func(p partitionable) { p.Partition() })
	if n == 0 {
		return fmt.Errorf("host %q: an in-process host can be frozen only through proxies on its links (Options.Proxied), and it has none", h)
	}
	h.frozen = true
	return nil
}

// Thaw undoes Freeze (SIGCONT, or Heal of the proxies).
func (h *Host) Thaw() error {
	if !h.frozen {
		return fmt.Errorf("host %q: not frozen", h)
	}
	h.frozen = false
	if h.cmd != nil {
		if err := h.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			return fmt.Errorf("host %q: SIGCONT: %w", h, err)
		}
		return nil
	}
	h.eachProxy(func(p partitionable) { p.Heal() })
	return nil
}

// partitionable is what Freeze and Thaw need of a proxy.
type partitionable interface {
	Partition()
	Heal()
}

// eachProxy calls f on every proxy on a link of h and returns how many.
func (h *Host) eachProxy(f func(partitionable)) int {
	n := 0
	for key, p := range h.c.tcpProx {
		if slices.Contains(key[:], h.Name) {
			f(p)
			n++
		}
	}
	for key, p := range h.c.udpProx {
		if slices.Contains(key[:], h.Name) {
			f(p)
			n++
		}
	}
	return n
}
