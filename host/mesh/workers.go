package mesh

import (
	"sync"
	"time"

	"github.com/pycomms/pycomms-host/host/wire"
)

// job is one request from a peer to run on this host.
type job struct {
	l *link
	e *wire.Envelope
}

// workers run peer requests on goroutines that stay alive between
// requests. A fresh goroutine per request would pay for growing its stack
// on every call into wazero (a guest call needs far more than the initial
// 8 KiB, and copying the stack was a fifth of the CPU of a 64-byte remote
// call); a warm worker has grown it once. Idle workers exit after a while,
// so a burst does not leave goroutines behind, and the number that run at
// once is bounded by each link's in-flight limit.
type workers struct {
	m    *Mesh
	idle chan job // unbuffered: a send succeeds only if a worker waits
	wg   sync.WaitGroup
}

// workerIdle is how long a worker waits for its next request.
const workerIdle = 2 * time.Second

func (w *workers) run(j job) {
	select {
	case w.idle <- j:
	default:
		w.wg.Add(1)
		go w.work(j)
	}
}

func (w *workers) work(j job) {
	defer w.wg.Done()
	w.m.serve(j.l, j.e)
	// A ticker, not a timer reset per request: a worker exits after one to
	// two idle periods, and the hot path does no timer bookkeeping.
	t := time.NewTicker(workerIdle)
	defer t.Stop()
	busy := true
	for {
		select {
		case j := <-w.idle:
			w.m.serve(j.l, j.e)
			busy = true
		case <-t.C:
			if !busy {
				return
			}
			busy = false
		case <-w.m.ctx.Done():
			return
		}
	}
}
