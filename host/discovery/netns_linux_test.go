//go:build linux

package discovery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests here send and receive real mDNS, and only ever inside network
// namespaces they create: a bridge namespace and three host namespaces
// joined by veth pairs, none of them connected to this machine's
// interfaces. The discovery services run in subprocesses started with
// "ip netns exec", so every socket they (and the library, which opens new
// sockets for each query) create belongs to a test namespace; the helper
// process also checks that it is not in the namespace it was started from
// before it starts anything. Nothing is ever started in the test's own
// namespace, so no multicast leaves the namespaces.

// helperEnv carries a helperConfig (JSON) to TestHelperProcess.
const helperEnv = "PYCOMMS_DISCOVERY_NETNS_HELPER"

type helperConfig struct {
	Netns string // the namespace the helper must be in (name under /var/run/netns)
	Self  Record
}

// helperLine is one line a helper prints on stdout.
type helperLine struct {
	Kind    string        // "ready", "found", "closed"
	Found   *Found        `json:",omitempty"`
	Stats   *Stats        `json:",omitempty"`
	CloseMS float64       `json:",omitempty"`
	Ifaces  []string      `json:",omitempty"`
	Elapsed time.Duration `json:",omitempty"` // since Start
}

// TestHelperProcess is the discovery instance TestDiscoveryInNetns runs in
// each host namespace. It does nothing when run on its own.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process of TestDiscoveryInNetns: runs only when that test starts it inside a test network namespace")
	}
	var cfg helperConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("%s: %v", helperEnv, err)
	}
	if err := inNetns(cfg.Netns); err != nil {
		t.Fatalf("refusing to send mDNS: %v", err)
	}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(l helperLine) {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(l); err != nil {
			t.Errorf("writing to stdout: %v", err)
		}
	}
	ifs, err := MulticastInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := Start(Options{
		Self:       cfg.Self,
		Interfaces: ifs,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnFound: func(f Found) {
			emit(helperLine{Kind: "found", Found: &f, Elapsed: time.Since(start)})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	emit(helperLine{Kind: "ready", Ifaces: strings.Split(ifaceNames(ifs), ",")})
	// Run until the parent closes stdin (or dies).
	io.Copy(io.Discard, os.Stdin)
	t0 := time.Now()
	s.Close()
	st := s.Stats()
	emit(helperLine{Kind: "closed", Stats: &st, CloseMS: float64(time.Since(t0).Microseconds()) / 1000})
}

// inNetns checks that this process is in the named network namespace (the
// test namespace "ip netns exec" was to put it in), so that a helper
// started any other way sends nothing.
func inNetns(name string) error {
	if name == "" || strings.ContainsAny(name, "/") {
		return fmt.Errorf("bad namespace name %q", name)
	}
	var self, want syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &self); err != nil {
		return err
	}
	if err := syscall.Stat("/var/run/netns/"+name, &want); err != nil {
		return err
	}
	if self.Dev != want.Dev || self.Ino != want.Ino {
		return fmt.Errorf("this process is not in network namespace %s", name)
	}
	return nil
}

// lockedBuffer collects a helper's stderr for the failure report.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type helperProc struct {
	ns     string
	rec    Record
	addr   net.IP
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	lines  chan helperLine // closed at EOF
	exited chan struct{}   // closed when Wait returned
	err    error           // of Wait, valid after exited
}

// randName returns n random characters of a-z0-9.
func randName(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[rand.N(len(chars))]
	}
	return string(b)
}

// randID returns a random valid node id.
func randID() string {
	const chars = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 32)
	for i := range b {
		b[i] = chars[rand.N(len(chars))]
	}
	return string(b)
}

