package node

import (
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// The mqtt transport (plugins/mqtt, C) against a real mosquitto started on
// loopback by each test (hosttest.StartMosquitto; skipped without it
// unless CI=true). The bundled echo subscribes to greetings.> and
// re-publishes each event upper-cased on echo.events: a device's
// mosquitto_pub on greetings/... comes back to a mosquitto_sub on
// echo/events only by going through the host both ways.

const mqttNodeConfig = `
plugins:
  - name: echo
    path: builtin:echo
    services: [echo]
    topics: [greetings.>]
    grants: [log, publish]
  - name: mqtt
    path: builtin:mqtt
    kind: transport
    dial: [%s]
    services: [cmd]
    topics: [echo.events, out.>]
    grants: [publish, log]
    config: %s
`

// mqttNode runs a node with the echo and the mqtt transport dialling dial,
// with pluginConfig as the transport's config (a YAML flow map); a config
// with a password marks it secret.
func mqttNode(t *testing.T, dial, pluginConfig string) (*control.Client, *hosttest.SyncBuffer) {
	t.Helper()
	cfg := fmt.Sprintf(mqttNodeConfig, dial, pluginConfig)
	if strings.Contains(pluginConfig, "password:") {
		cfg += "    secrets: [password]\n"
	}
	_, c, logs := startNode(t, t.TempDir(), cfg)
	return c, logs
}

// roundTrip publishes payload on topic with mosquitto_pub until the
// echo's upper-cased answer arrives on lines (the plugin's SUBSCRIBE may
// not be in place when the first one goes out), and fails the test after
// eventuallyTimeout.
func roundTrip(t *testing.T, addr string, lines <-chan string, qos int, topic, payload string, pubArgs ...string) {
	t.Helper()
	want := fmt.Sprintf("%d echo/events %s", qos, strings.ToUpper(payload))
	deadline := time.Now().Add(eventuallyTimeout)
	var seen []string
	for time.Now().Before(deadline) {
		hosttest.MosquittoPub(t, addr, topic, payload, pubArgs...)
		wait := time.After(300 * time.Millisecond)
	read:
		for {
			select {
			case l := <-lines:
				if l == want {
					return
				}
				seen = append(seen, l)
			case <-wait:
				break read
			}
		}
	}
	t.Fatalf("%q on %s did not come back as %q within %v; mosquitto_sub read %q", payload, topic, want, eventuallyTimeout, seen)
}

// TestMQTTRoundTrip: mosquitto_pub on greetings/world reaches the echo
// subscribed to greetings.>, and the echo's publish on echo.events
// reaches mosquitto_sub on echo/events, at QoS 0; a send to the service
// the transport carries is published on the mapped topic.
func TestMQTTRoundTrip(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{})
	c, _ := mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>], keepalive: 5}`)
	lines := hosttest.MosquittoSub(t, b.Addr, "#")
	roundTrip(t, b.Addr, lines, 0, "greetings/world", "hi")
	// A send to a service the transport carries is published on its topic.
	if err := c.Send(t.Context(), "cmd.lamp.on", []byte("now"), nil); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(eventuallyTimeout)
	for got := ""; got != "0 cmd/lamp/on now"; {
		select {
		case got = <-lines: // what is left of the round trip comes first
		case <-timeout:
			t.Fatal("the send to cmd.lamp.on did not reach the broker")
		}
	}
	ti := transportNamed(t, c, "mqtt").Transport
	if ti.MessagesIn == 0 || ti.MessagesOut == 0 || len(ti.Conns) != 1 {
		t.Errorf("transport counters %+v: want messages in and out on one connection", ti)
	}
}

// TestMQTTQoS1: at qos 1 the plugin subscribes and publishes at QoS 1 (the
// mosquitto_sub at QoS 1 gets the echo at QoS 1), acknowledges a QoS 1
// PUBLISH only once the host accepted it (a plugin without the publish
// grant, whose deliver is refused, never sends that PUBACK), and pings
// the broker by its timer every keepalive.
func TestMQTTQoS1(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{Verbose: true})
	mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>], qos: 1, keepalive: 1, client_id: host-a}`)
	lines := hosttest.MosquittoSub(t, b.Addr, "echo/#", "-q", "1")
	roundTrip(t, b.Addr, lines, 1, "greetings/world", "hi", "-q", "1")
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		for _, want := range []string{
			"Sending PUBLISH to host-a (d0, q1, r0, m1, 'greetings/world'", // the broker to the plugin, QoS 1
			"Received PUBACK from host-a (Mid: 1",                          // and the plugin's acknowledgement
			"Received PUBLISH from host-a (d0, q1, r0, m2, 'echo/events'",  // the echo's event, at QoS 1 (m1 was the SUBSCRIBE)
			"Received PINGREQ from host-a",                                 // the keepalive
		} {
			if !strings.Contains(b.Log(), want) {
				return fmt.Errorf("mosquitto has not logged %q", want)
			}
		}
		return nil
	})

	// Without the publish grant the host refuses the delivery: no PUBACK.
	cfg := strings.Replace(mqttNodeConfig, "grants: [publish, log]", "grants: [log]", 1)
	_, _, logs := startNode(t, t.TempDir(), fmt.Sprintf(cfg, "tcp://"+b.Addr, `{subscribe: [denied.>], qos: 1, keepalive: 5, client_id: host-b}`))
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		hosttest.MosquittoPub(t, b.Addr, "denied/x", "no", "-q", "1")
		if !strings.Contains(b.Log(), "Sending PUBLISH to host-b (d0, q1, r0, m1, 'denied/x'") {
			return fmt.Errorf("the broker has not sent denied/x to host-b yet")
		}
		return nil
	})
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if !logs.Contains("the host did not take the message") {
			return fmt.Errorf("host-b has not logged the refused delivery:\n%s", logs)
		}
		return nil
	})
	if strings.Contains(b.Log(), "Received PUBACK from host-b") {
		t.Errorf("host-b acknowledged a message the host refused:\n%s", b.Log())
	}
}

