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

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// The tests here send and receive real mDNS, and only ever inside network
// namespaces they create: host namespaces joined by veth pairs, directly
// or through a bridge namespace, none of them connected to this machine's
// interfaces. The discovery services run in subprocesses started with
// "ip netns exec", so every socket they create belongs to a test
// namespace; the helper process also checks that it is not in the
// namespace it was started from before it starts anything. Nothing is ever
// started in the test's own namespace, so no multicast leaves the
// namespaces. No namespace has a route for multicast: none is needed.

// helperEnv carries a helperConfig (JSON) to TestHelperProcess.
const helperEnv = "PYCOMMS_DISCOVERY_NETNS_HELPER"

type helperConfig struct {
	Netns    string // the namespace the helper must be in (name under /var/run/netns)
	Self     Record
	Interval time.Duration
	// Querier makes the helper a bare mDNS querier instead of a Service:
	// it sends the queries named on its stdin ("qm", "qu", "legacy") on
	// veth0 and reports every packet it receives.
	Querier bool
}

// helperLine is one line a helper prints on stdout.
type helperLine struct {
	Kind    string        // "ready", "found", "lost", "stats", "closed"; querier: "ready", "sent", "got"
	Found   *Found        `json:",omitempty"`
	Stats   *Stats        `json:",omitempty"`
	CloseMS float64       `json:",omitempty"`
	Ifaces  []string      `json:",omitempty"`
	Elapsed time.Duration `json:",omitempty"` // since Start
	Got     *gotPacket    `json:",omitempty"`

	at time.Time // when the test read it
}

// gotPacket is a packet a querier helper received.
type gotPacket struct {
	From      string   // source ip:port
	ToGroup   bool     // sent to 224.0.0.251, not to the querier's address
	LocalPort int      // 5353 or the legacy socket's port
	ID        uint16   // message id
	Response  bool     // QR bit
	Questions int      // number of questions
	Records   []string // answer and additional records, as miekg/dns prints them
}

// TestHelperProcess is the discovery instance (or querier) the netns tests
// run in a namespace. It does nothing when run on its own.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process of the netns tests: runs only when one of them starts it inside a test network namespace")
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
	if cfg.Querier {
		runQuerier(t, ifs, emit)
		return
	}
	start := time.Now()
	s, err := Start(Options{
		Self:       cfg.Self,
		Interfaces: ifs,
		Interval:   cfg.Interval,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnFound: func(f Found) {
			emit(helperLine{Kind: "found", Found: &f, Elapsed: time.Since(start)})
		},
		OnLost: func(f Found) {
			emit(helperLine{Kind: "lost", Found: &f, Elapsed: time.Since(start)})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	emit(helperLine{Kind: "ready", Ifaces: strings.Split(ifaceNames(ifs), ",")})
	// "stats" lines ask for the counters; the parent closing stdin (or
	// dying) stops the service.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "stats" {
			st := s.Stats()
			emit(helperLine{Kind: "stats", Stats: &st, Elapsed: time.Since(start)})
		}
	}
	t0 := time.Now()
	s.Close()
	st := s.Stats()
	emit(helperLine{Kind: "closed", Stats: &st, CloseMS: float64(time.Since(t0).Microseconds()) / 1000})
}

