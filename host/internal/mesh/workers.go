package mesh

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// job is one request from a peer to run on this host; a zero job tells
// the worker that receives it to exit.
type job struct {
	l *link
	e *wire.Envelope
}

// workers run peer requests on goroutines that stay alive between
// requests. A fresh goroutine per request would pay for growing its stack
// on every call into wazero (a guest call needs far more than the initial
// 8 KiB, and copying the stack was a fifth of the CPU of a 64-byte remote
// call); a warm worker has grown it once. An idle worker waits on a plain
// channel receive (a select with an idle timer in it cost measurably on
// every request); a reaper retires idle workers every couple of seconds,
// so a burst does not leave goroutines behind. How many run at once is
// bounded by each link's in-flight limit.
type workers struct {
	m    *Mesh
	idle chan job // unbuffered: a send succeeds only if a worker waits
	wg   sync.WaitGroup

	waiting atomic.Int64 // workers blocked on idle
	used    atomic.Bool  // a job was handed over since the last reap
}

// workerIdle is how often the reaper looks for idle workers.
const workerIdle = 2 * time.Second

func (w *workers) run(j job) {
	w.used.Store(true)
	select {
	case w.idle <- j:
	default:
		w.wg.Add(1)
		go w.work(j)
	}
}

func (w *workers) work(j job) {
	defer w.wg.Done()
	for {
		w.m.inbound.serve(j.l, j.e)
		w.waiting.Add(1)
		j = <-w.idle
		w.waiting.Add(-1)
		if j.l == nil {
			return
		}
	}
}

// reap retires the workers that stayed idle for a whole period, and all of
// them when the mesh closes.
func (w *workers) reap() {
	t := time.NewTicker(workerIdle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if w.used.Swap(false) {
				continue
			}
		case <-w.m.ctx.Done():
		}
		for n := w.waiting.Load(); n > 0; n-- {
			select {
			case w.idle <- job{}:
			default:
				n = 0
			}
		}
		if w.m.ctx.Err() != nil {
			return
		}
	}
}
