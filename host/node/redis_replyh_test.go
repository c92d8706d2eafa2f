package node

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// redisReplyHA routes the service headers out through Redis.
const redisReplyHA = `
listen: {tcp: "", quic: ""}
plugins:
  - name: broker
    path: builtin:redis
    kind: transport
    instances: 1
    dial: [tcp://%s]
    services: [headers]
    grants: [log, call]
    config: {password: %s}
    secrets: [password]
`

// redisReplyHB serves headers (testdata/wat/headers.wasm) and takes in
// its requests from Redis.
const redisReplyHB = `
listen: {tcp: "", quic: ""}
plugins:
  - name: headers
    path: %s
    services: [headers]
    instances: 2
    grants: [call]
  - name: broker
    path: builtin:redis
    kind: transport
    instances: 1
    dial: [tcp://%s]
    grants: [log, call]
    config: {password: %s, serve: [headers]}
    secrets: [password]
`

// TestRedisReplyHeaders: a request from host a to a handler on host b,
// through Redis, brings back the headers that handler set (reply_h): b's
// redis plugin gets them in its reply event and sends a reply_h frame,
// and a's gives them to the caller (respond_h). Request headers cross
// too (the handler echoes x-req); a reply without headers has none.
func TestRedisReplyHeaders(t *testing.T) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword})
	_, ca, logsA := startNode(t, t.TempDir(), fmt.Sprintf(redisReplyHA, r.Addr, redisPassword))
	_, _, logsB := startNode(t, t.TempDir(), fmt.Sprintf(redisReplyHB, wasmFixture("headers.wasm"), r.Addr, redisPassword))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host a log:\n%s\nhost b log:\n%s", logsA, logsB)
		}
	})
	callUntil(t, ca, "headers.r", "R") // the sessions to Redis are up
	reply, rh, err := ca.CallNodeHeaders(context.Background(), "", "headers.r", []byte("R"), map[string]string{"x-req": "7"}, eventuallyTimeout)
	if want := map[string]string{"x-rep": "yes"}; err != nil || string(reply) != "7" || !maps.Equal(rh, want) {
		t.Fatalf("call through Redis: %q, headers %v, %v; want \"7\", %v", reply, rh, err, want)
	}
	// "Oheaders.r": headers.wat calls itself without headers and replies
	// with plain reply: no headers.
	reply, rh, err = ca.CallNodeHeaders(context.Background(), "", "headers.r", []byte("Oheaders.r"), nil, eventuallyTimeout)
	if err != nil || string(reply) != "-yes" || len(rh) != 0 {
		t.Fatalf("call through Redis, reply without headers: %q, headers %v, %v; want \"-yes\", none", reply, rh, err)
	}
}

// TestRedisReplyHFrameOnlyToNewInboxes speaks the redis plugin's wire
// format (plugins/redis/resp.go) to host b directly: a request whose
// reply inbox is an older plugin's (PREFIX:inbox:HEX) is answered with a
// plain reply frame, one whose inbox has the "h" mark with a reply_h
// frame that carries the handler's reply headers.
func TestRedisReplyHFrameOnlyToNewInboxes(t *testing.T) {
	r := hosttest.StartRedis(t, hosttest.RedisOptions{Password: redisPassword})
	_, _, logsB := startNode(t, t.TempDir(), fmt.Sprintf(redisReplyHB, wasmFixture("headers.wasm"), r.Addr, redisPassword))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host b log:\n%s", logsB)
		}
	})
	c, err := net.DialTimeout("tcp", r.Addr, eventuallyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * eventuallyTimeout))
	br := bufio.NewReader(c)
	const oldInbox, newInbox = "pycomms:inbox:00ff", "pycomms:inbox:h00ff"
	fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*3\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
		len(redisPassword), redisPassword, len(oldInbox), oldInbox, len(newInbox), newInbox)
	if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("AUTH: %q, %v", line, err)
	}
	for range 2 {
		if _, err := readRESPArray(br); err != nil {
			t.Fatalf("SUBSCRIBE: %v", err)
		}
	}
	for i, inbox := range []string{oldInbox, newInbox} {
		// A request frame: magic, type 3, id, inbox, no headers, "R".
		frame := append([]byte{0xb7, 3, byte(i + 1), byte(len(inbox))}, inbox...)
		frame = append(frame, 0, 'R')
		// Published until host b's subscription has it (one receiver).
		hosttest.CheckFor(t, eventuallyTimeout, func() error {
			n, err := r.Command("PUBLISH", "pycomms:rq:headers.r", string(frame))
			if err != nil || n != ":1" {
				return fmt.Errorf("PUBLISH reached %q subscribers (%v); want 1", n, err)
			}
			return nil
		})
		push, err := readRESPArray(br)
		if err != nil || len(push) != 3 || push[0] != "message" || push[1] != inbox {
			t.Fatalf("reply to inbox %s: %q, %v", inbox, push, err)
		}
		got := []byte(push[2])
		var want []byte
		if inbox == oldInbox {
			// reply: magic, type 4, id, status ok, body
			want = []byte{0xb7, 4, byte(i + 1), 0, '-'}
		} else {
			// reply_h: magic, type 5, id, status ok, headers {"x-rep": "yes"}, body
			want = append([]byte{0xb7, 5, byte(i + 1), 0, 11}, "\xa1\x65x-rep\x63yes-"...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reply to inbox %s: frame %x, want %x", inbox, got, want)
		}
	}
}

// readRESPArray reads one RESP2 array of bulk strings or integers.
func readRESPArray(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n > 16 {
		return nil, fmt.Errorf("array header %q", line)
	}
	out := make([]string, 0, n)
	for range n {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		switch line[0] {
		case ':':
			out = append(out, strings.TrimSpace(line[1:]))
		case '$':
			l, err := strconv.Atoi(strings.TrimSpace(line[1:]))
			if err != nil || l < 0 || l > 1<<16 {
				return nil, fmt.Errorf("bulk header %q", line)
			}
			b := make([]byte, l+2)
			if _, err := io.ReadFull(br, b); err != nil {
				return nil, err
			}
			out = append(out, string(b[:l]))
		default:
			return nil, fmt.Errorf("unexpected %q in an array", line)
		}
	}
	return out, nil
}
