package control_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
)

// TestReloadConfigError: a reload refused because of the config (a
// *control.ConfigError, however deep in the chain) is 400 invalid naming
// the reason and that the running config keeps serving; any other failure
// of the reload is the node's, 500 internal.
func TestReloadConfigError(t *testing.T) {
	b := controltest.NewBackend()
	var reloadErr error
	b.ReloadFunc = func(context.Context) error { return reloadErr }
	_, addr := controltest.Start(t, b)
	url := "http://" + addr + "/v1/reload"

	reason := errors.New("pycomms.yaml:3:7: plugins[0].instances: 0 is out of range (1..256)")
	reloadErr = fmt.Errorf("reload: %w", &control.ConfigError{Err: reason})
	r := rawDo(t, "POST", url, nil, nil)
	e := errorBody(t, r)
	want := "reload refused, the running config keeps serving: " + reason.Error()
	if r.code != 400 || e.Status != "invalid" || e.Code != int(abi.StatusInvalid) || e.Error != want {
		t.Errorf("config error: %d %+v, want 400 invalid %q", r.code, e, want)
	}
	err := control.NewClient(addr).Reload(context.Background())
	wantStatus(t, err, abi.StatusInvalid)

	reloadErr = errors.New("bind routes of \"a\": bug")
	r = rawDo(t, "POST", url, nil, nil)
	if e := errorBody(t, r); r.code != 500 || e.Status != "internal" || e.Error != reloadErr.Error() {
		t.Errorf("other error: %d %+v, want 500 internal", r.code, e)
	}
}

// TestOutsideMesh: a Mesh backend that does not take part in a mesh now
// (InMesh false) answers the mesh routes as a Backend that is no Mesh at
// all: 404 no_handler, and health without id, peers or members.
func TestOutsideMesh(t *testing.T) {
	b := meshBackend()
	b.OutsideMesh = true
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	ctx := context.Background()

	r := rawDo(t, "GET", "http://"+addr+"/v1/peers", nil, nil)
	if e := errorBody(t, r); r.code != 404 || e.Status != "no_handler" || e.Error != "this node is not part of a mesh" {
		t.Errorf("GET /v1/peers: %d %+v", r.code, e)
	}
	_, err := c.CallNode(ctx, "node-b", "a.b", nil, nil, 0)
	wantStatus(t, err, abi.StatusNoHandler)
	wantStatus(t, c.SendNode(ctx, "node-b", "a.b", nil, nil), abi.StatusNoHandler)
	if n := len(b.Sent()); n != 0 {
		t.Errorf("%d refused sends reached the node", n)
	}
	if h, err := c.Health(ctx); err != nil || h.ID != "" || h.Peers != 0 || h.Members != 0 {
		t.Errorf("Health = %+v, %v", h, err)
	}

	// The same backend in a mesh answers them.
	b2 := meshBackend()
	_, addr2 := controltest.Start(t, b2)
	if ps, err := control.NewClient(addr2).Peers(ctx); err != nil || len(ps) == 0 {
		t.Errorf("Peers in a mesh = %v, %v", ps, err)
	}
}
