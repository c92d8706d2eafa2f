package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

const redisPassword = "redis-pw-6f1c9e0d7a"

// redisHostA routes echo.* and the events on orders.> and metrics.> out
// through Redis, and takes orders.> back in (its own come back: dropped).
const redisHostA = `
listen: {tcp: "", quic: ""}
plugins:
  - name: broker
    path: builtin:redis
    kind: transport
    instances: 1
    dial: [tcp://%s]
    services: [echo]
    topics: [orders.>, metrics.>]
    grants: [log, call, send, publish]
    config: {password: %s, subscribe: [orders.>]}
    secrets: [password]
`

// redisHostB serves echo and takes in requests and sends for echo and
// events on orders.> and metrics.* from Redis.
const redisHostB = `
listen: {tcp: "", quic: ""}
plugins:
  - name: echo
    path: builtin:echo
    services: [echo]
    grants: [log, publish, call, send]
  - name: broker
    path: builtin:redis
    kind: transport
    instances: 1
    dial: [tcp://%s]
    grants: [log, call, send, publish]
    config: {password: %s, serve: [echo], subscribe: ["orders.>", "metrics.*"]}
    secrets: [password]
`

// collect subscribes c to pattern and returns what arrives.
type collected struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func (cl *collected) subjects() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []string
	for _, m := range cl.msgs {
		out = append(out, m.Subject+"="+string(m.Payload))
	}
	return out
}

func collect(t *testing.T, c *control.Client, pattern string) *collected {
	t.Helper()
	cl := &collected{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Subscribe(ctx, pattern, func(m *message.Message) error {
		cl.mu.Lock()
		cl.msgs = append(cl.msgs, m)
		cl.mu.Unlock()
		return nil
	})
	return cl
}

// callUntil calls subject until it answers (the transport's session to
// Redis may still be coming up), and returns the reply.
func callUntil(t *testing.T, c *control.Client, subject, payload string) string {
	t.Helper()
	var reply []byte
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		var err error
		reply, err = c.Call(context.Background(), subject, []byte(payload), nil, 2*time.Second)
		return err
	})
	return string(reply)
}

