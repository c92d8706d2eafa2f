package mesh

import (
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// advertDelay coalesces a burst of changes (a config reload loading ten
// plugins, a seed that many hosts join at once) into one advertisement;
// 10ms sent twice the bytes of 50ms when 30 hosts joined one seed.
const advertDelay = 50 * time.Millisecond

// adverts sends this host's interest (what it serves) to its direct
// peers, coalescing bursts of changes into one advertisement.
type adverts struct {
	m     *Mesh
	timer coalescer
}

// schedule sends an advertisement after advertDelay.
func (a *adverts) schedule() { a.timer.schedule(advertDelay, a.send) }

// send sends every link this host's own services and topics,
// preceded by its own record when the link may not hold the current one,
// skipping a link whose last advertisement was the same. What hosts
// further away serve travels in their membership records.
func (a *adverts) send() {
	m := a.m
	services, topics := m.local.Interest()
	in := &wire.Interest{Services: services, Topics: topics}
	key := interestKey(in)
	for _, l := range m.links.all() {
		if l.leaving.Load() {
			continue
		}
		in := *in
		l.sentMu.Lock()
		if key == l.lastSent {
			l.sentMu.Unlock()
			continue
		}
		l.lastSent = key
		in.Seq = m.seq.Add(1)
		l.lastSeq = in.Seq
		// The record first: a peer that acks the interest passes the
		// record on (ack.go), so it must hold the one that matches.
		m.members.pushSelf(l)
		err := l.enqueueControl(wire.FrameInterest, &in)
		l.sentMu.Unlock()
		if err != nil {
			m.log.Debug("interest not sent", "node", l.name, "err", err)
		}
	}
}

// interestKey identifies an interest's content, to skip sending the same
// one twice.
func interestKey(in *wire.Interest) string {
	var b strings.Builder
	w := func(ss []string) {
		for _, s := range ss {
			b.WriteString(s)
			b.WriteByte(0)
		}
		b.WriteByte(1)
	}
	w(in.Services)
	w(in.Topics)
	return b.String()
}
