package mesh

import (
	"sync"
	"sync/atomic"
	"time"
)

// deadlines is the one timer behind every request's deadline. A timer per
// request (time.AfterFunc, then Stop when the reply came first) cost a
// clock read, a lock of the runtime's timer heap and a goroutine for the
// callback on every call; a request now only lowers next when its
// deadline is the earliest, and the timer fires at next and takes out
// whatever is due on every link (requests.expireDue).
type deadlines struct {
	m    *Mesh
	next atomic.Int64  // the earliest deadline the timer waits for (unix ns; 0: none)
	wake chan struct{} // cap 1: next was lowered

	// links is every link that has had a request with a deadline, until
	// it closes: the registry's set is not enough, since a retired link
	// leaves it while its requests still wait.
	mu    sync.Mutex
	links map[*link]struct{}
}

// track makes the timer look at l's requests from now on.
func (d *deadlines) track(l *link) {
	d.mu.Lock()
	d.links[l] = struct{}{}
	d.mu.Unlock()
}

// tracked returns the links to look at, forgetting those that closed (a
// closed link failed its requests itself).
func (d *deadlines) tracked() []*link {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*link, 0, len(d.links))
	for l := range d.links {
		if l.gone.Load() {
			delete(d.links, l)
			continue
		}
		out = append(out, l)
	}
	return out
}

// due tells the timer about a new deadline dl (unix ns).
func (d *deadlines) due(dl int64) {
	for {
		n := d.next.Load()
		if n != 0 && n <= dl {
			return
		}
		if d.next.CompareAndSwap(n, dl) {
			select {
			case d.wake <- struct{}{}:
			default:
			}
			return
		}
	}
}

// loop is the timer; it ends with the mesh.
func (d *deadlines) loop() {
	m := d.m
	defer m.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		if n := d.next.Load(); n != 0 {
			t.Reset(time.Until(time.Unix(0, n)))
		} else {
			t.Stop()
		}
		select {
		case <-t.C:
		case <-d.wake:
			continue
		case <-m.ctx.Done():
			return
		}
		// Forget next before looking, then lower it again with what is
		// left: a request added meanwhile either is seen by the look or
		// lowers next itself (and wakes the loop), so none is missed.
		d.next.Store(0)
		now := time.Now().UnixNano()
		for _, l := range d.tracked() {
			due, next := l.reqs.expireDue(now)
			for _, ch := range due {
				ch <- expired
			}
			if next != 0 {
				d.due(next)
			}
		}
	}
}