// TestDiscoveryInNetns runs three discovery services on a bridged LAN made
// of network namespaces and checks that each finds the two others, with
// their ids, names, ports and addresses, and never itself; then that
// killing one leaves the others running and closing cleanly.
func TestDiscoveryInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mDNS is only ever sent inside network namespaces this test creates (ip netns add), which needs CAP_SYS_ADMIN")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command (iproute2) to create network namespaces: ", err)
	}
	ip := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ipPath, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}

	prefix := "pcd-" + randName(8)
	brNS := prefix + "-br"
	x := 1 + rand.N(254)
	subnet := &net.IPNet{IP: net.IPv4(10, byte(x), 0, 0).To4(), Mask: net.CIDRMask(24, 32)}
	var created []string
	t.Cleanup(func() {
		for _, ns := range created {
			if err := ip("netns", "del", ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	addNS := func(ns string) error {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		created = append(created, ns)
		return ip("-n", ns, "link", "set", "lo", "up")
	}
	if err := addNS(brNS); err != nil {
		t.Skip("cannot create a network namespace, so no mDNS test: ", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ip("-n", brNS, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"))
	must(ip("-n", brNS, "link", "set", "br0", "up"))

	hosts := make([]*helperProc, 3)
	for i := range hosts {
		ns := fmt.Sprintf("%s-h%d", prefix, i+1)
		port := fmt.Sprintf("p%d", i+1)
		addr := net.IPv4(10, byte(x), 0, byte(i+1)).To4()
		must(addNS(ns))
		if i == 2 {
			// The third host has no IPv6 at all: the library must cope
			// with its IPv6 sockets failing.
			must(ip("netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"))
		}
		must(ip("-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", port, "netns", brNS))
		must(ip("-n", brNS, "link", "set", port, "master", "br0"))
		must(ip("-n", brNS, "link", "set", port, "up"))
		must(ip("-n", ns, "addr", "add", addr.String()+"/24", "dev", "veth0"))
		must(ip("-n", ns, "link", "set", "veth0", "up"))
		// No default route in these namespaces: the library's query joins
		// 224.0.0.251 on the interface the routing table picks, so it
		// needs a route for multicast (see the package doc).
		must(ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "veth0"))
		rec := Record{ID: randID(), Name: fmt.Sprintf("host-%d", i+1), QUICPort: 7400 + i, MinProto: 1, MaxProto: 1}
		if i != 1 {
			rec.TCPPort = 7500 + i // the second host runs QUIC only
		}
		hosts[i] = &helperProc{ns: ns, rec: rec, addr: addr}
	}
	t.Logf("namespaces %s-{br,h1,h2,h3}, subnet %v", prefix, subnet)

	// Start the helpers; kill them before the namespaces go.
	t.Cleanup(func() {
		for _, h := range hosts {
			if h.cmd != nil && h.cmd.Process != nil {
				h.cmd.Process.Kill()
				select {
				case <-h.exited:
				case <-time.After(10 * time.Second):
					t.Errorf("helper in %s did not exit after kill", h.ns)
				}
			}
		}
		if t.Failed() {
			for _, h := range hosts {
				if h.stderr != nil {
					t.Logf("stderr of the helper in %s:\n%s", h.ns, h.stderr)
				}
			}
		}
	})
	start := time.Now()
	for _, h := range hosts {
		cfg, err := json.Marshal(helperConfig{Netns: h.ns, Self: h.rec})
		must(err)
		h.cmd = exec.Command(ipPath, "netns", "exec", h.ns, os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout=2m")
		h.cmd.Env = append(os.Environ(), helperEnv+"="+string(cfg))
		h.stderr = &lockedBuffer{}
		h.cmd.Stderr = h.stderr
		h.stdin, err = h.cmd.StdinPipe()
		must(err)
		stdout, err := h.cmd.StdoutPipe()
		must(err)
		must(h.cmd.Start())
		h.lines = make(chan helperLine, 1024)
		h.exited = make(chan struct{})
		go func() {
			defer close(h.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var l helperLine
				if json.Unmarshal(sc.Bytes(), &l) == nil && l.Kind != "" {
					h.lines <- l
				}
			}
		}()
		go func() {
			h.err = h.cmd.Wait()
			close(h.exited)
		}()
	}

	// Each host must find the two others within the deadline.
	others := func(i int) []*helperProc {
		var o []*helperProc
		for j, h := range hosts {
			if j != i {
				o = append(o, h)
			}
		}
		return o
	}
	check := func(i int, f *Found) error {
		h := hosts[i]
		if f.ID == h.rec.ID {
			return fmt.Errorf("found itself: %+v", f)
		}
		for _, a := range f.Addrs {
			if !subnet.Contains(a) {
				return fmt.Errorf("found %s at %v, outside %v", f.Name, a, subnet)
			}
		}
		for _, o := range others(i) {
			if f.ID == o.rec.ID {
				if f.Record != o.rec {
					return fmt.Errorf("found %+v, announced %+v", f.Record, o.rec)
				}
				if !slices.EqualFunc(f.Addrs, []net.IP{o.addr}, net.IP.Equal) {
					return fmt.Errorf("found %s at %v, want [%v]", f.Name, f.Addrs, o.addr)
				}
				return nil
			}
		}
		return fmt.Errorf("found an unknown host %+v", f)
	}
	seen := make([]map[string]time.Duration, len(hosts))
	for i := range seen {
		seen[i] = map[string]time.Duration{}
	}
	readLine := func(i int) bool {
		select {
		case l, ok := <-hosts[i].lines:
			if !ok {
				t.Fatalf("helper in %s ended early (%v)", hosts[i].ns, hosts[i].err)
			}
			switch l.Kind {
			case "ready":
				if !slices.Equal(l.Ifaces, []string{"veth0"}) {
					t.Errorf("helper in %s: MulticastInterfaces gave %q, want [veth0]", hosts[i].ns, l.Ifaces)
				}
			case "found":
				if err := check(i, l.Found); err != nil {
					t.Errorf("host %d: %v", i+1, err)
				} else if _, ok := seen[i][l.Found.ID]; !ok {
					seen[i][l.Found.ID] = time.Since(start)
				}
			}
			return true
		default:
			return false
		}
	}
	const findWithin = 15 * time.Second
	deadline := start.Add(findWithin)
	done := func() bool {
		for i := range hosts {
			if len(seen[i]) < 2 {
				return false
			}
		}
		return true
	}
	for !done() && time.Now().Before(deadline) {
		progress := false
		for i := range hosts {
			if readLine(i) {
				progress = true
			}
		}
		if !progress {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range hosts {
		for _, o := range others(i) {
			d, ok := seen[i][o.rec.ID]
			if !ok {
				t.Errorf("host %d did not find host %s (%s) within %v", i+1, o.rec.Name, o.rec.ID, findWithin)
				continue
			}
			t.Logf("host %d found %s after %v", i+1, o.rec.Name, d.Round(time.Millisecond))
		}
	}
	if t.Failed() {
		return
	}

	// Kill the third host; the two others go on, then close promptly.
	killed := hosts[2]
	must(killed.cmd.Process.Kill())
	select {
	case <-killed.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the killed helper did not exit")
	}
	time.Sleep(3 * time.Second) // a browse or two without the third host
	for i, h := range hosts[:2] {
		t0 := time.Now()
		h.stdin.Close()
		var closed *helperLine
	drain:
		for {
			select {
			case l, ok := <-h.lines:
				if !ok {
					break drain
				}
				switch l.Kind {
				case "found":
					if err := check(i, l.Found); err != nil {
						t.Errorf("host %d: %v", i+1, err)
					}
				case "closed":
					closed = &l
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("helper in %s did not finish within 10s of stdin closing", h.ns)
			}
		}
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("helper in %s did not exit", h.ns)
		}
		if h.err != nil {
			t.Errorf("helper in %s: %v", h.ns, h.err)
		}
		if closed == nil {
			t.Errorf("helper in %s printed no stats", h.ns)
			continue
		}
		st := closed.Stats
		t.Logf("host %d: Close took %.1fms, exit after %v; stats %+v", i+1, closed.CloseMS, time.Since(t0).Round(time.Millisecond), *st)
		if closed.CloseMS > 2000 {
			t.Errorf("host %d: Close took %.0fms", i+1, closed.CloseMS)
		}
		if st.Queries == 0 || st.Answers < 2 || st.Refused != 0 || st.QueryErrors != 0 {
			t.Errorf("host %d: stats %+v", i+1, *st)
		}
	}
}
