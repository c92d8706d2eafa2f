package transport

import (
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestPostWaitsForRoomUntilDeadline: with its instance stuck (a data
// event that loops until limits.timeout) the transport's queue fills. An
// event without a deadline is then refused with busy at once; one whose
// publisher gave a deadline waits for room: busy when the deadline passes
// first, queued when the stuck event is stopped and the queue drains
// before it. One that came over the mesh never waits.
func TestPostWaitsForRoomUntilDeadline(t *testing.T) {
	g := start(t, "transport_loop", Config{Accept: []string{"127.0.0.1:0"},
		Spec: plugin.Spec{Instances: 1, Timeout: 2 * time.Second}}, nil, []string{"t.>"})
	c := dialTo(t, g.tr)
	waitFor(t, "the connection", func() bool { return len(g.tr.Stats().Conns) == 1 })
	c.Write([]byte("L")) // the only instance loops until its timeout
	ev := func(deadline time.Time, fromNode string) *message.Message {
		return &message.Message{Kind: abi.KindEvent, Subject: "t.x", Payload: []byte("e"), Deadline: deadline, FromNode: fromNode}
	}
	// Full and stuck: refused, and still refused a while later (a working
	// instance empties the queue in well under a millisecond).
	fill := func() bool {
		for range 4 * slotQueue {
			if err := g.tr.Post(ev(time.Time{}, "")); err != nil {
				if message.StatusOf(err) != abi.StatusBusy {
					t.Fatalf("filling the queue: %v", err)
				}
				return true
			}
		}
		return false
	}
	waitFor(t, "the queue full behind the stuck instance", func() bool {
		if !fill() {
			return false
		}
		time.Sleep(100 * time.Millisecond)
		return message.StatusOf(g.tr.Post(ev(time.Time{}, ""))) == abi.StatusBusy
	})
	if err := g.tr.Post(ev(time.Now().Add(10*time.Second), "peer-id")); message.StatusOf(err) != abi.StatusBusy {
		t.Fatalf("an event from the mesh with a deadline, queue full: %v; want busy at once", err)
	}
	if err := g.tr.Post(ev(time.Now().Add(50*time.Millisecond), "")); message.StatusOf(err) != abi.StatusBusy {
		t.Fatalf("an event whose deadline passes before room: %v; want busy", err)
	}
	out := g.tr.Stats().MessagesOut
	if err := g.tr.Post(ev(time.Now().Add(30*time.Second), "")); err != nil {
		t.Fatalf("an event with a deadline past the stuck instance's timeout: %v; want queued once there was room", err)
	}
	if got := g.tr.Stats().MessagesOut; got != out+1 {
		t.Errorf("messages out %d after the waiting event, want %d", got, out+1)
	}
}