// runQuerier is the querier helper: a port-5353 socket joined to the
// group on the namespace's interface (as a full mDNS querier has) and a
// socket on an ephemeral port (as dig has), both reporting what arrives.
func runQuerier(t *testing.T, ifs []net.Interface, emit func(helperLine)) {
	if len(ifs) != 1 {
		t.Fatalf("querier: want one interface, have %q", ifaceNames(ifs))
	}
	mc, err := openSocket(ifs)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	lc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	legacyPort := lc.LocalAddr().(*net.UDPAddr).Port
	// No namespace has a multicast route: both sockets send out of the
	// interface named.
	if err := ipv4.NewPacketConn(lc).SetMulticastInterface(&ifs[0]); err != nil {
		t.Fatal(err)
	}
	out := &ipv4.ControlMessage{IfIndex: ifs[0].Index}
	report := func(b []byte, from net.Addr, toGroup bool, port int) {
		var m dns.Msg
		g := gotPacket{From: from.String(), ToGroup: toGroup, LocalPort: port}
		if m.Unpack(b) == nil {
			g.ID, g.Response, g.Questions = m.Id, m.Response, len(m.Question)
			for _, rr := range append(m.Answer, m.Extra...) {
				g.Records = append(g.Records, rr.String())
			}
		}
		emit(helperLine{Kind: "got", Got: &g})
	}
	go func() {
		buf := make([]byte, maxPacket)
		for {
			n, cm, from, err := mc.ReadFrom(buf)
			if err != nil {
				return
			}
			report(buf[:n], from, cm != nil && cm.Dst.Equal(mdnsGroup), mdnsPort)
		}
	}()
	go func() {
		buf := make([]byte, maxPacket)
		for {
			n, from, err := lc.ReadFrom(buf)
			if err != nil {
				return
			}
			report(buf[:n], from, false, legacyPort)
		}
	}()
	emit(helperLine{Kind: "ready", Ifaces: []string{ifs[0].Name}})
	group := &net.UDPAddr{IP: mdnsGroup, Port: mdnsPort}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		kind := sc.Text()
		q := &dns.Msg{Question: []dns.Question{{Name: ServiceType + "." + domain, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}}
		var err error
		switch kind {
		case "qm", "qu":
			if kind == "qu" {
				q.Question[0].Qclass |= unicastResponse
			}
			b, _ := q.Pack()
			_, err = mc.WriteTo(b, out, group)
		case "legacy":
			q.Id = 0x1234
			b, _ := q.Pack()
			_, err = lc.WriteTo(b, group)
		default:
			t.Fatalf("querier: unknown command %q", kind)
		}
		if err != nil {
			t.Fatalf("querier: sending %s: %v", kind, err)
		}
		emit(helperLine{Kind: "sent"})
	}
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

// lab is a set of network namespaces a test creates and deletes.
type lab struct {
	t       *testing.T
	ipPath  string
	prefix  string
	x       int // addresses are 10.x.N.M
	mu      sync.Mutex
	created []string
}

// newLab skips the test unless namespaces can be made here.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mDNS is only ever sent inside network namespaces this test creates (ip netns add), which needs CAP_SYS_ADMIN")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command (iproute2) to create network namespaces: ", err)
	}
	l := &lab{t: t, ipPath: ipPath, prefix: "pcd-" + randName(8), x: 1 + rand.N(254)}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, ns := range slices.Backward(l.created) {
			if err := l.ip("netns", "del", ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	if err := l.addNS("probe"); err != nil {
		t.Skip("cannot create a network namespace, so no mDNS test: ", err)
	}
	return l
}

func (l *lab) ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, l.ipPath, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *lab) must(args ...string) {
	l.t.Helper()
	if err := l.ip(args...); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) addNS(name string) error {
	ns := l.prefix + "-" + name
	if err := l.ip("netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.created = append(l.created, ns)
	l.mu.Unlock()
	return l.ip("-n", ns, "link", "set", "lo", "up")
}

// ns creates namespace PREFIX-name and returns its full name.
func (l *lab) ns(name string) string {
	l.t.Helper()
	if err := l.addNS(name); err != nil {
		l.t.Fatal(err)
	}
	return l.prefix + "-" + name
}

// addr is 10.x.subnet.host.
func (l *lab) addr(subnet, host int) net.IP {
	return net.IPv4(10, byte(l.x), byte(subnet), byte(host)).To4()
}

// bridge creates a namespace holding bridge br0.
func (l *lab) bridge(name string) string {
	ns := l.ns(name)
	l.must("-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	l.must("-n", ns, "link", "set", "br0", "up")
	return ns
}

// plug joins interface ifname of namespace ns to the bridge in brNS
// (bridge port port), with address ip/24.
func (l *lab) plug(ns, ifname, brNS, port string, ip net.IP) {
	l.t.Helper()
	l.must("-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns", brNS)
	l.must("-n", brNS, "link", "set", port, "master", "br0")
	l.must("-n", brNS, "link", "set", port, "up")
	l.must("-n", ns, "addr", "add", ip.String()+"/24", "dev", ifname)
	l.must("-n", ns, "link", "set", ifname, "up")
}

// wire links interface if1 of ns1 to if2 of ns2 with a veth pair: a
// two-host link, addresses ip1/24 and ip2/24.
func (l *lab) wire(ns1, if1 string, ip1 net.IP, ns2, if2 string, ip2 net.IP) {
	l.t.Helper()
	l.must("-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2)
	l.must("-n", ns1, "addr", "add", ip1.String()+"/24", "dev", if1)
	l.must("-n", ns2, "addr", "add", ip2.String()+"/24", "dev", if2)
	l.must("-n", ns1, "link", "set", if1, "up")
	l.must("-n", ns2, "link", "set", if2, "up")
}

// helperProc is a running helper.
type helperProc struct {
	t      *testing.T
	ns     string
	rec    Record
	addr   net.IP
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *hosttest.SyncBuffer
	lines  chan helperLine // closed at EOF
	exited chan struct{}   // closed when Wait returned
	err    error           // of Wait, valid after exited
	// seen, when set, is called with every line next and await read.
	seen func(helperLine)
}

// startHelper runs TestHelperProcess with cfg in namespace cfg.Netns and
// waits for its "ready" line. It is killed when the test ends.
func startHelper(t *testing.T, l *lab, cfg helperConfig) *helperProc {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &helperProc{t: t, ns: cfg.Netns, rec: cfg.Self, stderr: &hosttest.SyncBuffer{}, lines: make(chan helperLine, 1024), exited: make(chan struct{})}
	h.cmd = exec.Command(l.ipPath, "netns", "exec", cfg.Netns, os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout=2m")
	h.cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	h.cmd.Stderr = h.stderr
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("helper in %s did not exit after kill", h.ns)
		}
		if t.Failed() {
			t.Logf("stderr of the helper in %s:\n%s", h.ns, h.stderr)
		}
	})
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var hl helperLine
			if json.Unmarshal(sc.Bytes(), &hl) != nil || hl.Kind == "" {
				h.stderr.Write(append(append([]byte("stdout: "), sc.Bytes()...), '\n'))
			} else {
				hl.at = time.Now()
				h.lines <- hl
			}
		}
	}()
	go func() {
		h.err = h.cmd.Wait()
		close(h.exited)
	}()
	h.next(10*time.Second, "ready", func(helperLine) bool { return true })
	return h
}

