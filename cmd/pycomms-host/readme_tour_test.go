//go:build linux

package main

// TestReadmeTour runs the "A 5-minute tour" section of the repository's
// README.md as written, so that an edit of the README is what is tested (as
// CoreDNS runs its README examples). It reads the tour's code blocks:
//
//   - A block whose first line is a comment naming a file (`// go.mod`,
//     `// hello/main.go`, `# c.yaml`) is written to that file.
//   - In a `sh` block every line is a command, run by sh. A command ending
//     in `&` runs in the background until a step that says to stop the node
//     (or the end); the test waits until a background `run` answers on its
//     control address and a background `sub` has subscribed, as a person
//     would before typing the next line.
//   - `# → TEXT` after a command is what it prints (stdout and stderr,
//     whitespace runs compared as one space; `…` matches any text), and
//     `(exit N)` its exit status; without it a command must exit 0. A
//     background command's TEXT must appear before the block ends.
//   - A YAML block that names no file (step 6) is only validated: mDNS
//     needs multicast, which this test does not use.
//
// What differs from a person's shell, and why:
//
//   - Ports: every port the README names is moved to a free one with
//     PYCOMMS_* variables (PYCOMMS_CONTROL, PYCOMMS_LISTEN__TCP,
//     PYCOMMS_LISTEN__QUIC, PYCOMMS_PEERS), worked out per command from
//     the config it uses, so the test never meets a node a developer runs.
//   - Step 1 runs in the repository's root (its `go install
//     ./cmd/pycomms-host` needs it), with GOBIN a temporary directory put
//     first on PATH; steps 2 on run in a temporary directory outside the
//     repository, as the README asks. The `replace` of the step-2 go.mod
//     points at this repository, and the repository's go.sum is copied
//     there first: `go mod tidy` then needs no checksum database (this
//     machine has only the module proxy).
//   - XDG_DATA_HOME and XDG_CACHE_HOME are temporary directories, so node
//     keys and compiled modules stay out of the user's home. Nodes log at
//     debug level, which is how the test sees a `sub` subscribe.
//   - A client command whose output does not match yet is run again for a
//     while: a mesh that has just started needs a moment to exchange what
//     each host serves, a moment a person typing always gives it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// Bounds, generous for a loaded two-core machine.
const (
	tourCommandTimeout = 3 * time.Minute  // one foreground command (go install, go build)
	tourStartTimeout   = 2 * time.Minute  // a node answers on its control address (cold compile of echo)
	tourSettleTimeout  = 30 * time.Second // a mesh route appears; a sub subscribes or prints
	tourStopTimeout    = 30 * time.Second // a node stops after SIGTERM
)

// tourStep is one numbered step of the tour: its text and code blocks.
type tourStep struct {
	num    int
	text   string
	blocks []tourBlock
}

type tourBlock struct {
	lang string
	line int // line of the opening fence in README.md
	body string
}

var (
	tourStepRe  = regexp.MustCompile(`(?m)^\*\*(\d+)\. `)
	tourFenceRe = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")
	// tourStopRe is the README's instruction to stop the running node(s)
	// before a step, which the test follows by stopping every background
	// command.
	tourStopRe = regexp.MustCompile(`(?i)\bstop (?:the|step \d+'s) nodes?\b`)
	// tourFileRe is a first line that names the file a block holds.
	tourFileRe = regexp.MustCompile(`^(?://|#) ?([\w./-]+\.(?:go|mod|yaml))\s*(?:$|#|//)`)
	tourExitRe = regexp.MustCompile(`\s*\(exit (\d+)\)\s*$`)
	// tourReplaceRe is the go.mod line that points the SDK's module at a
	// clone of this repository.
	tourReplaceRe = regexp.MustCompile(`(?m)^(replace github\.com/pycomms/pycomms-host => )(\S+)`)
	tourPortRe    = regexp.MustCompile(`:(\d{2,5})\b`)
)