// TestRedisTwoHosts: two hosts with no mesh listener and no peers, both
// dialling one redis-server with a password, exchange request/reply, a
// one-way send and events with "*" and ">" patterns; a host drops its own
// events echoed by Redis; the password is in no log and not in
// /v1/plugins.
func TestRedisTwoHosts(t *testing.T) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword})
	na, ca, logsA := startNode(t, t.TempDir(), fmt.Sprintf(redisHostA, r.Addr, redisPassword))
	nb, cb, logsB := startNode(t, t.TempDir(), fmt.Sprintf(redisHostB, r.Addr, redisPassword))

	// Request/reply: A has no echo; B serves it through Redis.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host a log:\n%s\nhost b log:\n%s", logsA, logsB)
		}
	})
	if got := callUntil(t, ca, "echo.upper", "through redis"); got != "THROUGH REDIS" {
		t.Fatalf("echo.upper through Redis: %q", got)
	}
	// A handler error comes back with its status.
	_, err := ca.Call(context.Background(), "echo.fail", nil, nil, eventuallyTimeout)
	if err == nil || !strings.Contains(err.Error(), "failed on purpose") {
		t.Errorf("echo.fail through Redis: %v", err)
	}

	gotB := collect(t, cb, ">")
	gotA := collect(t, ca, "orders.>")
	// B's subscription to everything is in place once an event published
	// on B reaches it.
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if _, err := cb.Publish(context.Background(), "local.probe", nil, nil); err != nil {
			return err
		}
		if len(gotB.subjects()) == 0 {
			return fmt.Errorf("host b: no event seen by its subscriber yet")
		}
		return nil
	})
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if _, err := ca.Publish(context.Background(), "orders.probe", nil, nil); err != nil {
			return err
		}
		if len(gotA.subjects()) == 0 {
			return fmt.Errorf("host a: no event seen by its subscriber yet")
		}
		return nil
	})

	// A one-way send: B's echo publishes news.sent=hi on B when it gets it.
	if err := ca.Send(context.Background(), "echo.publish", []byte("news.sent hi"), nil); err != nil {
		t.Fatalf("send through Redis: %v", err)
	}
	// Events: metrics.cpu.core0 matches B's Redis glob but not its
	// pattern metrics.*: the plugin filters it, so it never shows before
	// metrics.cpu, published after it on the same connection.
	ctx := context.Background()
	for _, topic := range []string{"orders.eu.created", "metrics.cpu.core0", "metrics.cpu", "unrouted.x"} {
		if _, err := ca.Publish(ctx, topic, []byte("1"), nil); err != nil {
			t.Fatalf("publish %s on host a: %v", topic, err)
		}
	}
	// (news.sent comes from host b's echo, in its own time: sorted.)
	want := []string{"metrics.cpu=1", "news.sent=hi", "orders.eu.created=1"}
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		var got []string
		for _, s := range gotB.subjects() {
			if !strings.HasPrefix(s, "local.probe") && !strings.HasPrefix(s, "orders.probe") {
				got = append(got, s)
			}
		}
		slices.Sort(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("host b got %v, want %v", got, want)
		}
		return nil
	})

	// Host a saw its own orders.eu.created once (locally); the copy Redis
	// echoed back was dropped and counted.
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		info := transportNamed(t, ca, "broker")
		var own int
		for _, s := range gotA.subjects() {
			if s == "orders.eu.created=1" {
				own++
			}
		}
		if own != 1 || info.Transport.OwnDropped < 2 {
			return fmt.Errorf("host a: orders.eu.created seen %d times, own_dropped %d (want 1, >= 2)", own, info.Transport.OwnDropped)
		}
		return nil
	})

	// The password: redacted in /v1/plugins, in no log.
	for _, h := range []struct {
		name string
		n    *Node
		c    *control.Client
		logs *hosttest.SyncBuffer
	}{{"a", na, ca, logsA}, {"b", nb, cb, logsB}} {
		info := transportNamed(t, h.c, "broker")
		if fmt.Sprint(info.Config["password"]) != "[redacted]" {
			t.Errorf("host %s: /v1/plugins shows config %v", h.name, info.Config)
		}
		raw := rawPlugins(t, h.n)
		if strings.Contains(raw, redisPassword) {
			t.Errorf("host %s: the password is in /v1/plugins", h.name)
		}
		if strings.Contains(h.logs.String(), redisPassword) {
			t.Errorf("host %s: the password is in the log", h.name)
		}
	}
}

// rawPlugins is the /v1/plugins body as the control API serves it.
func rawPlugins(t *testing.T, n *Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.ControlAddr() + "/v1/plugins")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/plugins: %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestRedisBrokerRestart: redis-server killed while a call waits on it:
// the call fails with unreachable at once, not at its deadline; once the
// server is back on the same port the host has reconnected, calls flow
// again and the subscriptions are restored (events reach host b).
func TestRedisBrokerRestart(t *testing.T) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword})
	_, ca, logsA := startNode(t, t.TempDir(), fmt.Sprintf(redisHostA, r.Addr, redisPassword))
	_, cb, logsB := startNode(t, t.TempDir(), fmt.Sprintf(redisHostB, r.Addr, redisPassword))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host a log:\n%s\nhost b log:\n%s", logsA, logsB)
		}
	})
	if got := callUntil(t, ca, "echo.upper", "before"); got != "BEFORE" {
		t.Fatalf("before the restart: %q", got)
	}

	// A call that waits: echo.sleep holds it on host b for 6s.
	const deadline = 30 * time.Second
	type outcome struct {
		err     error
		elapsed time.Duration
	}
	done := make(chan outcome, 1)
	go func() {
		t0 := time.Now()
		_, err := ca.Call(context.Background(), "echo.sleep", []byte("6s"), nil, deadline)
		done <- outcome{err, time.Since(t0)}
	}()
	// It is in flight once host b's echo has it.
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		ps, err := cb.Plugins(context.Background())
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Name == "echo" && p.Calls >= 2 {
				return nil
			}
		}
		return fmt.Errorf("host b: echo.sleep not started yet")
	})
	r.Kill()
	select {
	case o := <-done:
		if message.StatusOf(o.err) != abi.StatusUnreachable {
			t.Fatalf("the call in flight failed with %v (status %s), want unreachable", o.err, message.StatusOf(o.err))
		}
		t.Logf("the call in flight failed after %v: %v", o.elapsed.Round(time.Millisecond), o.err)
	case <-time.After(5 * time.Second):
		t.Fatalf("the call in flight did not fail within 5s of the broker's death (its deadline is %v)", deadline)
	}
	// While the broker is down, calls fail at once too.
	if _, err := ca.Call(context.Background(), "echo.upper", nil, nil, deadline); message.StatusOf(err) != abi.StatusUnreachable {
		t.Errorf("a call while the broker is down: %v, want unreachable", err)
	}

	r.Restart()
	if got := callUntil(t, ca, "echo.upper", "after"); got != "AFTER" {
		t.Fatalf("after the restart: %q", got)
	}
	got := collect(t, cb, "orders.>")
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if _, err := ca.Publish(context.Background(), "orders.again", []byte("x"), nil); err != nil {
			return err
		}
		if len(got.subjects()) == 0 {
			return fmt.Errorf("host b: no orders event through the restarted broker yet")
		}
		return nil
	})
	for name, c := range map[string]*control.Client{"a": ca, "b": cb} {
		if ti := transportNamed(t, c, "broker").Transport; ti.Reconnects == 0 {
			t.Errorf("host %s: no reconnect counted: %+v", name, ti)
		}
	}
}