// TestMQTTPassword: the plugin connects with the configured user name and
// password; the password shows neither in the log nor in /v1/plugins; a
// wrong one is refused by the broker, logged as such, and the connection
// dialled again.
func TestMQTTPassword(t *testing.T) {
	const pw = "pw-s3cret-9f2e"
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{Users: map[string]string{"device": "dev-pass", "host": pw}})
	c, logs := mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>], username: host, password: `+pw+`}`)
	auth := []string{"-u", "device", "-P", "dev-pass"}
	lines := hosttest.MosquittoSub(t, b.Addr, "echo/#", auth...)
	roundTrip(t, b.Addr, lines, 0, "greetings/world", "hi", auth...)
	p := transportNamed(t, c, "mqtt")
	if fmt.Sprint(p.Config["password"]) != "[redacted]" || p.Config["username"] != "host" {
		t.Errorf("/v1/plugins shows the config as %v, want the password redacted", p.Config)
	}
	if strings.Contains(logs.String(), pw) {
		t.Error("the password is in the log")
	}

	c2, logs2 := mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>], username: host, password: wrong-password}`)
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		ti := transportNamed(t, c2, "mqtt").Transport
		// The plugin closes on the refusal, or the broker first: either
		// way the connection closes and the host dials again.
		if !logs2.Contains("the broker refused the CONNECT: not authorized (code 5)") || ti.Dialed < 2 {
			return fmt.Errorf("no refused CONNECT logged and redialled yet: dialed %d, closes %v", ti.Dialed, ti.Closes)
		}
		return nil
	})
}