// parseTour returns the numbered steps of README's "A 5-minute tour".
func parseTour(t *testing.T, readme string) []tourStep {
	t.Helper()
	start := strings.Index(readme, "\n## A 5-minute tour\n")
	if start < 0 {
		t.Fatal(`README.md has no "## A 5-minute tour" section`)
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+4]
	}
	lineOf := func(off int) int { return strings.Count(readme[:start+1+off], "\n") + 1 }
	marks := tourStepRe.FindAllStringSubmatchIndex(section, -1)
	var steps []tourStep
	for i, m := range marks {
		end := len(section)
		if i+1 < len(marks) {
			end = marks[i+1][0]
		}
		num, _ := strconv.Atoi(section[m[2]:m[3]])
		st := tourStep{num: num, text: section[m[0]:end]}
		for _, f := range tourFenceRe.FindAllStringSubmatchIndex(st.text, -1) {
			st.blocks = append(st.blocks, tourBlock{
				lang: st.text[f[2]:f[3]],
				line: lineOf(m[0] + f[0]),
				body: st.text[f[4]:f[5]],
			})
		}
		steps = append(steps, st)
	}
	return steps
}

// tourCommand is one command of a sh block.
type tourCommand struct {
	line       int    // in README.md
	text       string // as sh runs it
	background bool
	want       string // "" for no output check
	checkOut   bool
	exit       int
}

// parseCommands splits a sh block into commands. Several background
// commands on one line ("a & b &") are split.
func parseCommands(b tourBlock) []tourCommand {
	var out []tourCommand
	for i, raw := range strings.Split(strings.TrimRight(b.body, "\n"), "\n") {
		code, comment := splitComment(raw)
		code = strings.TrimSpace(code)
		if code == "" {
			continue
		}
		c := tourCommand{line: b.line + 1 + i}
		if arrow := strings.Index(comment, "→"); arrow >= 0 {
			c.checkOut = true
			c.want = strings.TrimSpace(comment[arrow+len("→"):])
		}
		if m := tourExitRe.FindStringSubmatch(comment); m != nil {
			c.exit, _ = strconv.Atoi(m[1])
			c.want = strings.TrimSpace(tourExitRe.ReplaceAllString(c.want, ""))
		}
		parts := strings.Split(code, " & ")
		for j, p := range parts {
			cc := c
			cc.text = strings.TrimSpace(p)
			cc.background = j < len(parts)-1
			if strings.HasSuffix(cc.text, "&") && !strings.HasSuffix(cc.text, "&&") {
				cc.text = strings.TrimSpace(strings.TrimSuffix(cc.text, "&"))
				cc.background = true
			}
			if j < len(parts)-1 { // only the line's last command carries the comment
				cc.checkOut, cc.want, cc.exit = false, "", 0
			}
			out = append(out, cc)
		}
	}
	return out
}

// splitComment cuts a shell line at its first " #" outside quotes.
func splitComment(line string) (code, comment string) {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i+1:]
		}
	}
	return line, ""
}

// outputMatches compares a command's output with the README's TEXT: runs of
// whitespace are one space, and "…" matches any text.
func outputMatches(got, want string) bool {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	parts := strings.Split(norm(want), "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(strings.TrimSpace(p))
	}
	re, err := regexp.Compile(`^` + strings.Join(parts, `.*?`) + `$`)
	if err != nil {
		return false
	}
	return re.MatchString(norm(got))
}

// tourProc is a background command.
type tourProc struct {
	cmd     tourCommand
	proc    *exec.Cmd
	out     *hosttest.SyncBuffer
	exited  chan struct{}
	control string // for `run`: the control address it listens on
}

// tour is the state of one run of the tour.
type tour struct {
	t       *testing.T
	repo    string   // repository root
	work    string   // the directory outside the repository
	env     []string // base environment of every command
	ports   map[string]string
	running []*tourProc
	ran     int // commands run
}

// port returns the free port that stands for the README's port p.
func (tr *tour) port(p string) string {
	if q, ok := tr.ports[p]; ok {
		return q
	}
	q := strconv.Itoa(freePort(tr.t))
	tr.ports[p] = q
	return q
}

// move rewrites the ports in an address or URL to their free stand-ins.
func (tr *tour) move(addr string) string {
	return tourPortRe.ReplaceAllStringFunc(addr, func(m string) string { return ":" + tr.port(m[1:]) })
}

// nodeAddrs is what the test needs of a config: where it listens, whom it
// dials.
type nodeAddrs struct {
	control, tcp, quic string
	peers              []string
}

