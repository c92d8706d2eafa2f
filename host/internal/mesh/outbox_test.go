package mesh

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// TestOutboxKeepsOrderAcrossChunks queues frames of sizes around and
// beyond a chunk, with control frames between them, and reads them back
// from the other end of a pipe: every frame arrives whole and in order,
// whichever chunk it was queued in, and the writer recycles its chunks
// (nothing stays queued).
func TestOutboxKeepsOrderAcrossChunks(t *testing.T) {
	pr, pw := io.Pipe()
	l := &link{done: make(chan struct{})}
	o := &l.out
	o.l, o.w, o.limit, o.wake = l, pw, 64<<20, make(chan struct{}, 1)
	go o.writeLoop()
	t.Cleanup(func() { close(l.done); pr.Close() })

	sizes := []int{0, 1, 100, chunkSize - 300, chunkSize - 10, chunkSize, 3*chunkSize + 7, 5000, 60}
	const frames = 200
	payload := func(i int) []byte {
		return bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
	}
	go func() {
		for i := range frames {
			e := wire.Envelope{Version: 1, ID: uint64(i + 1), Kind: wire.KindEvent, Subject: "order.check", Payload: payload(i)}
			if err := o.enqueue(&e, true, time.Now().Add(10*time.Second)); err != nil {
				t.Errorf("enqueue frame %d: %v", i, err)
				return
			}
			if i%7 == 0 {
				if err := o.enqueueControl(wire.FrameInterest, &wire.Interest{Seq: uint64(i)}); err != nil {
					t.Errorf("enqueue control after frame %d: %v", i, err)
					return
				}
			}
		}
	}()

	stop := time.AfterFunc(30*time.Second, func() { pr.CloseWithError(errors.New("frames did not arrive within 30s")) })
	defer stop.Stop()
	r := wire.NewReader(pr, 8*chunkSize)
	next := 0
	for next < frames {
		ft, body, err := r.Next()
		if err != nil {
			t.Fatalf("after %d frames: %v", next, err)
		}
		if ft == wire.FrameInterest {
			var in wire.Interest
			if err := wire.DecodeControl(body, &in); err != nil {
				t.Fatalf("control frame after frame %d: %v", next, err)
			}
			if want := uint64(next - 1); in.Seq != want {
				t.Fatalf("control frame seq %d after frame %d, want %d", in.Seq, next, want)
			}
			continue
		}
		var e wire.Envelope
		if err := wire.DecodeEnvelope(body, &e); err != nil {
			t.Fatalf("frame %d: %v", next, err)
		}
		if e.ID != uint64(next+1) || !bytes.Equal(e.Payload, payload(next)) {
			t.Fatalf("frame %d: got id %d with %d payload bytes, want id %d with %d", next, e.ID, len(e.Payload), next+1, len(payload(next)))
		}
		next++
	}
	deadline := time.Now().Add(10 * time.Second)
	for !o.drained() {
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %d bytes queued", o.queued())
		}
		time.Sleep(time.Millisecond)
	}
}