// next returns the first line of the kind that satisfies ok, within d;
// lines of other kinds are passed to skip (which may be nil). It fails
// the test on timeout or EOF.
func (h *helperProc) next(d time.Duration, kind string, ok func(helperLine) bool) helperLine {
	h.t.Helper()
	l, found := h.await(d, kind, ok)
	if !found {
		h.t.Fatalf("helper in %s: no %q line within %v", h.ns, kind, d)
	}
	return l
}

// await is next without failing: found is false on timeout.
func (h *helperProc) await(d time.Duration, kind string, ok func(helperLine) bool) (l helperLine, found bool) {
	h.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, open := <-h.lines:
			if !open {
				h.t.Fatalf("helper in %s ended early (%v)", h.ns, h.err)
			}
			if h.seen != nil {
				h.seen(l)
			}
			if l.Kind == kind && ok(l) {
				return l, true
			}
		case <-timer.C:
			return helperLine{}, false
		}
	}
}

// send writes one command line to the helper.
func (h *helperProc) send(cmd string) {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, cmd+"\n"); err != nil {
		h.t.Fatalf("helper in %s: %v", h.ns, err)
	}
}

// stats asks a Service helper for its counters.
func (h *helperProc) stats() Stats {
	h.t.Helper()
	h.send("stats")
	return *h.next(10*time.Second, "stats", func(helperLine) bool { return true }).Stats
}

