package control

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Probe routes, for service managers, orchestrators and load balancers.
// They sit at the root, not under /v1/, where such tools look for them,
// and are the only routes of the control API that need no credentials:
// they say whether the node is up and ready, nothing about what it serves.
// They are registered in probeRoutes and nowhere else, and ProbePaths
// lists them, so that whatever guards the other routes exempts exactly
// these.
const (
	// PathHealthz answers 200 {"status":"ok"} as long as the process
	// serves the control API, draining included: liveness.
	PathHealthz = "/healthz"
	// PathReadyz answers 200 {"ready":true} when the node takes its full
	// share of work, else 503 with the reasons (Readiness).
	PathReadyz = "/readyz"
)

// ProbePaths are the paths of the probe routes.
var ProbePaths = []string{PathHealthz, PathReadyz}

// Readiness is the body of GET /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// Reasons says, one item per cause, why the node is not ready: plugins
	// failed, draining, configured peers not dialled once yet.
	Reasons []string `json:"reasons,omitempty"`
}

// ReadinessReporter is implemented by a Backend that reports the reasons
// it is not ready one by one. For any other Backend, GET /readyz answers
// from Health: Ready, and NotReady as the one reason.
type ReadinessReporter interface {
	Readiness() Readiness
}

// probeRoutes registers the probe routes with route (see routes).
func (s *Server) probeRoutes(route func(method, path string, h http.HandlerFunc)) {
	route(http.MethodGet, PathHealthz, s.handleHealthz)
	route(http.MethodGet, PathReadyz, s.handleReadyz)
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, struct {
		Status string `json:"status"`
	}{"ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	var rd Readiness
	if rr, ok := s.backend.(ReadinessReporter); ok {
		rd = rr.Readiness()
	} else {
		h := s.backend.Health()
		rd.Ready = h.Ready
		if !h.Ready && h.NotReady != "" {
			rd.Reasons = []string{h.NotReady}
		}
	}
	code := http.StatusOK
	if !rd.Ready {
		code = http.StatusServiceUnavailable
		if rd.Reasons == nil {
			rd.Reasons = []string{"not ready"}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, code, rd)
}

// Ready asks GET /readyz. A node that answers, ready or not, is no error:
// the verdict and its reasons are in the Readiness.
func (c *Client) Ready(ctx context.Context) (Readiness, error) {
	const op = "ready"
	if c.err != nil {
		return Readiness{}, c.err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+PathReadyz, nil)
	if err != nil {
		return Readiness{}, message.Errorf(abi.StatusInvalid, "%s: %v", op, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Readiness{}, c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return Readiness{}, c.apiError(op, resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return Readiness{}, c.transportError(ctx, op, err)
	}
	var rd Readiness
	if err := json.Unmarshal(b, &rd); err != nil || (resp.StatusCode == http.StatusOK) != rd.Ready {
		// A 503 from something else (a proxy) is not a verdict.
		return Readiness{}, message.Errorf(abi.StatusInternal, "%s: node at %s answered %s: %q",
			op, c.addr, resp.Status, truncate(strings.TrimSpace(string(b)), 200))
	}
	return rd, nil
}
