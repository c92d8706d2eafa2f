package mesh

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/host/message"
)

// Serving requests on the link's reader.
//
// A request from a peer used to be handed from the link's reader to a
// worker goroutine: one sleep and wake-up per request, a fifth of the CPU
// of a small call on two cores. When the local handler can start at once
// (a free plugin instance: Local.TryCall), the reader now runs it itself
// and reads on after. (Events stay queued to their subscriber: run on the
// reader, they cost the pipelining of reading while the plugin runs, and
// measured fewer events per second with more dropped; RATIONALE.md.) Two rules keep that from
// starving the link, whose reader also answers pings and carries the
// replies to this host's own requests:
//
//  1. Bounded time. A watcher looks at every link each inlineTick; a
//     reader found inside the same inline request at two looks in a row
//     (so for between one and two ticks) loses the reading to a new
//     goroutine, and returns when its request is done. So an inline
//     request holds up the link's other frames for at most
//     2*inlineTick. Who reads is settled by one compare-and-swap on the
//     reader's seq: the watcher's (taking over) or the reader's own
//     (ending the request), whichever comes first.
//  2. Short handlers only. A message whose payload is over
//     inlineMaxPayload goes to the workers (a handler's time grows with
//     its input: a 64 KiB echo takes ~200 µs). One inline message in
//     inlineSample is timed, the first of a link included; one that took
//     longer than inlineSlow (or was handed over) sends the next
//     inlineBackoff messages of the link to the workers, where several
//     run at once, as a slow handler needs.
const (
	inlineTick       = time.Millisecond
	inlineSample     = 16
	inlineMaxPayload = 4 << 10
	inlineSlow       = 50 * time.Microsecond
	inlineBackoff    = 256
	// inlineIdle is how many ticks without an inline request the watcher
	// waits before it sleeps until the next one.
	inlineIdle = 1000
)

// tryLocal is a Local that can run a request only when it can start at
// once (router.Router.TryCall): ok false means it did nothing.
type tryLocal interface {
	TryCall(ctx context.Context, m *message.Message) (reply []byte, ok bool, err error)
}

// reader is the state of a link's main-stream reader.
type reader struct {
	fr   *wire.Reader  // main stream; it may hold frames read ahead during the handshake
	seq  atomic.Uint64 // odd while the reader runs a request inline
	skip atomic.Int32  // requests left to hand to the workers before trying inline again
	n    uint32        // inline requests tried, for sampling; the current reader's
	seen uint64        // seq at the watcher's last look; the watcher's
	// slab and msgs are the current reader's: the bytes and the messages
	// of the small sends and events it decodes come from them, a fresh
	// allocation per slab or per 32 messages instead of two per event
	// (see wire.Slab for what that retains).
	slab wire.Slab
	msgs []message.Message
}

// errHandedOver tells a reader that another goroutine reads the link now.
var errHandedOver = errors.New("another goroutine reads the link")

// tryInline serves request e on the calling reader when the rules above
// allow it and the handler can start at once, or hands it to the workers.
// It returns errHandedOver when the request ran so long that another
// goroutine took over reading: the caller must stop reading.
func (in *inbound) tryInline(l *link, e *wire.Envelope) error {
	tl, ok := in.m.local.(tryLocal)
	if !ok || !l.rd.mayInline(e) {
		in.pool.run(job{l, e})
		return nil
	}
	msg := in.request(l, e)
	in.inline.active()
	var start time.Time // rule 2: one request in inlineSample is timed
	if l.rd.n%inlineSample == 0 {
		start = time.Now()
	}
	l.rd.n++
	s := l.rd.seq.Add(1) // odd: running; the watcher may take over (rule 1)
	out, done, err := tl.TryCall(l.ctx, msg)
	mine := l.rd.seq.CompareAndSwap(s, s+1)
	if !start.IsZero() && time.Since(start) > inlineSlow {
		l.rd.skip.Store(inlineBackoff)
	}
	if !done {
		in.pool.run(job{l, e})
	} else {
		in.answer(l, e, msg, out, err)
		l.inflight.Add(-1)
	}
	if !mine {
		return errHandedOver
	}
	return nil
}

// mayInline says whether the reader may run e inline: not a big one, and
// not while a slow one's backoff lasts.
func (rd *reader) mayInline(e *wire.Envelope) bool {
	if len(e.Payload) > inlineMaxPayload {
		return false
	}
	if rd.skip.Load() > 0 {
		rd.skip.Add(-1)
		return false
	}
	return true
}

// inlineWatch is the watcher of rule 1. It runs while inline requests
// happen and sleeps when none has for inlineIdle ticks.
type inlineWatch struct {
	asleep atomic.Bool
	wake   chan struct{} // cap 1
}

// active wakes the watcher if it sleeps.
func (w *inlineWatch) active() {
	if w.asleep.Load() {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// watch is the watcher's loop; it ends with the mesh.
func (in *inbound) watch() {
	m := in.m
	defer m.wg.Done()
	w := &in.inline
	t := time.NewTicker(inlineTick)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-t.C:
		case <-m.ctx.Done():
			return
		}
		moved := false
		for _, l := range m.links.all() {
			s := l.rd.seq.Load()
			if s != l.rd.seen {
				moved = true
			} else if s&1 == 1 && l.rd.seq.CompareAndSwap(s, s+1) {
				in.handover(l)
				s++
			}
			l.rd.seen = s
		}
		if moved {
			idle = 0
			continue
		}
		if idle++; idle < inlineIdle {
			continue
		}
		w.asleep.Store(true)
		select {
		case <-w.wake:
		case <-m.ctx.Done():
			return
		}
		w.asleep.Store(false)
		idle = 0
	}
}

// handover starts a new reader for l, whose reader is stuck in an inline
// request and has lost the reading (the watcher's compare-and-swap); the
// stuck one returns when its request is done.
func (in *inbound) handover(l *link) {
	l.rd.skip.Store(inlineBackoff)
	if !in.m.links.hold(1) {
		return // closing: nobody needs to read on
	}
	in.m.log.Debug("a request served on the link's reader ran long: another goroutine reads on", "node", l.name, "id", l.peer.Short())
	go func() { defer in.m.wg.Done(); l.readLoop() }()
}
