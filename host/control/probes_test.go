package control_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
)

// probe GETs path on addr and returns the code and the decoded JSON body.
func probe(t *testing.T, addr, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("GET %s: %s: body is not JSON: %v\n%s", path, resp.Status, err, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return resp.StatusCode, body
}

// readiness is a backend that reports its reasons one by one.
type readiness struct {
	*controltest.Backend
	rd control.Readiness
}

func (r readiness) Readiness() control.Readiness { return r.rd }

// TestProbes: /healthz answers 200 whatever the node's readiness; /readyz
// answers 200 {"ready":true} for a ready node and 503 with the reasons
// for one that is not, from a ReadinessReporter one by one, else from
// Health's not_ready. Both are at the root: there were no such routes
// (404 no_handler).
func TestProbes(t *testing.T) {
	b := controltest.NewBackend()
	b.HealthInfo = control.Health{Status: "ok", Node: "node-a", Uptime: time.Minute, Plugins: 1, Ready: true}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)

	if code, body := probe(t, addr, "/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/healthz of a ready node: %d %v", code, body)
	}
	if code, body := probe(t, addr, "/readyz"); code != http.StatusOK || body["ready"] != true || body["reasons"] != nil {
		t.Errorf("/readyz of a ready node: %d %v", code, body)
	}
	if rd, err := c.Ready(context.Background()); err != nil || !rd.Ready {
		t.Errorf("Client.Ready of a ready node: %+v, %v", rd, err)
	}

	// A new server per verdict: the backend is read by the server's
	// goroutines.
	nb := controltest.NewBackend()
	nb.HealthInfo = control.Health{Status: "ok", Node: "node-a", NotReady: "plugins failed: inventory"}
	_, addr = controltest.Start(t, nb)
	c = control.NewClient(addr)
	if code, body := probe(t, addr, "/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/healthz of a node not ready: %d %v", code, body)
	}
	code, body := probe(t, addr, "/readyz")
	if code != http.StatusServiceUnavailable || body["ready"] != false ||
		!reflect.DeepEqual(body["reasons"], []any{"plugins failed: inventory"}) {
		t.Errorf("/readyz of a node not ready: %d %v", code, body)
	}
	if rd, err := c.Ready(context.Background()); err != nil || rd.Ready || !reflect.DeepEqual(rd.Reasons, []string{"plugins failed: inventory"}) {
		t.Errorf("Client.Ready of a node not ready: %+v, %v", rd, err)
	}

	reasons := []string{"plugins failed: a, b", "draining: the node is stopping"}
	_, addr2 := controltest.Start(t, readiness{Backend: controltest.NewBackend(), rd: control.Readiness{Reasons: reasons}})
	code, body = probe(t, addr2, "/readyz")
	if code != http.StatusServiceUnavailable || !reflect.DeepEqual(body["reasons"], []any{reasons[0], reasons[1]}) {
		t.Errorf("/readyz of a ReadinessReporter: %d %v", code, body)
	}

	// A wrong method is the API's JSON 405, as on every route.
	resp, err := http.Post("http://"+addr+"/readyz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
		t.Errorf("POST /readyz: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	for _, p := range control.ProbePaths {
		if p != control.PathHealthz && p != control.PathReadyz {
			t.Errorf("ProbePaths lists %q", p)
		}
	}
}