// TestMQTTRefusedTopics: a topic that cannot map to a subject (a '.' in a
// level, an empty level) is refused with a log line naming it, why, and
// how many were refused so far, and the next good one flows; a subject
// routed out that cannot map to a topic ('/' in a token) is refused the
// same way.
func TestMQTTRefusedTopics(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{})
	c, logs := mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>]}`)
	lines := hosttest.MosquittoSub(t, b.Addr, "#")
	roundTrip(t, b.Addr, lines, 0, "greetings/world", "first")
	hosttest.MosquittoPub(t, b.Addr, "greetings/a.b", "dotted")
	hosttest.MosquittoPub(t, b.Addr, "greetings//x", "empty")
	roundTrip(t, b.Addr, lines, 0, "greetings/world", "after")
	for _, want := range []string{
		`mqtt: topic greetings/a.b refused: it cannot map to a subject: a level contains '.', which would split it into two subject tokens (refused so far: 1)`,
		`mqtt: topic greetings//x refused: it cannot map to a subject: empty level (a leading, trailing or double '/') (refused so far: 2)`,
	} {
		if !logs.Contains(want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	if _, err := c.Publish(t.Context(), "out.a/b", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if !logs.Contains(`mqtt: subject out.a/b refused: it cannot map to an MQTT topic: a token contains '/', '+' or '#', which MQTT reads as a level or a wildcard (refused so far: 3)`) {
			return fmt.Errorf("the outbound refusal is not logged")
		}
		return nil
	})
}

// TestMQTTBrokerStalled: a broker that stops answering (SIGSTOP) is
// noticed by the plugin's keepalive, a PINGREQ without an answer for one
// period, within 3x the two periods that takes; the connection is closed
// (counted) and dialled again, and once the broker runs again messages
// flow.
func TestMQTTBrokerStalled(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{})
	c, logs := mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>], keepalive: 1}`)
	roundTrip(t, b.Addr, hosttest.MosquittoSub(t, b.Addr, "echo/#"), 0, "greetings/world", "before")

	b.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			b.Signal(syscall.SIGCONT)
		}
	}()
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if ti := transportNamed(t, c, "mqtt").Transport; ti.Closes["closed by plugin"] == 0 {
			return fmt.Errorf("the stalled broker's connection is not closed yet: closes %v", ti.Closes)
		}
		return nil
	})
	if took := time.Since(stopped); took > 3*2*time.Second {
		t.Errorf("the stall was noticed after %v, more than 3x two keepalive periods (2 s)", took)
	}
	if !logs.Contains("the broker sent nothing for 1 s after PINGREQ: closing it") {
		t.Errorf("the log does not say why the connection closed:\n%s", logs)
	}
	b.Signal(syscall.SIGCONT)
	resumed = true
	roundTrip(t, b.Addr, hosttest.MosquittoSub(t, b.Addr, "echo/#"), 0, "greetings/world", "after")
	if ti := transportNamed(t, c, "mqtt").Transport; ti.Reconnects == 0 {
		t.Errorf("no reconnect counted: %+v", ti)
	}
}

// TestMQTTBrokerRestart: the broker killed mid-run: the connection closes,
// the host dials again with backoff (dial errors counted while it is
// down), events meanwhile are dropped and counted and sends fail with
// unreachable at once, and once the broker is
// back the plugin subscribes again: a device's message reaches the host.
func TestMQTTBrokerRestart(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{})
	c, _ := mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>], keepalive: 5}`)
	roundTrip(t, b.Addr, hosttest.MosquittoSub(t, b.Addr, "echo/#"), 0, "greetings/world", "before")

	b.Kill()
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		ti := transportNamed(t, c, "mqtt").Transport
		if len(ti.Conns) != 0 || ti.DialErrors < 2 {
			return fmt.Errorf("want no connection and dial errors while the broker is down: %d conns, %d dial errors", len(ti.Conns), ti.DialErrors)
		}
		return nil
	})
	before := transportNamed(t, c, "mqtt").Transport.Dropped
	if _, err := c.Publish(t.Context(), "echo.events", []byte("lost"), nil); err != nil {
		t.Fatal(err)
	}
	// A send fails at once with unreachable, not at its deadline.
	start := time.Now()
	err := c.Send(t.Context(), "cmd.lamp.on", []byte("lost"), nil)
	if message.StatusOf(err) != abi.StatusUnreachable {
		t.Errorf("a send with the broker down: %v, want unreachable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the send failed after %v: it waited instead of failing at once", took)
	}
	if ti := transportNamed(t, c, "mqtt").Transport; ti.Dropped != before+2 {
		t.Errorf("an event and a send with the broker down: dropped %d, want %d", ti.Dropped, before+2)
	}

	b.Restart()
	roundTrip(t, b.Addr, hosttest.MosquittoSub(t, b.Addr, "echo/#"), 0, "greetings/world", "after")
	if ti := transportNamed(t, c, "mqtt").Transport; ti.Reconnects == 0 || len(ti.Conns) != 1 {
		t.Errorf("after the restart: %d reconnects, %d conns", ti.Reconnects, len(ti.Conns))
	}
}

