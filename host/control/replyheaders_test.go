package control_test

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestCallReplyHeaders: the headers a handler sets on its reply come back
// as Pycomms-H-<name> response headers, the mirror of how request headers
// go in, and the Go client reads them back under their message names. A
// header HTTP cannot carry as it is (a name that is no token, a value
// with a control character) is left out; an error reply carries none.
func TestCallReplyHeaders(t *testing.T) {
	b := meshBackend()
	answer := func(m *message.Message, who string) ([]byte, error) {
		if m.ReplyHeaders == nil {
			return nil, message.Errorf(abi.StatusInternal, "the control API asked for no reply headers")
		}
		*m.ReplyHeaders = abi.Headers{"trace-id": m.Headers["trace-id"], "served-by": who,
			"content-type": "application/cbor", "two words": "left out", "multi": "line\nleft out"}
		if string(m.Payload) == "fail" {
			return nil, message.Errorf(abi.StatusHandlerError, "refused")
		}
		return []byte("ok"), nil
	}
	b.CallFunc = func(_ context.Context, m *message.Message) ([]byte, error) { return answer(m, "any") }
	b.CallNodeFunc = func(_ context.Context, node string, m *message.Message) ([]byte, error) { return answer(m, node) }
	_, addr := controltest.Start(t, b)

	r := rawDo(t, "POST", "http://"+addr+"/v1/call/svc.m", strings.NewReader("x"), map[string][]string{"Pycomms-H-Trace-Id": {"t-1"}})
	if r.code != http.StatusOK || string(r.body) != "ok" {
		t.Fatalf("answer %d %q", r.code, r.body)
	}
	var got []string
	for k, vs := range r.header {
		if strings.HasPrefix(k, control.HeaderPrefix) {
			got = append(got, k+": "+strings.Join(vs, "|"))
		}
	}
	want := []string{"Pycomms-H-Content-Type: application/cbor", "Pycomms-H-Served-By: any", "Pycomms-H-Trace-Id: t-1"}
	if strings.Join(sorted(got), "\n") != strings.Join(want, "\n") {
		t.Errorf("response headers:\n%s\nwant:\n%s", strings.Join(sorted(got), "\n"), strings.Join(want, "\n"))
	}

	c := control.NewClient(addr)
	for _, node := range []string{"", "node-b"} {
		reply, rh, err := c.CallNodeHeaders(context.Background(), node, "svc.m", []byte("x"), map[string]string{"trace-id": "t-2"}, time.Second)
		who := "any"
		if node != "" {
			who = node
		}
		wantH := map[string]string{"trace-id": "t-2", "served-by": who, "content-type": "application/cbor"}
		if err != nil || string(reply) != "ok" || !reflect.DeepEqual(rh, wantH) {
			t.Errorf("CallNodeHeaders(node %q) = %q, %v, %v; want ok, %v", node, reply, rh, err, wantH)
		}
	}
	r = rawDo(t, "POST", "http://"+addr+"/v1/call/svc.m", strings.NewReader("fail"), nil)
	for k := range r.header {
		if strings.HasPrefix(k, control.HeaderPrefix) {
			t.Errorf("error reply (%d %s) has header %s", r.code, r.body, k)
		}
	}
	if _, rh, err := c.CallNodeHeaders(context.Background(), "", "svc.m", []byte("fail"), nil, time.Second); message.StatusOf(err) != abi.StatusHandlerError || rh != nil {
		t.Errorf("failing call: headers %v, err %v; want none and handler_error", rh, err)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
