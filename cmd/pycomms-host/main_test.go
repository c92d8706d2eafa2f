package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
	"github.com/pycomms/pycomms-host/host/message"
)

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs one command line in-process, exactly as main does.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// node starts a control server over a test backend whose calls behave by
// subject: "echo.*" echoes, "headers.*" replies with the headers as JSON,
// "replyh.*" echoes with the request's headers as the reply's,
// "fail.<status>" fails with that status.
func node(t *testing.T) (*controltest.Backend, string) {
	b := controltest.NewBackend()
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		svc, method, _ := strings.Cut(m.Subject, ".")
		switch svc {
		case "echo":
			return m.Payload, nil
		case "headers":
			return json.Marshal(m.Headers)
		case "replyh":
			if m.ReplyHeaders != nil {
				*m.ReplyHeaders = m.Headers
			}
			return m.Payload, nil
		case "deadline":
			return []byte(time.Until(m.Deadline).Round(time.Hour).String()), nil
		case "fail":
			st, ok := abi.ParseStatus(method)
			if !ok {
				return nil, fmt.Errorf("test: no status %q", method)
			}
			return nil, message.Errorf(st, "%s: failed with %s", m.Subject, st)
		}
		return nil, message.Errorf(abi.StatusNoHandler, "no handler for %s", m.Subject)
	}
	_, addr := controltest.Start(t, b)
	return b, addr
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCall(t *testing.T) {
	_, addr := node(t)
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"data", "", []string{"call", "echo.say", "hello", "--control", addr}, "hello\n"},
		{"raw", "", []string{"call", "echo.say", "hello", "--raw", "--control", addr}, "hello"},
		{"flags first", "", []string{"--control", addr, "call", "--raw", "-t", "2s", "echo.say", "x"}, "x"},
		{"flags between", "", []string{"call", "--control", addr, "echo.say", "--raw", "mid"}, "mid"},
		{"stdin dash", "from stdin\n", []string{"call", "echo.say", "-", "--raw", "--control", addr}, "from stdin\n"},
		{"stdin absent", "piped", []string{"call", "echo.say", "--control", addr}, "piped\n"},
		{"dash data after --", "", []string{"call", "--control", addr, "--raw", "echo.say", "--", "-5"}, "-5"},
		{"empty data", "ignored", []string{"call", "echo.say", "", "--control", addr}, "\n"},
		{"headers", "", []string{"call", "headers.get", "--control", addr, "-H", "Trace-ID=7", "--header", "q=a=b", "-H", "empty="},
			`{"empty":"","q":"a=b","trace-id":"7"}` + "\n"},
		{"timeout", "", []string{"call", "deadline.x", "--timeout", "59m", "--control", addr}, "1h0m0s\n"},
		{"include", "", []string{"call", "replyh.x", "hi", "-i", "-H", "b=2", "-H", "a=x: y", "--control", addr}, "a: x: y\nb: 2\n\nhi\n"},
		{"include raw", "", []string{"call", "--include", "--raw", "replyh.x", "hi", "-H", "a=1", "--control", addr}, "a: 1\n\nhi"},
		{"include none", "", []string{"call", "echo.say", "hi", "-i", "-H", "a=1", "--control", addr}, "\nhi\n"},
		{"reply headers without include", "", []string{"call", "replyh.x", "hi", "-H", "a=1", "--control", addr}, "hi\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			if r.code != 0 || r.stdout != tt.want || r.stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	_, addr := node(t)
	dead := deadAddr(t)
	type tcase struct {
		name   string
		args   []string
		code   int
		stderr string // a prefix of stderr
	}
	tests := []tcase{
		{"no args", []string{"call"}, 1, "pycomms-host: accepts between 1 and 2 arg(s), received 0\nRun 'pycomms-host call --help' for usage.\n"},
		{"too many args", []string{"pub", "a", "b", "c"}, 1, "pycomms-host: accepts between 1 and 2 arg(s)"},
		{"unknown flag", []string{"call", "echo.x", "--bogus"}, 1, "pycomms-host: unknown flag: --bogus"},
		{"unknown command", []string{"frobnicate"}, 1, `pycomms-host: unknown command "frobnicate"`},
		{"bad duration", []string{"call", "echo.x", "--timeout", "soon"}, 1, "pycomms-host: invalid argument"},
		{"zero timeout", []string{"call", "echo.x", "--timeout", "0s", "--control", addr}, 1, "pycomms-host: --timeout 0s: must be more than 0"},
		{"timeout over max", []string{"call", "echo.x", "--timeout", "2h", "--control", addr}, 1, `pycomms-host: timeout "2h0m0s": must be`},
		{"bad header", []string{"call", "echo.x", "-H", "novalue", "--control", addr}, 1, `pycomms-host: -H "novalue": want key=value`},
		{"bad subject", []string{"call", "a..b", "--control", addr}, 1, `pycomms-host: subject "a..b"`},
		{"bad control", []string{"health", "--control", "ftp://x"}, 1, `pycomms-host: control address "ftp://x"`},
		{"bad buffer", []string{"sub", "a", "--buffer", "-1", "--control", addr}, 1, "pycomms-host: --buffer -1"},
		{"no handler", []string{"call", "nobody.home", "--control", addr}, 2, "pycomms-host: no handler for nobody.home\n"},
		{"unreachable", []string{"call", "echo.x", "--control", dead}, 7, "pycomms-host: cannot reach node at " + dead + ": dial tcp"},
		{"unreachable plugins", []string{"plugins", "--control", dead}, 7, "pycomms-host: cannot reach node at "},
		{"unreachable pub", []string{"pub", "t.x", "d", "--control", dead}, 7, "pycomms-host: cannot reach node at "},
	}
	for _, st := range abi.Statuses() {
		if st == abi.StatusOK {
			continue
		}
		subj := "fail." + st.String()
		tests = append(tests, tcase{"status " + st.String(), []string{"call", subj, "--control", addr},
			exitCodeFor(st), fmt.Sprintf("pycomms-host: %s: failed with %s\n", subj, st)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.stderr, tt.stderr) || r.stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit %d, stderr starting %q", r.code, r.stderr, r.stdout, tt.code, tt.stderr)
			}
		})
	}
}

