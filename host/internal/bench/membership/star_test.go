package membership

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/mesh"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// victimEnv, when set in the environment of this test binary, makes it run
// one host that dials the seed address the variable holds instead of the
// tests (see TestMain): the host a benchmark kills with SIGKILL, a real
// crash, which sends no goodbye.
const victimEnv = "PYCOMMS_BENCH_VICTIM_SEED"

// victimServiceEnv names the service the victim serves.
const victimServiceEnv = "PYCOMMS_BENCH_VICTIM_SERVICE"

func TestMain(m *testing.M) {
	if seed := os.Getenv(victimEnv); seed != "" {
		if err := runVictim(seed, os.Getenv(victimServiceEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "victim:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// timing is the liveness the stars run with: the production settings
// (ping 1s, dead after 5s) for the benchmark, since with 50 hosts on two
// cores a faster ping to every link is itself the load that makes links
// look dead.
type timing struct{ ping, dead time.Duration }

var production = timing{ping: time.Second, dead: 5 * time.Second}

// echo is the endpoint every host serves its service with.
type echo struct{}

func (echo) Request(_ context.Context, m *message.Message) ([]byte, error) { return m.Payload, nil }
func (echo) Post(*message.Message) error                                   { return nil }

// node is one host built from the public API: an identity, a router and a
// mesh on loopback TCP.
type node struct {
	mesh   *mesh.Mesh
	router *router.Router
}

// startNode starts a host named name in dir that dials peers and serves
// service.
func startNode(dir, name, service string, peers []mesh.Peer, tm timing) (*node, error) {
	id, err := identity.LoadOrCreate(filepath.Join(dir, "node.key"), "")
	if err != nil {
		return nil, fmt.Errorf("node %s: identity: %w", name, err)
	}
	logger := slog.New(slog.DiscardHandler)
	n := &node{}
	n.router = router.New(router.Options{Logger: logger, OnChange: func() {
		if n.mesh != nil {
			n.mesh.LocalChanged()
		}
	}})
	m, err := mesh.New(mesh.Options{Identity: id, Name: name, Local: n.router, Logger: logger,
		ListenTCP: "127.0.0.1:0", Peers: peers, PingInterval: tm.ping, DeadAfter: tm.dead})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	n.mesh = m
	n.router.SetRemote(m)
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("node %s: start: %w", name, err)
	}
	if err := n.router.SetRoutes("svc", echo{}, []string{service}, nil); err != nil {
		m.Close(context.Background())
		return nil, fmt.Errorf("node %s: serve %s: %w", name, service, err)
	}
	return n, nil
}

// tcpPeer is the Peer that dials n over TCP.
func (n *node) tcpPeer() mesh.Peer {
	u, _ := n.mesh.Addrs()
	_, addr, _ := strings.Cut(u, "://")
	return mesh.Peer{Transport: mesh.TCP, Addr: addr}
}

// star is a seed, hosts that list only the seed, and one more such host in
// a child process (the victim), each serving one service svcNN.
type star struct {
	nodes    []*node // in this process; nodes[0] is the seed
	victimID string
	victim   *exec.Cmd
	size     int // hosts in all, the victim included
}

// startStar starts a star of size hosts; the victim is host size-1.
func startStar(tb testing.TB, size int, tm timing) *star {
	tb.Helper()
	s := &star{size: size}
	for i := range size - 1 {
		var peers []mesh.Peer
		if i > 0 {
			peers = []mesh.Peer{s.nodes[0].tcpPeer()}
		}
		n, err := startNode(tb.TempDir(), fmt.Sprintf("h%02d", i), service(i), peers, tm)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n.mesh.Close(ctx)
		})
		s.nodes = append(s.nodes, n)
	}
	s.startVictim(tb, tm)
	return s
}

func service(i int) string { return fmt.Sprintf("svc%02d", i) }

// startVictim re-runs this test binary as one more host of the star and
// reads the node id it prints. The child exits when its stdin closes, so
// it does not outlive the benchmark even if the kill is never reached.
func (s *star) startVictim(tb testing.TB, tm timing) {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), victimEnv+"="+s.nodes[0].tcpPeer().Addr,
		victimServiceEnv+"="+service(s.size-1),
		fmt.Sprintf("PYCOMMS_BENCH_VICTIM_TIMING=%s,%s", tm.ping, tm.dead),
		"PYCOMMS_BENCH_VICTIM_DIR="+tb.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the victim host: %v", err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case id := <-line:
		if id == "" {
			tb.Fatal("the victim host exited before printing its id")
		}
		s.victimID, s.victim = id, cmd
	case <-time.After(30 * time.Second):
		tb.Fatal("the victim host printed no id within 30s")
	}
}

// runVictim is the child side of startVictim.
func runVictim(seed, svc string) error {
	var tm timing
	p, d, _ := strings.Cut(os.Getenv("PYCOMMS_BENCH_VICTIM_TIMING"), ",")
	var err error
	if tm.ping, err = time.ParseDuration(p); err != nil {
		return fmt.Errorf("timing: %w", err)
	}
	if tm.dead, err = time.ParseDuration(d); err != nil {
		return fmt.Errorf("timing: %w", err)
	}
	n, err := startNode(os.Getenv("PYCOMMS_BENCH_VICTIM_DIR"), "victim", svc,
		[]mesh.Peer{{Transport: mesh.TCP, Addr: seed}}, tm)
	if err != nil {
		return err
	}
	fmt.Println(n.mesh.ID())
	// Run until the parent kills this process or goes away (stdin closes).
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// kill crashes the victim: SIGKILL, no goodbye.
func (s *star) kill() error {
	if err := s.victim.Process.Kill(); err != nil {
		return fmt.Errorf("kill the victim host: %w", err)
	}
	s.victim.Wait()
	return nil
}

// convergedErr says which in-process host does not yet hold every other
// host (the victim included) as a live member with its service, or nil.
func (s *star) convergedErr() error {
	for i, n := range s.nodes {
		members := n.mesh.Members()
		if len(members) != s.size-1 {
			return fmt.Errorf("h%02d holds %d members, want %d", i, len(members), s.size-1)
		}
		for _, mb := range members {
			if mb.State != "alive" {
				return fmt.Errorf("h%02d holds %s as %s", i, mb.Name, mb.State)
			}
			if len(mb.Services) != 1 {
				return fmt.Errorf("h%02d holds %s with services %v, want one", i, mb.Name, mb.Services)
			}
		}
	}
	return nil
}

// victimDroppedErr names an in-process host that still holds the victim
// as alive, or returns nil when none does.
func (s *star) victimDroppedErr() error {
	for i, n := range s.nodes {
		for _, mb := range n.mesh.Members() {
			if mb.ID == s.victimID && mb.State == "alive" {
				return fmt.Errorf("h%02d still holds the killed host alive", i)
			}
		}
	}
	return nil
}

// controlBytes sums the control frames the in-process hosts have written.
func (s *star) controlBytes() uint64 {
	var b uint64
	for _, n := range s.nodes {
		b += n.mesh.ControlBytesOut()
	}
	return b
}