// stop closes the helper's stdin (the Service says goodbye and closes),
// waits for its exit and returns its "closed" line.
func (h *helperProc) stop() helperLine {
	h.t.Helper()
	h.stdin.Close()
	l := h.next(10*time.Second, "closed", func(helperLine) bool { return true })
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("helper in %s did not exit", h.ns)
	}
	if h.err != nil {
		h.t.Errorf("helper in %s: %v", h.ns, h.err)
	}
	return l
}

func newRecord(name string, port int) Record {
	return Record{ID: randID(), Name: name, TCPPort: port, QUICPort: port + 100, MinProto: 1, MaxProto: 1}
}

func foundID(id string) func(helperLine) bool {
	return func(l helperLine) bool { return l.Found != nil && l.Found.ID == id }
}

// TestDiscoveryInNetns runs three discovery services on a bridged LAN made
// of network namespaces and checks that each finds the two others, with
// their ids, names, ports and addresses, and never itself; then that
// killing one leaves the others running and closing cleanly.
func TestDiscoveryInNetns(t *testing.T) {
	l := newLab(t)
	br := l.bridge("br")
	subnet := &net.IPNet{IP: l.addr(0, 0), Mask: net.CIDRMask(24, 32)}
	hosts := make([]*helperProc, 3)
	cfgs := make([]helperConfig, 3)
	for i := range hosts {
		ns := l.ns(fmt.Sprintf("h%d", i+1))
		if i == 2 {
			// The third host has no IPv6 at all.
			l.must("netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		}
		l.plug(ns, "veth0", br, fmt.Sprintf("p%d", i+1), l.addr(0, i+1))
		rec := Record{ID: randID(), Name: fmt.Sprintf("host-%d", i+1), QUICPort: 7400 + i, MinProto: 1, MaxProto: 1}
		if i != 1 {
			rec.TCPPort = 7500 + i // the second host runs QUIC only
		}
		cfgs[i] = helperConfig{Netns: ns, Self: rec}
	}
	start := time.Now()
	for i := range hosts {
		hosts[i] = startHelper(t, l, cfgs[i])
		hosts[i].addr = l.addr(0, i+1)
	}

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
		for _, o := range others(i) {
			if f.ID == o.rec.ID {
				if f.Record != o.rec {
					return fmt.Errorf("found %+v, announced %+v", f.Record, o.rec)
				}
				if !slices.EqualFunc(f.Addrs, []net.IP{o.addr}, net.IP.Equal) || f.Interface != "veth0" {
					return fmt.Errorf("found %s at %v on %s, want [%v] on veth0 (subnet %v)", f.Name, f.Addrs, f.Interface, o.addr, subnet)
				}
				return nil
			}
		}
		return fmt.Errorf("found an unknown host %+v", f)
	}
	for i, h := range hosts {
		h.seen = func(hl helperLine) {
			if hl.Kind == "found" {
				if err := check(i, hl.Found); err != nil {
					t.Errorf("host %d: %v", i+1, err)
				}
			}
		}
	}
	const findWithin = 15 * time.Second
	for i, h := range hosts {
		for _, o := range others(i) {
			fl := h.next(findWithin-time.Since(start), "found", foundID(o.rec.ID))
			if err := check(i, fl.Found); err != nil {
				t.Errorf("host %d: %v", i+1, err)
			}
			t.Logf("host %d found %s after %v", i+1, o.rec.Name, fl.Elapsed.Round(time.Millisecond))
		}
	}
	if t.Failed() {
		return
	}

	// Kill the third host (no goodbye); the two others go on, then close
	// promptly, every answer they reported being right.
	killed := hosts[2]
	if err := killed.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-killed.exited
	time.Sleep(2 * time.Second) // a browse without the third host
	for i, h := range hosts[:2] {
		t0 := time.Now()
		h.stdin.Close()
		var closed *helperLine
	drain:
		for {
			select {
			case hl, ok := <-h.lines:
				if !ok {
					break drain
				}
				switch hl.Kind {
				case "found":
					if err := check(i, hl.Found); err != nil {
						t.Errorf("host %d: %v", i+1, err)
					}
				case "closed":
					closed = &hl
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("helper in %s did not finish within 10s of stdin closing", h.ns)
			}
		}
		<-h.exited
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
		if st.Queries == 0 || st.Answers < 2 || st.Refused != 0 || st.QueryErrors != 0 || st.Ignored != 0 {
			t.Errorf("host %d: stats %+v", i+1, *st)
		}
	}
}

// TestMultiHomedAnswersPerInterface: host m has two interfaces, veth0 on a
// link with host a and veth1 on a link with host b (two veth pairs, two
// subnets, no routing between them). a must find m at m's address on
// a's link only, b at m's address on b's link only, and m each of them
// on the interface that leads to it; a and b never find each other. A
// host announcing every address on every link (what hashicorp/mdns did)
// fails this: a would be handed m's address on b's link, which it cannot
// reach.
func TestMultiHomedAnswersPerInterface(t *testing.T) {
	l := newLab(t)
	nsM, nsA, nsB := l.ns("m"), l.ns("a"), l.ns("b")
	mA, aM := l.addr(1, 1), l.addr(1, 2) // link m.veth0 - a.veth0
	mB, bM := l.addr(2, 1), l.addr(2, 2) // link m.veth1 - b.veth0
	l.wire(nsM, "veth0", mA, nsA, "veth0", aM)
	l.wire(nsM, "veth1", mB, nsB, "veth0", bM)
	recM, recA, recB := newRecord("m", 7400), newRecord("a", 7401), newRecord("b", 7402)

	// want[host][peer id] is where host must find peer: address and
	// interface; a peer missing from it must not be found at all.
	type where struct {
		addr  net.IP
		iface string
	}
	want := map[string]map[string]where{
		"m": {recA.ID: {aM, "veth0"}, recB.ID: {bM, "veth1"}},
		"a": {recM.ID: {mA, "veth0"}},
		"b": {recM.ID: {mB, "veth0"}},
	}
	procs := map[string]*helperProc{}
	start := time.Now()
	for name, c := range map[string]helperConfig{"m": {Netns: nsM, Self: recM}, "a": {Netns: nsA, Self: recA}, "b": {Netns: nsB, Self: recB}} {
		p := startHelper(t, l, c)
		p.seen = func(hl helperLine) {
			if hl.Kind != "found" {
				return
			}
			w, ok := want[name][hl.Found.ID]
			if !ok {
				t.Errorf("host %s found %s (%s), which it has no link to", name, hl.Found.Name, hl.Found.ID)
				return
			}
			if !slices.EqualFunc(hl.Found.Addrs, []net.IP{w.addr}, net.IP.Equal) || hl.Found.Interface != w.iface {
				t.Errorf("host %s found %s at %v on %s, want only %v (on %s): the others are not on its link", name, hl.Found.Name, hl.Found.Addrs, hl.Found.Interface, w.addr, w.iface)
			}
		}
		procs[name] = p
	}
	const findWithin = 15 * time.Second
	for name, peers := range want {
		for id := range peers {
			fl := procs[name].next(findWithin-time.Since(start), "found", foundID(id))
			t.Logf("host %s found %s at %v on %s after %v", name, fl.Found.Name, fl.Found.Addrs, fl.Found.Interface, fl.Elapsed.Round(time.Millisecond))
		}
	}
	// Past the announcements and a few browses: every answer so far and
	// in these seconds is checked by seen.
	for _, p := range procs {
		p.await(3*time.Second-time.Since(start)%time.Second, "none", func(helperLine) bool { return false })
	}
	for name, p := range procs {
		st := p.stop().Stats
		t.Logf("host %s: stats %+v", name, *st)
		if st.Refused != 0 || st.QueryErrors != 0 {
			t.Errorf("host %s: stats %+v", name, *st)
		}
	}
}

// TestGoodbyeAndRestart: a browsing peer p and a node n on one link. When
// n stops, p reports it gone within 2 s (n said goodbye); when n starts
// again, p reports it found within 2 s, with p sending no query in
// between (n announced itself). p browses with a 1 h interval, so that
// after its first queries (0, 1, 3, 7 s) it does not query again before
// 15 s: n restarts at 10.5 s, and only an announcement can make p see it.
func TestGoodbyeAndRestart(t *testing.T) {
	const bound = 2 * time.Second // the item's bound, asserted as is
	l := newLab(t)
	nsP, nsN := l.ns("p"), l.ns("n")
	l.wire(nsP, "veth0", l.addr(0, 1), nsN, "veth0", l.addr(0, 2))
	recN := newRecord("n", 7400)
	p := startHelper(t, l, helperConfig{Netns: nsP, Self: newRecord("p", 7401), Interval: time.Hour})
	pStart := time.Now()
	n := startHelper(t, l, helperConfig{Netns: nsN, Self: recN})
	fl := p.next(15*time.Second, "found", foundID(recN.ID))
	t.Logf("p found n %v after p started", fl.at.Sub(pStart).Round(time.Millisecond))

	// 1. n stops: p reports it lost within 2 s.
	stopped := time.Now()
	n.stop()
	if ll, ok := p.await(bound+time.Second, "lost", foundID(recN.ID)); !ok {
		t.Errorf("p did not report n lost within %v of its stop", bound+time.Second)
	} else {
		took := ll.at.Sub(stopped)
		t.Logf("p reported n lost %v after n was told to stop", took.Round(time.Millisecond))
		if took > bound {
			t.Errorf("p reported n lost %v after n was told to stop, over %v", took.Round(time.Millisecond), bound)
		}
	}

	// 2. n restarts at 10.5 s into p's life: p sees it within 2 s, by
	// n's announcement, not by a query of its own.
	if wait := time.Until(pStart.Add(10500 * time.Millisecond)); wait > 0 {
		if _, ok := p.await(wait, "found", foundID(recN.ID)); ok {
			t.Fatal("p found n while n was stopped")
		}
	}
	before := p.stats()
	restarted := time.Now()
	n = startHelper(t, l, helperConfig{Netns: nsN, Self: recN})
	if fl, ok := p.await(bound+time.Second, "found", foundID(recN.ID)); !ok {
		t.Errorf("p did not find the restarted n within %v", bound+time.Second)
	} else {
		took := fl.at.Sub(restarted)
		t.Logf("p found the restarted n %v after its start (%v into p's life)", took.Round(time.Millisecond), fl.at.Sub(pStart).Round(time.Millisecond))
		if took > bound {
			t.Errorf("p found the restarted n %v after its start, over %v", took.Round(time.Millisecond), bound)
		}
	}
	after := p.stats()
	if after.Queries != before.Queries {
		t.Errorf("p sent %d queries while n restarted: the test no longer shows that n's announcement alone is enough", after.Queries-before.Queries)
	}
	t.Logf("p stats %+v", after)
	if after.Lost != 1 {
		t.Errorf("p counted %d lost hosts, want 1", after.Lost)
	}
}

// TestQueriesAnsweredAsRFCSays: on a bridged LAN, a Service r, an on-link
// querier q and an off-link querier o (on the same wire, in a subnet r
// has no address in). o's queries (QM, QU, legacy) get nothing: r
// ignores queries from off-link sources. q's QM query gets a multicast
// answer, its QU query (r multicast a moment ago) a unicast one to port
// 5353, and its legacy query (from an ephemeral port, like dig) a unicast
// one with its id and question and TTLs of at most 10 s. Every answer
// carries r's address on that link.
func TestQueriesAnsweredAsRFCSays(t *testing.T) {
	l := newLab(t)
	br := l.bridge("br")
	nsR, nsQ, nsO := l.ns("r"), l.ns("q"), l.ns("o")
	rAddr, qAddr, oAddr := l.addr(0, 1), l.addr(0, 2), l.addr(9, 3)
	l.plug(nsR, "veth0", br, "pr", rAddr)
	l.plug(nsQ, "veth0", br, "pq", qAddr)
	l.plug(nsO, "veth0", br, "po", oAddr)
	rec := newRecord("r", 7400)
	o := startHelper(t, l, helperConfig{Netns: nsO, Querier: true})
	q := startHelper(t, l, helperConfig{Netns: nsQ, Querier: true})
	rStart := time.Now()
	r := startHelper(t, l, helperConfig{Netns: nsR, Self: rec, Interval: time.Hour})
	rFrom := net.JoinHostPort(rAddr.String(), "5353")
	fromR := func(hl helperLine) bool { return hl.Got != nil && hl.Got.From == rFrom && hl.Got.Response }
	hasA := func(g *gotPacket) bool {
		for _, rr := range g.Records {
			if strings.Contains(rr, "\tA\t") && !strings.HasSuffix(rr, "\t"+rAddr.String()) {
				return false
			}
		}
		return slices.ContainsFunc(g.Records, func(rr string) bool { return strings.HasSuffix(rr, "\tA\t"+rAddr.String()) })
	}
	// r's two announcements (0 and 1 s) reach both queriers by multicast.
	for _, h := range []*helperProc{o, q} {
		hl := h.next(5*time.Second, "got", fromR)
		if !hl.Got.ToGroup || !hasA(hl.Got) {
			t.Errorf("announcement seen in %s: %+v", h.ns, *hl.Got)
		}
	}
	// r queries at 0, 1, 3 s (its own; q and o see them, not responses),
	// then not before 7 s: from 2 s on, any response from r answers a
	// query of q or o.
	time.Sleep(time.Until(rStart.Add(2 * time.Second)))
	drain := func(h *helperProc) {
		for {
			select {
			case <-h.lines:
			default:
				return
			}
		}
	}
	drain(o)
	drain(q)

	// o is off-link: nothing answers it, by multicast or unicast.
	for _, kind := range []string{"qm", "qu", "legacy"} {
		o.send(kind)
		o.next(5*time.Second, "sent", func(helperLine) bool { return true })
	}
	if hl, ok := o.await(1500*time.Millisecond, "got", fromR); ok {
		t.Errorf("the off-link querier got a response from r: %+v", *hl.Got)
	}
	if st := r.stats(); st.Ignored < 3 {
		t.Errorf("r ignored %d packets, want at least o's 3 queries: stats %+v", st.Ignored, st)
	}
	drain(q)

	// q's QM query: a multicast answer (within the 1 s rate limit and the
	// 20-120 ms delay).
	q.send("qm")
	hl := q.next(3*time.Second, "got", fromR)
	if !hl.Got.ToGroup || hl.Got.ID != 0 || hl.Got.Questions != 0 || !hasA(hl.Got) {
		t.Errorf("answer to a QM query: %+v, want a multicast response with id 0, no question and r's address", *hl.Got)
	}
	// q's QU query, r having multicast its records a moment ago: unicast.
	q.send("qu")
	hl = q.next(3*time.Second, "got", fromR)
	if hl.Got.ToGroup || hl.Got.LocalPort != mdnsPort || !hasA(hl.Got) {
		t.Errorf("answer to a QU query: %+v, want a unicast response to port 5353 with r's address", *hl.Got)
	}
	// q's legacy query: unicast to its port, id and question echoed,
	// TTLs of at most 10 s.
	q.send("legacy")
	hl = q.next(3*time.Second, "got", fromR)
	if hl.Got.ToGroup || hl.Got.LocalPort == mdnsPort || hl.Got.ID != 0x1234 || hl.Got.Questions != 1 || !hasA(hl.Got) {
		t.Errorf("answer to a legacy query: %+v, want a unicast response to its port with id 0x1234, its question and r's address", *hl.Got)
	}
	for _, rr := range hl.Got.Records {
		if f := strings.Split(rr, "\t"); len(f) < 2 || !slices.Contains([]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}, f[1]) {
			t.Errorf("legacy answer record %q: TTL over 10 s", rr)
		}
	}
	t.Logf("r stats %+v", r.stats())
}