// fakeBroker accepts MQTT clients on loopback, answers each CONNECT with a
// CONNACK and then sends the next of garbage (round-robin); it returns its
// address and stops when the test ends.
func fakeBroker(t *testing.T, garbage ...[]byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for i := 0; ; i++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn, bad []byte) {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(eventuallyTimeout))
				buf := make([]byte, 512)
				if _, err := conn.Read(buf); err != nil { // the CONNECT
					return
				}
				conn.Write(append([]byte{0x20, 2, 0, 0}, bad...))
				io.Copy(io.Discard, conn)
			}(conn, garbage[i%len(garbage)])
		}
	}()
	return ln.Addr().String()
}

// TestMQTTMalformedBroker: malformed bytes from a broker (a remaining
// length of 5 bytes, a packet type a broker never sends) close that
// connection only, counted as plugin errors; the connection to the real
// broker next to it stays up and carries messages.
func TestMQTTMalformedBroker(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{})
	bad := fakeBroker(t, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, []byte{0x00, 0x00})
	c, logs := mqttNode(t, "tcp://"+b.Addr+", tcp://"+bad, `{subscribe: [greetings.>], keepalive: 5}`)
	lines := hosttest.MosquittoSub(t, b.Addr, "echo/#")
	roundTrip(t, b.Addr, lines, 0, "greetings/world", "before")
	var good uint32
	for _, cn := range transportNamed(t, c, "mqtt").Transport.Conns {
		if strings.HasPrefix(cn.Entry, "dial[0]") {
			good = cn.ID
		}
	}
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		ti := transportNamed(t, c, "mqtt").Transport
		if ti.Closes["plugin error"] < 2 || ti.Errors < 2 {
			return fmt.Errorf("want both malformed streams closed and counted: closes %v, errors %d\n%s", ti.Closes, ti.Errors, logs)
		}
		return nil
	})
	for _, want := range []string{"a remaining length longer than 4 bytes: closing it", "unexpected packet type 0 from the broker: closing it"} {
		if !logs.Contains(want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	roundTrip(t, b.Addr, lines, 0, "greetings/world", "after")
	still := false
	for _, cn := range transportNamed(t, c, "mqtt").Transport.Conns {
		still = still || cn.ID == good
	}
	if good == 0 || !still {
		t.Errorf("the connection to the real broker (id %d) did not stay open", good)
	}
}

// TestMQTTNoLoop: a topic the plugin both subscribes to and carries out
// does not go round between host and broker: what a device publishes is
// delivered once (marked as coming from the broker, SPEC 13.5) and not
// published back.
func TestMQTTNoLoop(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{})
	c, _ := mqttNode(t, "tcp://"+b.Addr, `{subscribe: [greetings.>, out.>]}`)
	lines := hosttest.MosquittoSub(t, b.Addr, "out/#")
	roundTrip(t, b.Addr, hosttest.MosquittoSub(t, b.Addr, "echo/#"), 0, "greetings/world", "ready")
	hosttest.MosquittoPub(t, b.Addr, "out/x", "once")
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if ti := transportNamed(t, c, "mqtt").Transport; ti.MessagesIn < 2 {
			return fmt.Errorf("out/x not delivered yet: %d messages in", ti.MessagesIn)
		}
		return nil
	})
	// A loop would publish out/x again within a broker round trip, many
	// times a second; watch for one second.
	var got []string
	watch := time.After(time.Second)
	for done := false; !done; {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-watch:
			done = true
		}
	}
	if len(got) != 1 || got[0] != "0 out/x once" {
		t.Errorf("mosquitto_sub on out/# read %q, want the device's one message", got)
	}
	if ti := transportNamed(t, c, "mqtt").Transport; ti.MessagesIn != 2 {
		t.Errorf("%d messages delivered, want 2 (ready, out/x)", ti.MessagesIn)
	}
}

