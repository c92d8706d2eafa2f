package mesh

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// identityEP records the identity (origin, number) of the events it gets.
type identityEP struct {
	mu  sync.Mutex
	got map[string][2]string // payload -> FromNode, Seq
}

func (e *identityEP) Request(context.Context, *message.Message) ([]byte, error) { return nil, nil }

func (e *identityEP) Post(m *message.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got[string(m.Payload)] = [2]string{m.FromNode, fmt.Sprint(m.Seq)}
	return nil
}

func (e *identityEP) snapshot() map[string][2]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string][2]string, len(e.got))
	for k, v := range e.got {
		out[k] = v
	}
	return out
}

// TestEventIdentityCrossesMesh: an event's number on its origin travels
// in the envelope's id, directly (a to b) and through a relay (a to c
// through b), and the far host names the origin, not the relay: the
// identity by which a host reached by a broker too drops the second copy
// (SPEC 13.5).
func TestEventIdentityCrossesMesh(t *testing.T) {
	hosts := startChain(t, 3, "tcp")
	a, b, c := hosts[0], hosts[1], hosts[2]
	bSub, cSub := &identityEP{got: map[string][2]string{}}, &identityEP{got: map[string][2]string{}}
	b.serve("sub", bSub, nil, []string{"news.>"})
	c.serve("sub", cSub, nil, []string{"news.>"})
	hosttest.CheckFor(t, 10*time.Second, func() error { return listenersErr(a, 2) })
	want := map[string][2]string{}
	for i := range 20 {
		m := &message.Message{Kind: abi.KindEvent, Subject: "news.x", Payload: fmt.Appendf(nil, "%d", i)}
		if _, err := a.router.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if m.Seq == 0 {
			t.Fatal("the router did not number an event published on its host")
		}
		want[string(m.Payload)] = [2]string{string(a.id.ID), fmt.Sprint(m.Seq)}
	}
	for name, ep := range map[string]*identityEP{"b (direct)": bSub, "c (relayed)": cSub} {
		hosttest.CheckFor(t, 10*time.Second, func() error {
			got := ep.snapshot()
			if len(got) != len(want) {
				return fmt.Errorf("%s got %d of %d events", name, len(got), len(want))
			}
			for p, w := range want {
				if got[p] != w {
					return fmt.Errorf("%s: event %s has identity %v, want %v", name, p, got[p], w)
				}
			}
			return nil
		})
	}
}