// readAddrs reads the addresses of the config a `run` in dir uses: -c
// FILE, else ./pycomms.yaml, else the built-in defaults.
func (tr *tour) readAddrs(dir string, args []string) nodeAddrs {
	t := tr.t
	a := nodeAddrs{control: control.DefaultAddr, tcp: "127.0.0.1:7400", quic: "127.0.0.1:7400"}
	path := ""
	for i, arg := range args {
		if (arg == "-c" || arg == "--config") && i+1 < len(args) {
			path = args[i+1]
		} else if v, ok := strings.CutPrefix(arg, "--config="); ok {
			path = v
		}
	}
	if path == "" {
		if _, err := os.Stat(filepath.Join(dir, "pycomms.yaml")); err != nil {
			return a
		}
		path = "pycomms.yaml"
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the config the command uses: %v", err)
	}
	var doc struct {
		Control any `yaml:"control"`
		Listen  struct {
			TCP  *string `yaml:"tcp"`
			QUIC *string `yaml:"quic"`
		} `yaml:"listen"`
		Peers []string `yaml:"peers"`
	}
	if err := yaml.Unmarshal(text, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	switch c := doc.Control.(type) {
	case string:
		a.control = c
	case map[string]any: // control: {listen: ADDR, ...}
		if l, ok := c["listen"].(string); ok {
			a.control = l
		}
	}
	if doc.Listen.TCP != nil {
		a.tcp = *doc.Listen.TCP
	}
	if doc.Listen.QUIC != nil {
		a.quic = *doc.Listen.QUIC
	}
	a.peers = doc.Peers
	return a
}

// commandEnv is the environment of one command: the base, and for
// pycomms-host the moved ports.
func (tr *tour) commandEnv(dir, text string) (env []string, controlAddr string) {
	env = slices.Clone(tr.env)
	fields := strings.Fields(text)
	// pycomms-host, or `go run ./cmd/pycomms-host`: ports are moved either way.
	i := slices.IndexFunc(fields, func(f string) bool { return filepath.Base(f) == "pycomms-host" })
	if i < 0 || i+1 >= len(fields) {
		return env, ""
	}
	args := fields[i+1:]
	switch args[0] {
	case "validate", "id", "version":
		return env, ""
	case "run":
		a := tr.readAddrs(dir, args)
		controlAddr = tr.move(a.control)
		env = append(env,
			"PYCOMMS_CONTROL="+controlAddr,
			"PYCOMMS_LISTEN__TCP="+tr.move(a.tcp),
			"PYCOMMS_LISTEN__QUIC="+tr.move(a.quic),
			"PYCOMMS_LOG__LEVEL=debug")
		if len(a.peers) > 0 {
			moved := make([]string, len(a.peers))
			for j, p := range a.peers {
				moved[j] = tr.move(p)
			}
			env = append(env, "PYCOMMS_PEERS="+strings.Join(moved, ","))
		}
		return env, controlAddr
	}
	// A client: the README's clients talk to the default address.
	return append(env, "PYCOMMS_CONTROL="+tr.move(control.DefaultAddr)), ""
}

func (tr *tour) shell(dir, text string, env []string) *exec.Cmd {
	cmd := exec.Command("sh", "-c", text)
	cmd.Dir = dir
	cmd.Env = env
	// Its own process group, so that a stop reaches whatever sh started;
	// and killed with the test process if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// foreground runs a command to its end, again while it does not match
// when it is a client of a node (see the file comment).
func (tr *tour) foreground(dir string, c tourCommand) {
	t := tr.t
	env, _ := tr.commandEnv(dir, c.text)
	client := strings.HasPrefix(c.text, "pycomms-host ") && !slices.Contains([]string{"run", "validate", "id"}, strings.Fields(c.text)[1])
	deadline := time.Now().Add(tourSettleTimeout)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), tourCommandTimeout)
		cmd := tr.shell(dir, c.text, env)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Start()
		if err == nil {
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-ctx.Done():
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
				err = fmt.Errorf("still running after %v", tourCommandTimeout)
			}
		}
		cancel()
		code := -1
		var ee *exec.ExitError
		if err == nil || errors.As(err, &ee) {
			code = cmd.ProcessState.ExitCode()
		}
		ok := code == c.exit && (!c.checkOut || outputMatches(out.String(), c.want))
		if ok {
			tr.ran++
			t.Logf("README.md:%d: ok after %d attempt(s): %s", c.line, attempt, c.text)
			return
		}
		if !client || time.Now().After(deadline) {
			want := fmt.Sprintf("exit %d", c.exit)
			if c.checkOut {
				want = fmt.Sprintf("%q, exit %d", c.want, c.exit)
			}
			t.Fatalf("README.md:%d: %s\ngot exit %d (%v) after %d attempt(s), output:\n%s\nwant %s%s",
				c.line, c.text, code, err, attempt, out.String(), want, tr.logs())
		}
		time.Sleep(200 * time.Millisecond) // a bounded retry loop: deadline above
	}
}

