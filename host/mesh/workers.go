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
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case j := <-w.idle:
			w.m.serve(j.l, j.e)
			t.Reset(workerIdle)
		case <-t.C:
			return
		case <-w.m.ctx.Done():
			return
		}
	}
}