// TestRedisMalformedBroker: a "broker" that answers with bytes that are
// not RESP2 gets its connection closed (counted as a plugin error, and
// redialled with backoff), while the host's other transport to a real
// redis-server keeps serving.
func TestRedisMalformedBroker(t *testing.T) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var closedByHost sync.WaitGroup
	closedByHost.Add(1)
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(eventuallyTimeout))
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
				if _, err := io.Copy(io.Discard, c); err == nil {
					once.Do(closedByHost.Done) // EOF: the host closed it
				}
			}()
		}
	}()
	cfg := fmt.Sprintf(redisHostA, r.Addr, redisPassword) + fmt.Sprintf(`
  - name: fake
    path: builtin:redis
    kind: transport
    instances: 1
    dial: [tcp://%s]
    services: [fake]
    grants: [log, call, send, publish]
`, ln.Addr())
	_, ca, logsA := startNode(t, t.TempDir(), cfg)
	_, cb, _ := startNode(t, t.TempDir(), fmt.Sprintf(redisHostB, r.Addr, redisPassword))
	_ = cb
	closedByHost.Wait()
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		ti := transportNamed(t, ca, "fake").Transport
		if ti.Closes["plugin error"] < 2 || ti.Dialed < 2 {
			return fmt.Errorf("host a: fake broker: closes %v, dialled %d (want >= 2 plugin errors and redials)", ti.Closes, ti.Dialed)
		}
		return nil
	})
	if !strings.Contains(logsA.String(), "malformed RESP") {
		t.Error("host a: no log line names the malformed reply")
	}
	if got := callUntil(t, ca, "echo.upper", "still"); got != "STILL" {
		t.Fatalf("the real broker's transport: %q", got)
	}
	if _, err := ca.Call(context.Background(), "fake.x", nil, nil, eventuallyTimeout); message.StatusOf(err) != abi.StatusUnreachable {
		t.Errorf("a call through the fake broker: %v, want unreachable", err)
	}
}