// TestMQTTQoS1ResentAfterDrop: at qos 1 the plugin keeps what it
// published until the broker's PUBACK. Here the PUBLISH packets are held
// on their way to the broker (a proxy delaying them) when the connection
// drops, so the broker never gets them; the host dials again, and the
// plugin writes them again on the new connection, DUP set: the
// subscriber gets every one. Before, they were lost with the connection.
func TestMQTTQoS1ResentAfterDrop(t *testing.T) {
	b := hosttest.StartMosquitto(t, hosttest.MosquittoOptions{Verbose: true})
	px := hosttest.NewTCPProxy(t, b.Addr)
	c, logs := mqttNode(t, "tcp://"+px.Addr(), `{qos: 1, keepalive: 5, client_id: host-r}`)
	lines := hosttest.MosquittoSub(t, b.Addr, "out/#", "-q", "1")
	// The plugin is connected once a publish of its reaches the subscriber.
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if _, err := c.Publish(t.Context(), "out.warm", []byte("w"), nil); err != nil {
			return err
		}
		select {
		case l := <-lines:
			if l == "1 out/warm w" {
				return nil
			}
			return fmt.Errorf("subscriber read %q", l)
		case <-time.After(300 * time.Millisecond):
			return fmt.Errorf("out.warm has not reached the subscriber")
		}
	})
	drain := func() {
		for {
			select {
			case <-lines:
			case <-time.After(200 * time.Millisecond):
				return
			}
		}
	}
	drain()

	px.SetDelay(hosttest.ToServer, time.Minute)
	out := transportNamed(t, c, "mqtt").Transport.MessagesOut
	const n = 5
	for i := range n {
		if _, err := c.Publish(t.Context(), "out.m", fmt.Appendf(nil, "m%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if got := transportNamed(t, c, "mqtt").Transport.MessagesOut; got < out+n {
			return fmt.Errorf("the plugin has taken %d of the %d publishes", got-out, n)
		}
		return nil
	})
	px.Drop() // the held PUBLISH packets go with the connection
	px.SetDelay(hosttest.ToServer, 0)

	got := map[string]bool{}
	timeout := time.After(eventuallyTimeout)
	for len(got) < n {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, "1 out/m ") { // not a warm-up's, sent again
				got[l] = true
			}
		case <-timeout:
			t.Fatalf("after the drop the subscriber read %v; want m0..m%d\nnode log:\n%s\nbroker log:\n%s", got, n-1, logs, b.Log())
		}
	}
	for i := range n {
		if want := fmt.Sprintf("1 out/m m%d", i); !got[want] {
			t.Errorf("subscriber did not read %q (read %v)", want, got)
		}
	}
	hosttest.CheckFor(t, eventuallyTimeout, func() error { // mosquitto's log comes in bursts
		if !strings.Contains(b.Log(), "Received PUBLISH from host-r (d1, q1") {
			return fmt.Errorf("the broker logged no PUBLISH with DUP set")
		}
		return nil
	})
	if !logs.Contains("written again") {
		t.Errorf("the plugin did not log the resend:\n%s", logs)
	}
}
