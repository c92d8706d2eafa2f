package compare

import (
	"fmt"
	"time"
)

// publisher is one side of a pub/sub comparison.
type publisher struct {
	// publish sends one event; accepted is false when the event was
	// refused (our link's send buffer stayed full until the deadline).
	publish  func(deadline time.Time) (accepted bool, err error)
	flush    func() error
	received func() uint64
}

// drainQuiet is how long the received count may stand still before a
// run counts what has not arrived as lost.
const drainQuiet = 300 * time.Millisecond

// publishFor publishes events as fast as the publisher takes them for d
// (or, with rate > 0, at rate events per second), then waits until every
// accepted event has arrived or the count stands still for drainQuiet
// (at most 10 s). It returns the sample (Calls = events received, Wall =
// from the first publish to the last arrival), how many events were
// published and the rate they were published at (which falls short of
// rate when the publisher cannot keep up).
func publishFor(p publisher, d time.Duration, rate float64) (Sample, int, float64, error) {
	base := p.received()
	sent, accepted := 0, 0
	var pubRate float64
	var start, last time.Time
	s, err := around(func() (int, error) {
		start = time.Now()
		end := start.Add(d)
		for {
			now := time.Now()
			if now.After(end) {
				break
			}
			n := 256
			// Our publisher waits for room on a congested link until
			// this deadline, as a NATS client waits on a full socket.
			deadline := now.Add(time.Second)
			if rate > 0 {
				due := int(rate*now.Sub(start).Seconds()) - sent
				if due <= 0 {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				n = min(due, 4096)
			}
			for range n {
				ok, err := p.publish(deadline)
				if err != nil {
					return 0, err
				}
				sent++
				if ok {
					accepted++
				}
			}
		}
		pubRate = perSecond(sent, time.Since(start))
		if err := p.flush(); err != nil {
			return 0, err
		}
		got := p.received() - base
		last = time.Now()
		limit := last.Add(10 * time.Second)
		for got < uint64(accepted) && time.Since(last) < drainQuiet && time.Now().Before(limit) {
			time.Sleep(time.Millisecond)
			if g := p.received() - base; g != got {
				got, last = g, time.Now()
			}
		}
		return int(got), nil
	})
	if err != nil {
		return Sample{}, 0, 0, err
	}
	if s.Calls == 0 {
		return Sample{}, sent, pubRate, errNoEvents
	}
	// The rate counts up to the last arrival, not the quiet wait after it
	// when some events were lost.
	s.Wall = last.Sub(start)
	return s, sent, pubRate, nil
}

// PubSub compares events per second received by one Wasm subscriber on the
// far host (over TLS) with a NATS subscriber fed by one publisher (1→1),
// both unpaced, at size bytes; then, in every round, publishes to our
// subscriber paced at the rate NATS reached in that round and counts the
// events that did not arrive.
func (e *Env) PubSub(size, rounds int, d time.Duration) ([]Row, error) {
	pl := payload(size)
	ours := publisher{
		publish:  func(dl time.Time) (bool, error) { return e.OursTLS.Publish(pl, dl) },
		flush:    func() error { return nil },
		received: e.OursTLS.Received,
	}
	nats := publisher{
		publish:  func(time.Time) (bool, error) { return true, e.NATS.Publish(pl) },
		flush:    e.NATS.Flush,
		received: e.NATS.Received,
	}
	for name, p := range map[string]publisher{cOursTLS: ours, cNATS: nats} {
		if _, _, _, err := publishFor(p, 50*time.Millisecond, 0); err != nil {
			return nil, fmt.Errorf("compare: warming pub/sub %s: %w", name, err)
		}
	}
	s := map[string][]Sample{}
	var sent, lost int
	var pubRates []float64
	for r := range max(rounds, 1) {
		for _, name := range []string{cOursTLS, cNATS} {
			p := map[string]publisher{cOursTLS: ours, cNATS: nats}[name]
			smp, _, _, err := publishFor(p, d, 0)
			if err != nil {
				return nil, fmt.Errorf("compare: pub/sub %s, round %d: %w", name, r+1, err)
			}
			s[name] = append(s[name], smp)
		}
		rate := s[cNATS][r].Rate()
		smp, n, pr, err := publishFor(ours, d, rate)
		pubRates = append(pubRates, pr)
		if err != nil {
			return nil, fmt.Errorf("compare: paced pub/sub, round %d: %w", r+1, err)
		}
		sent += n
		lost += n - smp.Calls
	}
	sz := SizeName(size)
	fig := fmt.Sprintf("pub/sub events/s into one Wasm subscriber on the other host, %s", sz)
	rows := []Row{withUnit(row("x_nats_events", fig, s, cOursTLS, cNATS, "NATS 1→1", eventsPerS), "events/s")}
	frac := 0.0
	if sent > 0 {
		frac = float64(lost) / float64(sent)
	}
	natsRates := make([]float64, 0, len(s[cNATS]))
	for _, x := range s[cNATS] {
		natsRates = append(natsRates, x.Rate())
	}
	rows = append(rows, Row{
		Key:    "dropped_frac",
		Figure: fmt.Sprintf("same, publisher paced at NATS's rate: events dropped, %s", sz),
		Ours:   fmt.Sprintf("%d of %d (published at %s/s)", lost, sent, si(stat(pubRates).Median)),
		Base:   fmt.Sprintf("pace: NATS's %s events/s", si(stat(natsRates).Median)),
		Ratio:  Stat{Median: frac, Min: frac, Max: frac, N: 1}, Fraction: true, OursValue: float64(lost), Unit: "dropped",
	})
	return rows, nil
}
