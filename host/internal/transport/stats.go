package transport

import (
	"sort"
	"time"
)

// ConnInfo describes one open connection.
type ConnInfo struct {
	ID       uint32
	Entry    string // "dial[0] tls://a:1" or "accept[0] tcp://..."
	Remote   string
	Instance int
	BytesIn  uint64
	BytesOut uint64
	Since    time.Time
}

// Stats is a snapshot of a transport's state and counters.
type Stats struct {
	Conns                            []ConnInfo
	Accepted, Dialed, Reconnects     uint64
	DialErrors, Refused              uint64
	BytesIn, BytesOut                uint64
	MessagesIn, MessagesOut, Dropped uint64
	// OwnDropped counts messages delivered with this host's origin: its
	// own, come back, dropped.
	OwnDropped uint64
	// Duplicates counts events delivered with another host's identity
	// that this host had received already (through the mesh or another
	// transport), dropped.
	Duplicates               uint64
	Errors, InstanceFailures uint64
	// Events counts the plugin's events and EventTime the time spent in
	// them (guest code and the actions it took).
	Events                              uint64
	EventTime                           time.Duration
	Closes                              map[string]uint64
	Listening                           []string
	DialEntries                         []string
	Instances, InstancesAlive, Restarts int
}

// Stats returns the transport's connections and counters.
func (t *Transport) Stats() Stats {
	st := Stats{
		Accepted: t.stats.accepted.Load(), Dialed: t.stats.dialed.Load(), Reconnects: t.stats.reconnects.Load(),
		DialErrors: t.stats.dialErrors.Load(), Refused: t.stats.refused.Load(),
		BytesIn: t.stats.bytesIn.Load(), BytesOut: t.stats.bytesOut.Load(),
		MessagesIn: t.stats.messagesIn.Load(), MessagesOut: t.stats.messagesOut.Load(), Dropped: t.stats.dropped.Load(), OwnDropped: t.stats.ownDropped.Load(),
		Duplicates: t.stats.duplicates.Load(),
		Errors:     t.stats.errors.Load(), InstanceFailures: t.stats.instanceFailures.Load(),
		Events: t.stats.events.Load(), EventTime: time.Duration(t.stats.eventNanos.Load()),
		Closes:    map[string]uint64{},
		Instances: len(t.slots), Restarts: int(t.v.Restarts()),
	}
	for _, s := range t.slots {
		if t.v.SlotAlive(s.i) {
			st.InstancesAlive++
		}
	}
	for _, d := range t.cfg.Dial {
		st.DialEntries = append(st.DialEntries, d.Raw)
	}
	for _, a := range t.Addrs() {
		st.Listening = append(st.Listening, "tcp://"+a.String())
	}
	t.mu.Lock()
	for r, n := range t.closes {
		st.Closes[r] = n
	}
	for _, c := range t.conns {
		st.Conns = append(st.Conns, ConnInfo{ID: c.id, Entry: c.entry, Remote: c.remote, Instance: c.slot.i,
			BytesIn: c.in.Load(), BytesOut: c.out.Load(), Since: c.since})
	}
	t.mu.Unlock()
	sort.Slice(st.Conns, func(i, j int) bool { return st.Conns[i].ID < st.Conns[j].ID })
	return st
}