// TestExitCodesPerClass pins one exit code per failure class, independent
// of exitCodeFor, so a change to either shows up here.
func TestExitCodesPerClass(t *testing.T) {
	_, addr := node(t)
	for status, code := range map[string]int{
		"invalid": 1, "too_large": 1, "no_handler": 2, "no_method": 2, "timeout": 3,
		"handler_error": 4, "trap": 5, "busy": 6, "unreachable": 7, "denied": 8, "internal": 8,
	} {
		if r := runCLI(t, "", "call", "fail."+status, "--control", addr); r.code != code {
			t.Errorf("%s: exit %d, want %d", status, r.code, code)
		}
	}
}

func TestInterruptedCall(t *testing.T) {
	_, addr := node(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as if SIGINT arrived
	var out, errb bytes.Buffer
	code := execute(ctx, []string{"call", "echo.x", "y", "--control", addr}, strings.NewReader(""), &out, &errb)
	if code != exitInterrupted || errb.String() != "pycomms-host: interrupted\n" {
		t.Errorf("exit %d (%q), want %d", code, errb.String(), exitInterrupted)
	}
}

func TestSendAndPub(t *testing.T) {
	b, addr := node(t)
	r := runCLI(t, "", "send", "mail.out", "hi", "-H", "prio=high", "--control", addr)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("send: %+v", r)
	}
	sent := b.Sent()
	if len(sent) != 1 || string(sent[0].Payload) != "hi" || sent[0].Headers["prio"] != "high" {
		t.Errorf("node received %+v", sent)
	}
	r = runCLI(t, "piped", "send", "--control", addr, "mail.out")
	if sent := b.Sent(); r.code != 0 || len(sent) != 2 || string(sent[1].Payload) != "piped" {
		t.Errorf("send from stdin: %+v", r)
	}

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"pub", "orders.new", "x", "--control", addr}, ""},
		{[]string{"pub", "orders.new", "x", "--json", "--control", addr}, "{\"receivers\":0}\n"},
	}
	for _, tt := range tests {
		if r := runCLI(t, "", tt.args...); r.code != 0 || r.stdout != tt.want {
			t.Errorf("%v: %+v, want stdout %q", tt.args, r, tt.want)
		}
	}
}