// TestRedisTLS: both hosts reach a TLS-only redis-server through tls://
// dial entries, verifying it with the CA of the plugin's ca key.
func TestRedisTLS(t *testing.T) {
	cert, key, ca := hosttest.TLSFiles(t, t.TempDir())
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword, TLSCert: cert, TLSKey: key, TLSCA: ca})
	tlsCfg := func(cfg string) string {
		cfg = strings.Replace(cfg, "dial: [tcp://", "dial: [tls://", 1)
		return strings.Replace(cfg, "    dial:", "    ca: "+ca+"\n    dial:", 1)
	}
	_, ca1, _ := startNode(t, t.TempDir(), tlsCfg(fmt.Sprintf(redisHostA, r.Addr, redisPassword)))
	startNode(t, t.TempDir(), tlsCfg(fmt.Sprintf(redisHostB, r.Addr, redisPassword)))
	if got := callUntil(t, ca1, "echo.upper", "over tls"); got != "OVER TLS" {
		t.Fatalf("echo.upper through Redis over TLS: %q", got)
	}
	ti := transportNamed(t, ca1, "broker").Transport
	if len(ti.Dial) != 1 || !strings.HasPrefix(ti.Dial[0], "tls://") {
		t.Errorf("dial entries %v", ti.Dial)
	}
	// Without the CA the server is not trusted: no connection, counted.
	noCA := strings.Replace(fmt.Sprintf(redisHostA, r.Addr, redisPassword), "dial: [tcp://", "dial: [tls://", 1)
	_, c3, _ := startNode(t, t.TempDir(), noCA)
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if ti := transportNamed(t, c3, "broker").Transport; ti.DialErrors == 0 || ti.Dialed != 0 {
			return fmt.Errorf("host without the CA: dialled %d, dial errors %d", ti.Dialed, ti.DialErrors)
		}
		return nil
	})
}

// TestRedisBrokerStalled: a broker that stops answering (SIGSTOP) is
// noticed by the plugin's keepalive: the call waiting on it fails with
// unreachable within a few keepalive periods, not at its deadline; once
// the broker resumes (SIGCONT) calls flow again.
func TestRedisBrokerStalled(t *testing.T) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword})
	fast := func(cfg string) string {
		return strings.Replace(cfg, "config: {password: "+redisPassword, "config: {keepalive_ms: 300, password: "+redisPassword, 1)
	}
	_, ca, logsA := startNode(t, t.TempDir(), fast(fmt.Sprintf(redisHostA, r.Addr, redisPassword)))
	startNode(t, t.TempDir(), fast(fmt.Sprintf(redisHostB, r.Addr, redisPassword)))
	if got := callUntil(t, ca, "echo.upper", "before"); got != "BEFORE" {
		t.Fatalf("before the stall: %q", got)
	}
	r.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { r.Signal(syscall.SIGCONT) })
	t0 := time.Now()
	const deadline = 30 * time.Second
	_, err := ca.Call(context.Background(), "echo.upper", []byte("stalled"), nil, deadline)
	elapsed := time.Since(t0)
	if message.StatusOf(err) != abi.StatusUnreachable {
		t.Fatalf("a call to the stalled broker: %v (status %s), want unreachable", err, message.StatusOf(err))
	}
	// Noticed within two keepalive periods (600ms); 3x margin and more.
	if elapsed > 5*time.Second {
		t.Errorf("the stall was noticed after %v (keepalive 300ms, deadline %v)", elapsed, deadline)
	}
	if !strings.Contains(logsA.String(), "did not answer PING") {
		t.Error("host a: no log line names the unanswered PING")
	}
	t.Logf("the call failed after %v: %v", elapsed.Round(time.Millisecond), err)
	r.Signal(syscall.SIGCONT)
	if got := callUntil(t, ca, "echo.upper", "after"); got != "AFTER" {
		t.Fatalf("after the stall: %q", got)
	}
}

// TestRedisWrongPassword: a refused AUTH is logged without the password
// and leaves the transport unreachable, the host serving.
func TestRedisWrongPassword(t *testing.T) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword})
	const wrong = "not-the-password-93a1"
	_, ca, logsA := startNode(t, t.TempDir(), fmt.Sprintf(redisHostA, r.Addr, wrong))
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if !strings.Contains(logsA.String(), "refused") {
			return fmt.Errorf("host a: no log line about the refused AUTH yet")
		}
		return nil
	})
	if _, err := ca.Call(context.Background(), "echo.upper", nil, nil, eventuallyTimeout); message.StatusOf(err) != abi.StatusUnreachable {
		t.Errorf("a call with AUTH refused: %v, want unreachable", err)
	}
	if strings.Contains(logsA.String(), wrong) {
		t.Error("host a: the password is in the log")
	}
}
