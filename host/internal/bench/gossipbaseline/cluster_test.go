package gossipbaseline

import (
	"strings"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

func TestClusterKillAndLeave(t *testing.T) {
	logs := &hosttest.SyncBuffer{}
	c, err := Start(Options{N: 10, DeadAfter: 2 * time.Second, Logger: logs})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer func() {
		if t.Failed() {
			t.Logf("memberlist logs:\n%s", logs.String())
		}
	}()

	conv, err := c.WaitConverged(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("converged after %v", conv)

	if err := c.Kill(3); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(3); err == nil {
		t.Error("second Kill(3) succeeded")
	}
	killed, err := c.WaitDead(3, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kill of m3 detected after %v", killed)

	if err := c.Leave(4, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	left, err := c.WaitDead(4, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leave of m4 seen after %v", left)

	// The 8 remaining members agree on 8 members.
	if _, err := c.WaitConverged(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitDead(5, time.Second); err == nil {
		t.Error("WaitDead on a running member succeeded")
	}

	b := c.Bytes()
	if b == 0 {
		t.Fatal("Bytes() = 0")
	}
	t.Logf("%d bytes sent in total", b)

	c.Close()
	c.Close()
	if got := c.Bytes(); got < b {
		t.Errorf("Bytes() went down after Close: %d < %d", got, b)
	}
	if !strings.Contains(logs.String(), "m0 ") {
		t.Error("no log line prefixed with a member name")
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{N: 0},
		{N: 3, DeadAfter: -time.Second},
		{N: 3, DeadAfter: 100 * time.Millisecond},
	} {
		if c, err := Start(o); err == nil {
			c.Close()
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

func TestSuspicionMult(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{1, 2}, {2, 2}, {10, 2}, {11, 1}, {50, 1}, {1000, 1},
	} {
		if got := suspicionMult(tc.n); got != tc.want {
			t.Errorf("suspicionMult(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}