// background starts a command and waits until it is ready for the next
// line: a node answers on its control address, a sub has subscribed.
func (tr *tour) background(dir string, c tourCommand) {
	t := tr.t
	env, controlAddr := tr.commandEnv(dir, c.text)
	fields := strings.Fields(c.text)
	isSub := len(fields) > 1 && fields[0] == "pycomms-host" && fields[1] == "sub"
	subsBefore := tr.subscriptions()
	if controlAddr != "" && tourHealth(controlAddr) == nil {
		// The new node could not listen there, and the health probe
		// below would be answered by the one running already.
		t.Fatalf("README.md:%d: %s: a node of an earlier step still answers at its control address: the README must say to stop it first%s",
			c.line, c.text, tr.logs())
	}
	p := &tourProc{cmd: c, out: &hosttest.SyncBuffer{}, exited: make(chan struct{}), control: controlAddr}
	text := c.text
	if !strings.ContainsAny(text, ";|&") {
		// dash forks for `sh -c CMD`: exec makes the node sh's own
		// process, so Pdeathsig stops it if this test dies unannounced.
		text = "exec " + text
	}
	p.proc = tr.shell(dir, text, env)
	p.proc.Stdout, p.proc.Stderr = p.out, p.out
	if err := p.proc.Start(); err != nil {
		t.Fatalf("README.md:%d: %s: %v", c.line, c.text, err)
	}
	go func() { p.proc.Wait(); close(p.exited) }()
	tr.running = append(tr.running, p)
	tr.ran++

	ready := func() error { return nil }
	timeout := tourSettleTimeout
	switch {
	case controlAddr != "":
		timeout = tourStartTimeout
		ready = func() error { return tourHealth(controlAddr) }
	case isSub:
		ready = func() error {
			if tr.subscriptions() <= subsBefore {
				return errors.New("no node has logged the subscription yet")
			}
			return nil
		}
	}
	err := hosttest.Poll(timeout, 50*time.Millisecond, func() error {
		select {
		case <-p.exited:
			t.Fatalf("README.md:%d: %s: exited (%v) before it was ready; output:\n%s",
				c.line, c.text, p.proc.ProcessState, p.out.String())
		default:
		}
		return ready()
	})
	if err != nil {
		t.Fatalf("README.md:%d: %s: not ready: %v; output:\n%s", c.line, c.text, err, p.out.String())
	}
	t.Logf("README.md:%d: running: %s", c.line, c.text)
}

// tourHealth asks a node's control API for its health.
func tourHealth(addr string) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/v1/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// subscriptions counts the subscriptions the running nodes have logged.
func (tr *tour) subscriptions() int {
	n := 0
	for _, p := range tr.running {
		if p.control != "" {
			n += strings.Count(p.out.String(), "subscription started")
		}
	}
	return n
}

// checkBackground waits until each background command of a block has
// printed what the README says it prints.
func (tr *tour) checkBackground(procs []*tourProc) {
	for _, p := range procs {
		if !p.cmd.checkOut {
			continue
		}
		err := hosttest.Poll(tourSettleTimeout, 50*time.Millisecond, func() error {
			if !outputMatches(p.out.String(), p.cmd.want) {
				return errors.New("no match")
			}
			return nil
		})
		if err != nil {
			tr.t.Fatalf("README.md:%d: %s: its output (below) did not match %q within %v%s",
				p.cmd.line, p.cmd.text, p.cmd.want, tourSettleTimeout, tr.logs())
		}
	}
}

