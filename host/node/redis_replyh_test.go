package node

import (
	"context"
	"fmt"
	"maps"
	"testing"

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
