package mesh

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/wire"
	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// TestRebuildTableKeepsTheLastChange: rebuilds run concurrently (every
// link's reader, link changes, local changes call rebuildTable), and the
// table left in place must reflect the last change, not a rebuild that
// read the state before it and finished after. Before rebuilds were
// serialised, a table built from older state could be stored last and
// stand until the next change: in TestStarNoticesDeath a seed kept no
// route to a peer whose interest it held, for as long as the test waited.
func TestRebuildTableKeepsTheLastChange(t *testing.T) {
	b := newHost(t, "b")
	a := newHost(t, "a", withPeers(b.peer(TCP)))
	hosttest.CheckFor(t, 5*time.Second, func() error { return linkErr(a, b) })
	l := a.mesh.links.get(b.id.ID)
	// Bounded in count and time; a few thousand rounds showed a stale
	// table in most runs before the fix.
	const maxRounds = 100_000
	stale, rounds := 0, 0
	for end := time.Now().Add(time.Second); rounds < maxRounds && time.Now().Before(end); rounds++ {
		i := rounds
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						a.mesh.routes.rebuild()
					}
				}
			}()
		}
		// What a reader does with an interest: store it, then rebuild.
		want := fmt.Sprintf("svc%d", i)
		l.interest.Store(&wire.Interest{Seq: uint64(1<<40 + i), Services: []string{want}})
		a.mesh.routes.rebuild()
		close(stop)
		wg.Wait()
		if n := a.mesh.routes.load().nodes[b.id.ID]; n == nil || !slices.Equal(n.services, []string{want}) {
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("in %d of %d rounds the table left in place did not have the interest stored before the last rebuild", stale, rounds)
	}
}