// stopAll stops every background command as Ctrl-C would, and checks
// that each node stops.
func (tr *tour) stopAll() {
	for _, p := range tr.running {
		syscall.Kill(-p.proc.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range tr.running {
		select {
		case <-p.exited:
		case <-time.After(tourStopTimeout):
			syscall.Kill(-p.proc.Process.Pid, syscall.SIGKILL)
			<-p.exited
			tr.t.Errorf("README.md:%d: %s did not stop within %v of SIGTERM", p.cmd.line, p.cmd.text, tourStopTimeout)
		}
	}
	tr.running = nil
}

// logs is the output of the running background commands, for failures.
func (tr *tour) logs() string {
	var b strings.Builder
	for _, p := range tr.running {
		var keep []string
		for _, l := range strings.Split(p.out.String(), "\n") {
			if !strings.Contains(l, `msg="control request"`) { // one per command the test ran
				keep = append(keep, l)
			}
		}
		out := strings.Join(keep, "\n")
		if len(out) > 4000 {
			out = "…" + out[len(out)-4000:]
		}
		fmt.Fprintf(&b, "\n--- README.md:%d %s (ports %v):\n%s", p.cmd.line, p.cmd.text, tr.ports, out)
	}
	return b.String()
}

// writeFile writes a block that names its file, and reports whether it did.
func (tr *tour) writeFile(dir string, b tourBlock) bool {
	first, _, _ := strings.Cut(b.body, "\n")
	m := tourFileRe.FindStringSubmatch(strings.TrimSpace(first))
	if m == nil {
		return false
	}
	name, body := m[1], b.body
	if name == "go.mod" {
		if !tourReplaceRe.MatchString(body) {
			tr.t.Fatalf("README.md:%d: go.mod has no `replace github.com/pycomms/pycomms-host => ...`: the module is not published", b.line)
		}
		body = tourReplaceRe.ReplaceAllString(body, "${1}"+tr.repo)
		sum, err := os.ReadFile(filepath.Join(tr.repo, "go.sum"))
		if err != nil {
			tr.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
			tr.t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		tr.t.Fatal(err)
	}
	return true
}

func TestReadmeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a Go plugin and starts five nodes (-short)")
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := parseTour(t, string(readme))
	var nums []int
	for _, s := range steps {
		nums = append(nums, s.num)
	}
	if !slices.Equal(nums, []int{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("the tour's steps are %v, want 1 to 6", nums)
	}

	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	tr := &tour{t: t, repo: repo, work: filepath.Join(tmp, "hello"), ports: map[string]string{}}
	for _, d := range []string{bin, tr.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PYCOMMS_") || strings.HasPrefix(name, "GO_TEST_PYCOMMS_HOST_") ||
			slices.Contains([]string{"PATH", "GOBIN", "GOCACHE", "XDG_DATA_HOME", "XDG_CACHE_HOME"}, name) {
			continue
		}
		tr.env = append(tr.env, kv)
	}
	tr.env = append(tr.env,
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOBIN="+bin,
		"GOCACHE="+strings.TrimSpace(string(gocache)), // XDG_CACHE_HOME would move it
		"XDG_DATA_HOME="+filepath.Join(tmp, "data"),
		"XDG_CACHE_HOME="+filepath.Join(tmp, "cache"))
	t.Cleanup(tr.stopAll)

	for _, st := range steps {
		if tourStopRe.MatchString(st.text) {
			tr.stopAll()
		}
		dir := tr.work
		if st.num == 1 {
			dir = repo
		}
		for _, b := range st.blocks {
			switch {
			case tr.writeFile(dir, b):
			case b.lang == "yaml":
				// A config shown for reading (step 6: mDNS, not run here):
				// it must at least be valid.
				path := filepath.Join(tmp, fmt.Sprintf("step%d-line%d.yaml", st.num, b.line))
				if err := os.WriteFile(path, []byte(b.body), 0o644); err != nil {
					t.Fatal(err)
				}
				tr.foreground(dir, tourCommand{line: b.line, text: "pycomms-host validate -c " + path})
			case b.lang == "sh":
				var bg []*tourProc
				for _, c := range parseCommands(b) {
					if c.background {
						tr.background(dir, c)
						bg = append(bg, tr.running[len(tr.running)-1])
					} else {
						tr.foreground(dir, c)
					}
				}
				tr.checkBackground(bg)
			}
		}
	}
	if tr.ran < 15 {
		t.Errorf("ran only %d commands of the tour: is the README parsed right?", tr.ran)
	}
}

// freePort returns a port number free on 127.0.0.1 for both TCP and UDP,
// so that a host restarted on it is found again on either transport.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return 0
}
