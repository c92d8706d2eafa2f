package router

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// An event's identity is (origin node id, sequence number): the origin
// numbers the events it publishes (Router.Publish), the mesh carries the
// number in the envelope's id and a transport in the header pycomms-seq.
// A host that reaches other hosts by more than one path (the mesh and a
// broker transport) receives some events once through each; it drops
// the copies whose identity it has seen (abi/SPEC.md section 13.5).

// Bounds of the duplicate filter.
const (
	// DedupWindow is how many sequence numbers below the highest seen of
	// an origin the filter remembers: a copy that arrives after its
	// origin published DedupWindow more events is not recognised (it is
	// delivered a second time). Like IPsec's anti-replay window, one bit
	// per number: about 520 bytes per origin.
	DedupWindow = 4096
	// DedupOrigins is how many origins the filter remembers; past it the
	// least recently seen is forgotten (about 600 KiB in all at most).
	DedupOrigins = 1024
)

// ringWords is the bitmap of a window in 64-bit words: one more than the
// window needs, so that the word of the highest number never shares its
// slot with a number still in the window (RFC 6479's ring). Advancing the
// window clears only the words it passes over.
const ringWords = DedupWindow/64 + 1

// restartGap is how far below an origin's highest number a number must be
// to mean the origin restarted (it numbers from a random start below
// 2^62, so two runs' numbers are this close with a chance of about 2^-30).
const restartGap = 1 << 32

// window is one origin's recently seen sequence numbers: number n is bit
// n%64 of ring[(n/64)%ringWords], for n within DedupWindow below top.
type window struct {
	origin     string
	top        uint64
	ring       [ringWords]uint64
	prev, next *window // the LRU list, most recent first
}

// accept marks seq seen and reports whether it was new.
func (w *window) accept(seq uint64) bool {
	switch {
	case seq > w.top:
		from, to := w.top/64, seq/64
		if to-from >= ringWords {
			w.ring = [ringWords]uint64{}
		} else {
			for i := from + 1; i <= to; i++ {
				w.ring[i%ringWords] = 0
			}
		}
		w.top = seq
	case w.top-seq >= restartGap:
		// Far below the window: not a late copy of a recent event but a
		// restarted origin, which numbers from a new random start. Start
		// over from it, rather than never filter what it publishes.
		w.ring = [ringWords]uint64{}
		w.top = seq
	case w.top-seq >= DedupWindow:
		// Too old to tell: deliver it (it may be the only copy, late)
		// rather than drop an event that may never have arrived.
		return true
	}
	i, bit := (seq/64)%ringWords, uint64(1)<<(seq%64)
	if w.ring[i]&bit != 0 {
		return false
	}
	w.ring[i] |= bit
	return true
}

// Dedup remembers the identities of recently received events, per origin,
// within DedupWindow and DedupOrigins. It is safe for concurrent use.
type Dedup struct {
	mu         sync.Mutex
	origins    map[string]*window
	head, tail *window
}

// NewDedup returns an empty filter.
func NewDedup() *Dedup { return &Dedup{origins: map[string]*window{}} }

// Accept reports whether the event (origin, seq) is new, and remembers it.
// An event without identity (origin "" or seq 0) is always new.
func (d *Dedup) Accept(origin string, seq uint64) bool {
	if origin == "" || seq == 0 {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.origins[origin]
	if w == nil {
		if len(d.origins) >= DedupOrigins {
			old := d.tail
			d.unlink(old)
			delete(d.origins, old.origin)
		}
		w = &window{origin: origin, top: seq}
		d.origins[origin] = w
		d.pushFront(w)
		return w.accept(seq)
	}
	if d.head != w {
		d.unlink(w)
		d.pushFront(w)
	}
	return w.accept(seq)
}

// Origins is how many origins the filter remembers.
func (d *Dedup) Origins() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.origins)
}

func (d *Dedup) unlink(w *window) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		d.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		d.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

func (d *Dedup) pushFront(w *window) {
	w.next = d.head
	if d.head != nil {
		d.head.prev = w
	}
	d.head = w
	if d.tail == nil {
		d.tail = w
	}
}

// randomStart is where a router's event numbers start: random, so that a
// restarted host does not reuse the numbers of its previous run, which
// other hosts still remember. It stays below 2^62, so that the counter
// never wraps to 0 (no identity) in practice.
func randomStart() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return binary.LittleEndian.Uint64(b[:])>>2 + 1
}
