package node

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// respClient is one authenticated RESP2 connection the test keeps: with
// maxclients lowered, a new connection per command would be refused.
type respClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRESP(t *testing.T, addr, password string) *respClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, eventuallyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &respClient{c: c, br: bufio.NewReader(c)}
	if password == "" {
		return rc
	}
	if line, err := rc.do("AUTH", password); err != nil || line != "+OK" {
		t.Fatalf("AUTH: %q, %v", line, err)
	}
	return rc
}

// do sends one command and returns its reply's first line; a bulk
// string's content follows on the next line, returned instead.
func (rc *respClient) do(args ...string) (string, error) {
	rc.c.SetDeadline(time.Now().Add(eventuallyTimeout))
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := rc.c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := rc.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("bulk header %q", line)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(rc.br, body); err != nil {
		return "", err
	}
	return string(body[:n]), nil
}

// TestRedisReplyHeldForCommandConnection: host b's redis plugin takes in
// a request on its subscribed connection while its command connection,
// the only one it can PUBLISH on, is down and refused by the broker
// (maxclients). The reply waits for that connection instead of being
// lost, and reaches the caller's inbox once the broker takes it again.
// The same window opens on every new session, whose subscriptions are
// acknowledged before its command connection has authenticated. Without
// a password the plugin opens the command connection with a PING, so a
// refusal is told from a connection the broker took the same way.
func TestRedisReplyHeldForCommandConnection(t *testing.T) {
	for _, password := range []string{redisPassword, ""} {
		name := "password"
		if password == "" {
			name = "no password"
		}
		t.Run(name, func(t *testing.T) { testRedisReplyHeld(t, password) })
	}
}

func testRedisReplyHeld(t *testing.T, password string) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: password})
	cfg := fmt.Sprintf(redisReplyHB, wasmFixture("headers.wasm"), r.Addr, password)
	if password == "" {
		cfg = strings.Replace(cfg, "password: , ", "", 1)
		cfg = strings.Replace(cfg, "    secrets: [password]\n", "", 1)
	}
	_, _, logsB := startNode(t, t.TempDir(), cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host b log:\n%s\nredis log:\n%s", logsB, r.Log())
		}
	})
	const inbox = "pycomms:inbox:00ff"
	sub := dialRESP(t, r.Addr, password)
	sub.c.SetDeadline(time.Now().Add(3 * eventuallyTimeout))
	fmt.Fprintf(sub.c, "*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n", len(inbox), inbox)
	if _, err := readRESPArray(sub.br); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	ctl := dialRESP(t, r.Addr, password)
	ownID, err := ctl.do("CLIENT", "ID")
	if err != nil || !strings.HasPrefix(ownID, ":") {
		t.Fatalf("CLIENT ID: %q, %v", ownID, err)
	}
	ownID = ownID[1:]

	// b's session is up once its subscriber connection has its pattern
	// subscription (psub; the test's own subscriber has none) and its
	// command connection, the one client that is neither the test's nor
	// subscribed, has run its first command (AUTH or PING; before any,
	// Redis lists cmd=NULL, and a subscriber connection not yet
	// subscribed looks the same).
	var cmdID string
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		list, err := ctl.do("CLIENT", "LIST")
		if err != nil {
			return err
		}
		var ids []string
		subscribed := false
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			f := map[string]string{}
			for _, kv := range strings.Fields(line) {
				k, v, _ := strings.Cut(kv, "=")
				f[k] = v
			}
			switch {
			case f["id"] == ownID:
			case f["psub"] != "0":
				subscribed = true
			case f["sub"] == "0" && f["cmd"] != "NULL":
				ids = append(ids, f["id"])
			}
		}
		if !subscribed || len(ids) != 1 {
			return fmt.Errorf("b's subscriber subscribed: %v; its command connections: %v, want one", subscribed, ids)
		}
		cmdID = ids[0]
		return nil
	})

	// From now on the broker refuses new connections: b's command
	// connection, killed, cannot come back.
	if line, err := ctl.do("CONFIG", "SET", "maxclients", "3"); err != nil || line != "+OK" {
		t.Fatalf("CONFIG SET maxclients: %q, %v", line, err)
	}
	t.Cleanup(func() { r.Command("CONFIG", "SET", "maxclients", "10000") })
	if line, err := ctl.do("CLIENT", "KILL", "ID", cmdID); err != nil || line != ":1" {
		t.Fatalf("CLIENT KILL ID %s: %q, %v", cmdID, line, err)
	}
	// Once b has seen the close, a reply can no longer be written into
	// the dead socket before the plugin hears of it.
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if !strings.Contains(logsB.String(), `reason="peer closed"`) {
			return fmt.Errorf("b has not seen its command connection close yet")
		}
		return nil
	})
	frame := append([]byte{0xb7, 3, 1, byte(len(inbox))}, inbox...)
	frame = append(frame, 0, 'R')
	if n, err := ctl.do("PUBLISH", "pycomms:rq:headers.r", string(frame)); err != nil || n != ":1" {
		t.Fatalf("PUBLISH the request: reached %q subscribers (%v); want b's", n, err)
	}
	// Redialled at least once and refused: the reply must still wait.
	hosttest.CheckFor(t, eventuallyTimeout, func() error {
		if !strings.Contains(logsB.String(), "refused") {
			return fmt.Errorf("b has not been refused a command connection yet")
		}
		return nil
	})
	if line, err := ctl.do("CONFIG", "SET", "maxclients", "10000"); err != nil || line != "+OK" {
		t.Fatalf("CONFIG SET maxclients: %q, %v", line, err)
	}
	push, err := readRESPArray(sub.br)
	if err != nil || len(push) != 3 || push[0] != "message" || push[1] != inbox {
		t.Fatalf("reply to inbox %s: %q, %v", inbox, push, err)
	}
	if want := []byte{0xb7, 4, 1, 0, '-'}; !bytes.Equal([]byte(push[2]), want) {
		t.Fatalf("reply frame %x, want %x", push[2], want)
	}
}