// subRun runs `sub` in the background with stdout on a pipe; it returns
// once the node has the subscription in place.
type subRun struct {
	lines  *bufio.Reader
	pipe   *io.PipeReader
	cancel context.CancelFunc
	done   chan int
	stderr *bytes.Buffer
}

func startSub(t *testing.T, b *controltest.Backend, args ...string) *subRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &subRun{lines: bufio.NewReader(pr), pipe: pr, cancel: cancel, done: make(chan int, 1), stderr: &bytes.Buffer{}}
	go func() {
		s.done <- execute(ctx, args, strings.NewReader(""), pw, s.stderr)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); pr.Close() })
	select {
	case <-b.Subscribed():
	case code := <-s.done:
		t.Fatalf("sub exited %d before subscribing: %s", code, s.stderr)
	}
	return s
}

func (s *subRun) line(t *testing.T) string {
	t.Helper()
	l, err := s.lines.ReadString('\n')
	if err != nil {
		t.Fatalf("reading sub output: %v (so far %q)", err, l)
	}
	return l
}

// stop interrupts sub and returns its exit code.
func (s *subRun) stop() int {
	s.pipe.Close() // nothing more is read
	s.cancel()
	return <-s.done
}

func TestSub(t *testing.T) {
	b, addr := node(t)
	s := startSub(t, b, "sub", "orders.>", "--control", addr)
	ctx := context.Background()
	for _, p := range []string{"first", "second", ""} {
		if _, err := b.Publish(ctx, &message.Message{Subject: "orders.x", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"first\n", "second\n", "\n"} {
		if got := s.line(t); got != want {
			t.Errorf("line %q, want %q", got, want)
		}
	}
	if code := s.stop(); code != 0 {
		t.Errorf("interrupted sub exited %d (%s), want 0", code, s.stderr)
	}
}

func TestSubJSON(t *testing.T) {
	b, addr := node(t)
	// Flags after the positional argument, and the pattern after a flag.
	s := startSub(t, b, "sub", "--json", "sensors.*.temp", "--control", addr, "--buffer", "16")
	ctx := context.Background()
	events := []*message.Message{
		{Subject: "sensors.a.temp", Payload: []byte(`21.5 °C`), Headers: abi.Headers{"unit": "c"}},
		{Subject: "sensors.b.temp", Payload: []byte{0xff, 0x00, 0x01}},
		{Subject: "sensors.c.temp"},
	}
	for _, m := range events {
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{
		`{"subject":"sensors.a.temp","headers":{"unit":"c"},"payload":"21.5 °C"}`,
		`{"subject":"sensors.b.temp","headers":{},"payload_b64":"/wAB"}`,
		`{"subject":"sensors.c.temp","headers":{},"payload":""}`,
	} {
		if got := s.line(t); got != want+"\n" {
			t.Errorf("line %s, want %s", got, want)
		}
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestSubEndedByNode(t *testing.T) {
	b, addr := node(t)
	s := startSub(t, b, "sub", "t.>", "--control", addr)
	b.CloseSubscriptions()
	if code := <-s.done; code != exitUnreachable {
		t.Errorf("exit %d, want %d", code, exitUnreachable)
	}
	if want := "pycomms-host: node at " + addr + " ended the subscription\n"; s.stderr.String() != want {
		t.Errorf("stderr %q, want %q", s.stderr, want)
	}
}

// dropping reports drops, to check that sub warns about them.
type dropping struct{ *controltest.Backend }

type droppingSub struct{ control.Subscription }

func (droppingSub) Dropped() uint64 { return 3 }

func (d dropping) Subscribe(p string, n int) (control.Subscription, error) {
	s, err := d.Backend.Subscribe(p, n)
	return droppingSub{s}, err
}

func TestSubWarnsAboutDrops(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, dropping{b})
	s := startSub(t, b, "sub", "t", "--control", addr)
	if _, err := b.Publish(context.Background(), &message.Message{Subject: "t", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if got := s.line(t); got != "x\n" {
		t.Errorf("line %q", got)
	}
	s.stop()
	if !strings.Contains(s.stderr.String(), "warning: 3 events dropped") {
		t.Errorf("stderr %q lacks the drop warning", s.stderr)
	}
}

func testPlugins() []control.PluginInfo {
	loaded := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return []control.PluginInfo{
		{Name: "inventory", Kind: "handler", Path: "p/inv.wasm", Version: "3f2a9c1d", State: "serving",
			Instances: 4, Calls: 1200, Errors: 3, Services: []string{"inventory"}, LoadedAt: loaded},
		{Name: "json", Kind: "codec", Path: "p/json.wasm", Version: "77aa01bc", State: "serving",
			Instances: 1, LoadedAt: loaded},
	}
}

func TestPlugins(t *testing.T) {
	b, addr := node(t)
	b.PluginList = testPlugins()
	r := runCLI(t, "", "plugins", "--control", addr)
	want := "" +
		"NAME       KIND     VERSION   INSTANCES  CALLS  ERRORS  STATE\n" +
		"inventory  handler  3f2a9c1d  4          1200   3       serving\n" +
		"json       codec    77aa01bc  1          0      0       serving\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, table:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}

	r = runCLI(t, "", "plugins", "--json", "--control", addr)
	var got []control.PluginInfo
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, b.PluginList) {
		t.Errorf("--json: %v\n%s", err, r.stdout)
	}
}

func TestPluginsErrorColumn(t *testing.T) {
	b, addr := node(t)
	b.PluginList = testPlugins()
	b.PluginList[1].Error = "reload refused:\nabi version 2 not accepted"
	r := runCLI(t, "", "plugins", "--control", addr)
	want := "" +
		"NAME       KIND     VERSION   INSTANCES  CALLS  ERRORS  STATE    ERROR\n" +
		"inventory  handler  3f2a9c1d  4          1200   3       serving  -\n" +
		"json       codec    77aa01bc  1          0      0       serving  reload refused: abi version 2 not accepted\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, table:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
}

func TestPluginsEmptyJSON(t *testing.T) {
	_, addr := node(t)
	if r := runCLI(t, "", "plugins", "--json", "--control", addr); r.code != 0 || r.stdout != "[]\n" {
		t.Errorf("%+v", r)
	}
}

func TestHealth(t *testing.T) {
	b, addr := node(t)
	b.HealthInfo = control.Health{Status: "ok", Node: "node-a", Uptime: 3*time.Hour + 1500*time.Millisecond, Plugins: 2, Version: "v1.0.0", Ready: true}
	r := runCLI(t, "", "health", "--control", addr)
	want := "status:  ok\nnode:    node-a\nuptime:  3h0m2s\nplugins: 2\nversion: v1.0.0\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	r = runCLI(t, "", "health", "--json", "--control", addr)
	var h control.Health
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || h != b.HealthInfo {
		t.Errorf("--json: %v %+v\n%s", err, h, r.stdout)
	}
}

// TestHealthNotReady: a node that answers but is not ready makes health
// print the reasons and exit exitNotReady (10), with and without --json.
// It exited 0 whenever the node answered, so a script or a probe could
// not tell a ready node from one that is not.
func TestHealthNotReady(t *testing.T) {
	b, addr := node(t)
	reasons := "plugins failed: inventory; draining: the node is stopping"
	b.HealthInfo = control.Health{Status: "ok", Node: "node-a", Uptime: time.Minute, Plugins: 2, Version: "v1.0.0", NotReady: reasons}
	r := runCLI(t, "", "health", "--control", addr)
	if r.code != exitNotReady || !strings.Contains(r.stdout, "ready:   no, "+reasons+"\n") ||
		!strings.Contains(r.stderr, "pycomms-host: node node-a is not ready: "+reasons) {
		t.Errorf("exit %d (want %d), stdout:\n%s\nstderr:\n%s", r.code, exitNotReady, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "health", "--json", "--control", addr)
	var h control.Health
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || h != b.HealthInfo || r.code != exitNotReady {
		t.Errorf("--json: exit %d (want %d), %v %+v\n%s", r.code, exitNotReady, err, h, r.stdout)
	}
}

func TestControlFromEnv(t *testing.T) {
	_, addr := node(t)
	t.Setenv(envControl, addr)
	if r := runCLI(t, "", "call", "echo.x", "env"); r.code != 0 || r.stdout != "env\n" {
		t.Errorf("with %s=%s: %+v", envControl, addr, r)
	}
	// The flag wins over the environment.
	if r := runCLI(t, "", "call", "echo.x", "env", "--control", deadAddr(t)); r.code != exitUnreachable {
		t.Errorf("--control did not override %s: %+v", envControl, r)
	}
	// The mapping form of control, as the node reads it.
	t.Setenv(envControl, "{listen: '"+addr+"', allow_hosts: [x]}")
	if r := runCLI(t, "", "call", "echo.x", "env"); r.code != 0 || r.stdout != "env\n" {
		t.Errorf("with %s as a mapping: %+v", envControl, r)
	}
	t.Setenv(envControl, deadAddr(t))
	t.Setenv(envControl+"__LISTEN", addr)
	if r := runCLI(t, "", "call", "echo.x", "env"); r.code != 0 || r.stdout != "env\n" {
		t.Errorf("%s__LISTEN does not win over %s: %+v", envControl, envControl, r)
	}
}

func TestVersion(t *testing.T) {
	_, addr := node(t)
	dead := deadAddr(t)
	cliLines := fmt.Sprintf("pycomms-host %s\nABI %d (accepts %d..%d)\nprotocol %d..%d\n",
		buildVersion().BuildString(), abi.Version, abi.MinVersion, abi.MaxVersion, abi.ProtocolMinVersion, abi.ProtocolMaxVersion)

	r := runCLI(t, "", "version", "--control", dead)
	if want := cliLines + "node at " + dead + ": not running (or not reachable)\n"; r.code != 0 || r.stdout != want {
		t.Errorf("no node: exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	r = runCLI(t, "", "version", "--control", addr)
	if want := cliLines + "node at " + addr + ": " + controltest.Version.String() + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("with node: exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}

	var rep versionReport
	r = runCLI(t, "", "version", "--json", "--control", dead)
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || rep.Node != nil ||
		!strings.HasPrefix(rep.NodeError, "cannot reach node at "+dead) || rep.CLI.ABIVersion != abi.Version ||
		rep.CLI.ProtocolMin != abi.ProtocolMinVersion || rep.CLI.ProtocolMax != abi.ProtocolMaxVersion {
		t.Errorf("--json without node: %v %+v", err, r)
	}
	rep = versionReport{}
	r = runCLI(t, "", "version", "--json", "--control", addr)
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Node == nil || *rep.Node != controltest.Version || rep.Control != addr {
		t.Errorf("--json with node: %v %+v", err, r)
	}
}

func TestReload(t *testing.T) {
	b, addr := node(t)
	b.ReloadFunc = func(context.Context) error {
		return message.Errorf(abi.StatusInvalid, "config: plugins[1].path: no such file")
	}
	r := runCLI(t, "", "reload", "--control", addr)
	if r.code != 1 || r.stderr != "pycomms-host: config: plugins[1].path: no such file\n" {
		t.Errorf("%+v", r)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help", "call"}, {"call", "--help"}, {}} {
		r := runCLI(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	r := runCLI(t, "", "--help")
	if !strings.Contains(r.stdout, "7    node unreachable") {
		t.Errorf("root help does not list exit codes:\n%s", r.stdout)
	}
}

func TestCompletion(t *testing.T) {
	b, addr := node(t)
	b.PluginList = testPlugins()
	b.PluginList[0].Topics = []string{"orders.>"}
	r := runCLI(t, "", "__complete", "--control", addr, "call", "inv")
	if lines := strings.Split(r.stdout, "\n"); r.code != 0 || lines[0] != "inventory." {
		t.Errorf("complete call: %+v", r)
	}
	r = runCLI(t, "", "__complete", "--control", addr, "sub", "")
	if lines := strings.Split(r.stdout, "\n"); r.code != 0 || lines[0] != "orders.>" {
		t.Errorf("complete sub: %+v", r)
	}
}

func TestParseHeaders(t *testing.T) {
	tests := []struct {
		in   []string
		want map[string]string
		bad  bool
	}{
		{nil, nil, false},
		{[]string{"A=1", "b=x=y", "c="}, map[string]string{"a": "1", "b": "x=y", "c": ""}, false},
		{[]string{"novalue"}, nil, true},
		{[]string{"=v"}, nil, true},
	}
	for _, tt := range tests {
		got, err := parseHeaders(tt.in)
		var ue usageError
		if tt.bad != (err != nil) || (err != nil && !errors.As(err, &ue)) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseHeaders(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// TestEveryCommandHasShortHelp pins the command set and that each one has
// a one-line description for the command list.
func TestEveryCommandHasShortHelp(t *testing.T) {
	root := newRootCmd(&cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	var names []string
	for _, c := range root.Commands() {
		if c.Short == "" {
			t.Errorf("command %s has no short help", c.Name())
		}
		names = append(names, c.Name())
	}
	sort.Strings(names)
	want := []string{"call", "enqueue", "health", "id", "peers", "plugins", "pub", "queues", "reload", "run", "send", "sub", "validate", "version"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("commands %v, want %v", names, want)
	}
}

// meshNode is node(t) as a mesh node with three peers: node-b up over
// QUIC, node-c relayed through node-b, node-d a configured peer retrying.
func meshNode(t *testing.T) (*controltest.Backend, string) {
	b, addr := node(t)
	b.NodeID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	b.HealthInfo = control.Health{Status: "ok", Node: "node-a", Uptime: time.Hour, Plugins: 1, Version: "v1.0.0", Ready: true}
	b.PeerList = []control.PeerInfo{
		{ID: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Name: "node-b", Addr: "10.0.0.2:7481", Transport: "quic",
			State: "up", Found: "configured", Config: "quic://10.0.0.2:7481", Dialed: true, RTT: 412 * time.Microsecond,
			MsgsIn: 1200, MsgsOut: 1187, Since: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			Services: []string{"inventory"}},
		{ID: "ccccccccccccccccccccccccccccccccc", Name: "node-c", State: "relayed", Found: "relayed", Via: "node-b"},
		{ID: "dddddddddddddddddddddddddddddddd", Name: "node-d", Addr: "10.0.0.9:7481", State: "retrying", Found: "mdns",
			Config: "tcp://10.0.0.9:7481", Dialed: true, RTT: 25 * time.Millisecond, Dropped: 3,
			Error: "dial tcp 10.0.0.9:7481:\nconnection refused"},
	}
	return b, addr
}

func TestPeers(t *testing.T) {
	b, addr := meshNode(t)
	r := runCLI(t, "", "peers", "--control", addr)
	want := "" +
		"NAME    ID            STATE     FOUND       TRANSPORT  ADDR           RTT    IN    OUT   DROPPED  NOTE\n" +
		"node-b  bbbbbbbbbbbb  up        configured  quic       10.0.0.2:7481  0.4ms  1200  1187  0        quic://10.0.0.2:7481\n" +
		"node-c  cccccccccccc  relayed   relayed     -          -              -      0     0     0        via node-b\n" +
		"node-d  dddddddddddd  retrying  mdns        -          10.0.0.9:7481  25ms   0     0     3        tcp://10.0.0.9:7481; dial tcp 10.0.0.9:7481: connection refused\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("exit %d, table:\n%s\nwant:\n%s\nstderr %q", r.code, r.stdout, want, r.stderr)
	}

	r = runCLI(t, "", "peers", "--json", "--control", addr)
	var got []control.PeerInfo
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 || !reflect.DeepEqual(got, b.PeerList) {
		t.Errorf("--json: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stdout, `"rtt_ns": 412000`) {
		t.Errorf("--json lacks rtt_ns:\n%s", r.stdout)
	}
}

func TestPeersEmptyAndErrors(t *testing.T) {
	_, addr := node(t)
	if r := runCLI(t, "", "peers", "--json", "--control", addr); r.code != 0 || r.stdout != "[]\n" {
		t.Errorf("no peers, --json: %+v", r)
	}
	if r := runCLI(t, "", "peers", "--control", addr); r.code != 0 ||
		r.stdout != "NAME  ID  STATE  FOUND  TRANSPORT  ADDR  RTT  IN  OUT  DROPPED  NOTE\n" {
		t.Errorf("no peers: %+v", r)
	}

	_, plain := controltest.Start(t, controltest.NewBackend().NoMesh())
	r := runCLI(t, "", "peers", "--control", plain)
	if r.code != exitNoHandler || r.stderr != "pycomms-host: this node is not part of a mesh\n" || r.stdout != "" {
		t.Errorf("not a mesh: %+v", r)
	}
	if r := runCLI(t, "", "peers", "--control", deadAddr(t)); r.code != exitUnreachable {
		t.Errorf("no node: %+v", r)
	}
	if r := runCLI(t, "", "peers", "extra", "--control", addr); r.code != exitUsage {
		t.Errorf("with an argument: %+v", r)
	}
}

func TestFormatRTT(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                         "-",
		30 * time.Microsecond:     "<0.1ms",
		412 * time.Microsecond:    "0.4ms",
		2345 * time.Microsecond:   "2.3ms",
		25 * time.Millisecond:     "25ms",
		999400 * time.Microsecond: "999ms",
		2540 * time.Millisecond:   "2.5s",
	} {
		if got := formatRTT(d); got != want {
			t.Errorf("formatRTT(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCallAndSendToNode(t *testing.T) {
	b, addr := meshNode(t)
	b.CallNodeFunc = func(_ context.Context, node string, m *message.Message) ([]byte, error) {
		return []byte(node + ":" + string(m.Payload)), nil
	}
	// Two members claim the name twin: the name reaches neither.
	b.PeerList = append(b.PeerList,
		control.PeerInfo{ID: "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", Name: "twin", State: "up", Clash: []string{"ffffffffffffffffffffffffffffffff"}},
		control.PeerInfo{ID: "ffffffffffffffffffffffffffffffff", Name: "twin", State: "up", Clash: []string{"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"}})
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"by name", []string{"call", "inventory.count", "x", "--node", "node-b"}, 0, "node-b:x\n", ""},
		{"by id prefix", []string{"call", "--node", "bbbbbbbb", "inventory.count", "y"}, 0, "bbbbbbbb:y\n", ""},
		{"relayed", []string{"call", "inventory.count", "z", "--node", "node-c", "--raw"}, 0, "node-c:z", ""},
		{"this node", []string{"call", "inventory.count", "s", "--node", "node-a"}, 0, "node-a:s\n", ""},
		{"no node", []string{"call", "echo.say", "plain", "--node", ""}, 0, "plain\n", ""},
		{"unknown node", []string{"call", "inventory.count", "--node", "node-z"}, exitUnreachable, "",
			"pycomms-host: no node \"node-z\" in the mesh"},
		{"node not up", []string{"call", "inventory.count", "--node", "node-d"}, exitUnreachable, "",
			"pycomms-host: no node \"node-d\" in the mesh"},
		{"short prefix", []string{"call", "inventory.count", "--node", "bbbbb"}, exitUnreachable, "", "pycomms-host: no node"},
		{"send unknown node", []string{"send", "mail.out", "--node", "node-z"}, exitUnreachable, "", "pycomms-host: no node"},
		{"claimed name", []string{"call", "inventory.count", "--node", "twin"}, exitUsage, "",
			"pycomms-host: node \"twin\" is ambiguous: it matches the name or id of 2 nodes (eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee, ffffffffffffffffffffffffffffffff)"},
		{"send claimed name", []string{"send", "mail.out", "--node", "twin"}, exitUsage, "", "pycomms-host: node \"twin\" is ambiguous"},
		{"id of a claimed name", []string{"call", "inventory.count", "t", "--node", "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"}, 0, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee:t\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", append(tt.args, "--control", addr)...)
			if r.code != tt.code || r.stdout != tt.stdout || !strings.HasPrefix(r.stderr, tt.stderr) || (tt.stderr == "" && r.stderr != "") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}

	r := runCLI(t, "", "call", "inventory.count", "--control", addr, "--node")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "pycomms-host: flag needs an argument: --node") {
		t.Errorf("--node without a value: %+v", r)
	}

	r = runCLI(t, "", "send", "mail.out", "hi", "--node", "node-b", "-H", "k=v", "--control", addr)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("send --node: %+v", r)
	}
	r = runCLI(t, "", "send", "mail.out", "any", "--control", addr)
	if r.code != 0 {
		t.Fatalf("send: %+v", r)
	}
	sent, to := b.Sent(), b.SentTo()
	if len(sent) != 2 || !reflect.DeepEqual(to, []string{"node-b", ""}) ||
		string(sent[0].Payload) != "hi" || sent[0].Headers["k"] != "v" || string(sent[1].Payload) != "any" {
		t.Errorf("node received %+v to %q", sent, to)
	}
}

func TestNodeFlagOutsideMesh(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b.NoMesh())
	for _, args := range [][]string{
		{"call", "echo.x", "--node", "node-b"},
		{"send", "echo.x", "--node", "node-b"},
	} {
		r := runCLI(t, "", append(args, "--control", addr)...)
		if r.code != exitNoHandler || r.stderr != "pycomms-host: this node is not part of a mesh\n" {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if n := len(b.Sent()); n != 0 {
		t.Errorf("%d refused sends reached the node", n)
	}
	// Without --node, nothing changes.
	if r := runCLI(t, "", "call", "echo.x", "hi", "--control", addr); r.code != 0 || r.stdout != "hi\n" {
		t.Errorf("call without --node: %+v", r)
	}
}

func TestNodeFlagCompletion(t *testing.T) {
	_, addr := meshNode(t)
	r := runCLI(t, "", "__complete", "--control", addr, "call", "echo.x", "--node", "node-")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) < 3 || lines[0] != "node-b" || lines[1] != "node-c" || !strings.HasPrefix(lines[2], ":") {
		t.Errorf("complete --node: %+v", r)
	}
}

func TestHealthOfMeshNode(t *testing.T) {
	_, addr := meshNode(t)
	r := runCLI(t, "", "health", "--control", addr)
	want := "status:  ok\nnode:    node-a\nid:      aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nuptime:  1h0m0s\nplugins: 1\npeers:   1 up\nmesh:    2 other hosts alive\nversion: v1.0.0\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	r = runCLI(t, "", "health", "--json", "--control", addr)
	var h control.Health
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || h.ID != "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" || h.Peers != 1 {
		t.Errorf("--json: %v %+v\n%s", err, h, r.stdout)
	}
}

func TestPeerNote(t *testing.T) {
	tests := []struct {
		p    control.PeerInfo
		want string
	}{
		{control.PeerInfo{}, "-"},
		{control.PeerInfo{State: "relayed", Via: "b"}, "via b"},
		{control.PeerInfo{State: "up", Silent: 300 * time.Millisecond}, "-"},
		{control.PeerInfo{State: "up", Silent: 2340 * time.Millisecond, Config: "tcp://h:1"}, "tcp://h:1; silent 2.3s"},
		{control.PeerInfo{State: "up", Clash: []string{"abc"}}, "name also used by abc"},
		{control.PeerInfo{State: "retrying", Error: "dial\n  refused"}, "dial refused"},
		{control.PeerInfo{State: "member", Hops: 3}, "3 links away"},
		{control.PeerInfo{State: "lost", Since: time.Now().Add(-12 * time.Second)}, "lost 12s ago"},
		{control.PeerInfo{State: "left", Since: time.Now().Add(-2 * time.Second)}, "left 2s ago"},
	}
	for _, tt := range tests {
		if got := peerNote(tt.p); got != tt.want {
			t.Errorf("peerNote(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}
