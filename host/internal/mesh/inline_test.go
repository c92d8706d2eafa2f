package mesh

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/message"
)

// tryEP is an endpoint that can always start at once (router.TryRequester),
// so every request to it is first tried on the link's reader; "slow.*"
// takes slowFor, anything else answers at once.
type tryEP struct {
	slowFor time.Duration
	inline  atomic.Int64 // requests that came through TryRequest
}

func (e *tryEP) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	if strings.HasPrefix(m.Subject, "slow.") {
		time.Sleep(e.slowFor)
	}
	return append([]byte("ok:"), m.Payload...), nil
}

func (e *tryEP) TryRequest(ctx context.Context, m *message.Message) ([]byte, bool, error) {
	e.inline.Add(1)
	out, err := e.Request(ctx, m)
	return out, true, err
}

func (e *tryEP) Post(*message.Message) error { return nil }

// TestInlineDoesNotStarveTheLink: requests that a handler can start at once
// run on the link's reader, but a slow one holds the reader for at most
// 2*inlineTick before another goroutine reads on. While slow requests run,
// fast ones on the same link keep answering at once and pings keep being
// answered: the link is never suspect.
func TestInlineDoesNotStarveTheLink(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			b := newHost(t, "b")
			a := newHost(t, "a", withPeers(b.peer(tr)))
			ep := &tryEP{slowFor: 1500 * time.Millisecond}
			b.serve("work", ep, []string{"slow", "fast"}, nil)
			waitRoute(t, a, "slow.x")
			waitRoute(t, a, "fast.x")
			l := a.mesh.links.get(b.mesh.ID())
			if l == nil {
				t.Fatal("a has no link to b")
			}

			// Slow requests, one after another from several callers, so
			// that the reader meets one whenever the backoff lets it.
			var wg sync.WaitGroup
			slowErr := make(chan error, 4)
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := call(a, "slow.x", fmt.Sprint(i), 10*time.Second)
					if err == nil && out != fmt.Sprintf("ok:%d", i) {
						err = fmt.Errorf("slow reply %q", out)
					}
					slowErr <- err
				}()
			}
			time.Sleep(50 * time.Millisecond) // the slow ones are on b
			// Each fast call must not wait behind a slow one: the bound is
			// 2*inlineTick; 300ms leaves room for a loaded machine and is
			// far below the 1.5s a slow request takes.
			var worst time.Duration
			for i := range 50 {
				start := time.Now()
				out, err := call(a, "fast.x", fmt.Sprint(i), 5*time.Second)
				took := time.Since(start)
				if err != nil || out != fmt.Sprintf("ok:%d", i) {
					t.Fatalf("fast call %d: %q %v", i, out, err)
				}
				worst = max(worst, took)
				if took > 300*time.Millisecond {
					t.Fatalf("fast call %d took %v while slow requests ran: the reader was held", i, took)
				}
				if l.probe.suspect.Load() != 0 {
					t.Fatalf("a suspects its link to b while b serves slow requests")
				}
			}
			wg.Wait()
			close(slowErr)
			for err := range slowErr {
				if err != nil {
					t.Fatalf("slow call: %v", err)
				}
			}
			if ep.inline.Load() == 0 {
				t.Fatal("no request was tried on the reader")
			}
			if strings.Contains(a.logs.String(), "does not answer a probe") {
				t.Fatalf("a's probe went unanswered:\n%s", a.logs.String())
			}
			t.Logf("worst fast call %v; %d requests tried inline", worst, ep.inline.Load())
		})
	}
}
