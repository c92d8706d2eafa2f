package mesh

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// Membership (PROTOCOL.md section 14). Each host signs a record about
// itself (id, name, listen URLs, the ids it links to, its services and
// topics) and records are flooded over the links: a host that receives a
// record newer than the one it holds passes it on to its other peers. A
// node is alive while a chain of links, each confirmed by both ends'
// records, joins it to this host; so failure detection is the links' own
// (a closed connection at once, silence after the dead time) and a
// neighbour's new record spreads the news. RATIONALE.md says why this and
// not SWIM over the links.

// member is what this host holds about another node, or itself.
type member struct {
	rec   wire.MemberRecord
	entry wire.MemberEntry // Record and Sig as the origin signed them
	reach []string         // where it can be reached, as last reported
	alive bool
	hops  int       // links between this host and it, while alive
	since time.Time // when alive last changed
}

// addrs is where mb can be dialled: as last reported beside its record,
// else its record's own listen URLs.
func (mb *member) addrs() []string {
	if len(mb.reach) > 0 {
		return mb.reach
	}
	return mb.rec.Listen
}

// membership is the mesh's table of members and what each link has been
// sent; it signs this host's own record, applies and floods the others.
type membership struct {
	m          *Mesh
	events     memberEventCounts // for MemberEvents
	flushTimer coalescer         // coalesces changes into one flush

	mu   sync.Mutex
	self *member
	byID map[identity.ID]*member
	// known is, per link, the highest version of each record sent to or
	// received from it: what that peer holds already. A link that comes up
	// starts empty and so is sent everything.
	known map[*link]map[identity.ID]uint64
	// refusedFull counts records refused because maxMembers were held.
	refusedFull uint64
	ttl         time.Duration // see memberTTL
	// selfHold is when the own record may next be sent, while the only
	// change is new links (see addDelay).
	selfHold time.Time
}

// maxMembers bounds the records one host holds: records are signed, but
// anyone can make keys, and a peer must not be able to grow this table
// without bound.
const maxMembers = 10_000

// membersDelay coalesces changes before they are flooded: records from
// many hosts joining at once go out in a few frames. Measured with 50
// hosts joining one seed (before addDelay), 20ms sent 16% more bytes than
// 50ms and 100ms 21% fewer; 50ms is the interest's delay too, and costs
// 50ms per hop when a death is passed on.
const membersDelay = 50 * time.Millisecond

// addDelay is how long a record whose only change is new links is held
// back: a record lists its links, so a seed that fifty hosts join would
// otherwise send its growing record to all of them fifty times. New links
// are not urgent (a new member is known a moment later); lost links, which
// tell the mesh that a host died, go out after membersDelay.
func addDelay(links int) time.Duration {
	return min(max(time.Duration(links)*5*time.Millisecond, membersDelay), time.Second)
}

// membersFrameBytes is where a flush starts a new frame, well under the
// smallest max_frame a peer may announce (1 KiB is the minimum, but one
// record must fit whole, so frames grow to what one record needs).
const membersFrameBytes = 64 << 10

// memberTTL is how long a node that is not alive stays listed (as lost or
// left) before its record is forgotten.
func memberTTL(dead time.Duration) time.Duration { return max(time.Minute, 12*dead) }

// sign encodes and signs r with this host's key.
func (ms *membership) sign(r *wire.MemberRecord) (wire.MemberEntry, error) {
	m := ms.m
	b, err := wire.AppendMemberRecord(nil, r)
	if err != nil {
		return wire.MemberEntry{}, err
	}
	msg := append([]byte(wire.MemberSigContext), b...)
	return wire.MemberEntry{Record: b, Sig: ed25519.Sign(m.self.idt.Key, msg)}, nil
}

// openEntry checks an entry as PROTOCOL.md section 14 says and returns its
// record.
func openEntry(e *wire.MemberEntry) (*wire.MemberRecord, error) {
	r := new(wire.MemberRecord)
	if err := wire.DecodeControl(e.Record, r); err != nil {
		return nil, err
	}
	if len(r.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("member record of node %q: key of %d bytes, want %d", r.ID, len(r.Key), ed25519.PublicKeySize)
	}
	if id := identity.IDOf(r.Key); string(id) != r.ID {
		return nil, fmt.Errorf("member record names node %q but its key is node %s", r.ID, id)
	}
	msg := append([]byte(wire.MemberSigContext), e.Record...)
	if !ed25519.Verify(r.Key, msg, e.Sig) {
		return nil, fmt.Errorf("member record of node %s: the signature does not verify", r.ID)
	}
	for i, id := range r.Links {
		if !validID(id) {
			return nil, fmt.Errorf("member record of node %s: link to %q, which is not a node id", r.ID, id)
		}
		// Sorted and unique, so that liveness can binary-search them.
		if i > 0 && id <= r.Links[i-1] {
			return nil, fmt.Errorf("member record of node %s: links not sorted or repeated at %q", r.ID, id)
		}
	}
	return r, nil
}

// selfRecord is what this host says about itself now; Version is left to
// updateSelf.
func (ms *membership) selfRecord(links []*link) wire.MemberRecord {
	m := ms.m
	services, topics := m.local.Interest()
	r := wire.MemberRecord{ID: string(m.id), Name: m.name, Key: m.self.idt.Key.Public().(ed25519.PublicKey),
		Listen: m.ln.urls(), Services: services, Topics: topics}
	for _, l := range links {
		if !l.leaving.Load() {
			r.Links = append(r.Links, string(l.peer))
		}
	}
	slices.Sort(r.Links)
	return r
}

func sameRecord(a, b *wire.MemberRecord) bool {
	return a.Name == b.Name && a.Left == b.Left && bytes.Equal(a.Key, b.Key) &&
		slices.Equal(a.Listen, b.Listen) && slices.Equal(a.Links, b.Links) &&
		slices.Equal(a.Services, b.Services) && slices.Equal(a.Topics, b.Topics)
}

// updateSelf makes a new own record when what it would say changed, or
// when minVersion (a record of this node from an earlier run) must be
// outdone; ms.mu is held. It reports whether the record changed.
func (ms *membership) updateSelf(links []*link, minVersion uint64) bool {
	m := ms.m
	r := m.members.selfRecord(links)
	cur := ms.self
	if cur != nil && cur.rec.Left {
		return false
	}
	if cur != nil && sameRecord(&cur.rec, &r) && cur.rec.Version >= minVersion {
		return false
	}
	r.Version = uint64(time.Now().UnixNano())
	if cur != nil {
		r.Version = max(r.Version, cur.rec.Version+1)
	}
	r.Version = max(r.Version, minVersion+1)
	e, err := m.members.sign(&r)
	if err != nil {
		m.log.Error("member record not made", "err", err)
		return false
	}
	now := time.Now()
	if cur != nil && minVersion == 0 && onlyAdds(&cur.rec, &r) {
		if !ms.selfHold.After(now) {
			ms.selfHold = now.Add(addDelay(len(r.Links)))
		}
	} else {
		ms.selfHold = time.Time{}
	}
	ms.self = &member{rec: r, entry: e, alive: true}
	return true
}

// onlyAdds reports whether b differs from a only by more links.
func onlyAdds(a, b *wire.MemberRecord) bool {
	if a.Name != b.Name || a.Left != b.Left || !slices.Equal(a.Listen, b.Listen) ||
		!slices.Equal(a.Services, b.Services) || !slices.Equal(a.Topics, b.Topics) || len(b.Links) <= len(a.Links) {
		return false
	}
	for _, id := range a.Links {
		if _, ok := slices.BinarySearch(b.Links, id); !ok {
			return false
		}
	}
	return true
}

// changed brings the own record up to date with the links and
// local services, then recomputes who is alive; it returns the nodes
// that became alive and those that stopped being alive, for the log.
func (ms *membership) changed(links []*link) (found, lost []memberEvent) {
	m := ms.m
	ms.mu.Lock()
	changed := m.members.updateSelf(links, 0)
	found, lost = m.members.recomputeAlive()
	ms.mu.Unlock()
	if changed || len(found) > 0 || len(lost) > 0 {
		m.members.schedule()
	}
	return found, lost
}

// apply takes the entries of a members frame from l.
func (ms *membership) apply(l *link, f *wire.Members) error {
	recs := make([]*wire.MemberRecord, len(f.Entries))
	for i := range f.Entries {
		r, err := openEntry(&f.Entries[i])
		if err != nil {
			return &wire.ProtocolError{Code: wire.ErrProtocol, Msg: "members: " + err.Error()}
		}
		recs[i] = r
	}
	m := ms.m
	ms.mu.Lock()
	known := ms.known[l]
	if known == nil {
		known = map[identity.ID]uint64{}
		ms.known[l] = known
	}
	newer, selfChanged := false, false
	now := time.Now()
	for i, r := range recs {
		id := identity.ID(r.ID)
		known[id] = max(known[id], r.Version)
		if id == m.id {
			// A record of this node from an earlier run (same key) that
			// the mesh still holds: outdo it, or it would win.
			if ms.self != nil && r.Version >= ms.self.rec.Version && !ms.self.rec.Left {
				selfChanged = m.members.updateSelf(m.links.all(), r.Version) || selfChanged
			}
			continue
		}
		cur := ms.byID[id]
		if cur != nil && r.Version <= cur.rec.Version {
			continue
		}
		if cur == nil {
			if len(ms.byID) >= maxMembers {
				if ms.refusedFull++; ms.refusedFull == 1 {
					m.log.Warn("member records refused: this host holds the most it keeps", "max", maxMembers, "node", r.Name, "via", l.name)
				}
				continue
			}
			cur = &member{since: now}
			ms.byID[id] = cur
		}
		e := f.Entries[i]
		cur.rec, cur.entry = *r, wire.MemberEntry{Record: e.Record, Sig: e.Sig}
		cur.reach = e.Reach
		if id == l.peer {
			cur.reach = l.reachable()
		}
		newer = true
	}
	var found, lost []memberEvent
	if newer || selfChanged {
		found, lost = m.members.recomputeAlive()
	}
	ms.mu.Unlock()
	if newer || selfChanged {
		m.members.logEvents(found, lost)
		m.members.schedule()
		m.routes.rebuild()
	}
	return nil
}

// memberEvent is a node that became alive or stopped being alive, copied
// out for the log.
type memberEvent struct {
	id   identity.ID
	name string
	hops int
	left bool
}

// recomputeAlive finds which nodes a chain of confirmed links joins to
// this host; ms.mu is held.
func (ms *membership) recomputeAlive() (found, lost []memberEvent) {
	m := ms.m
	if ms.self == nil {
		return nil, nil
	}
	links := func(id identity.ID) []string {
		if id == m.id {
			return ms.self.rec.Links
		}
		if mb := ms.byID[id]; mb != nil && !mb.rec.Left {
			return mb.rec.Links
		}
		return nil
	}
	hops := map[identity.ID]int{m.id: 0}
	queue := []identity.ID{m.id}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, s := range links(id) {
			nb := identity.ID(s)
			if _, seen := hops[nb]; seen {
				continue
			}
			// A link counts when both ends list it: the far end's own
			// record is the proof that it is still there.
			if _, both := slices.BinarySearch(links(nb), string(id)); nb != m.id && !both {
				continue
			}
			hops[nb] = hops[id] + 1
			queue = append(queue, nb)
		}
	}
	now := time.Now()
	for id, mb := range ms.byID {
		h, alive := hops[id]
		mb.hops = h
		if alive == mb.alive {
			continue
		}
		mb.alive, mb.since = alive, now
		ev := memberEvent{id: id, name: mb.rec.Name, hops: h, left: mb.rec.Left}
		if alive {
			found = append(found, ev)
		} else {
			lost = append(lost, ev)
		}
	}
	return found, lost
}

func (ms *membership) logEvents(found, lost []memberEvent) {
	m := ms.m
	for _, ev := range found {
		if m.links.get(ev.id) != nil {
			continue
		}
		ms.events.found.Add(1)
		m.log.Info("peer found", "source", FoundGossip, "node", ev.name, "id", ev.id.Short(), "hops", ev.hops)
	}
	for _, ev := range lost {
		if ev.left {
			ms.events.left.Add(1)
			m.log.Info("peer left", "node", ev.name, "id", ev.id.Short())
		} else {
			ms.events.lost.Add(1)
			m.log.Info("peer lost: no chain of live links reaches it", "node", ev.name, "id", ev.id.Short())
		}
	}
}

func (ms *membership) schedule() { ms.scheduleIn(membersDelay) }

func (ms *membership) scheduleIn(d time.Duration) { ms.flushTimer.schedule(d, ms.flush) }

// flush sends every link the records it does not hold yet: the own
// record, those of live nodes and those that announce a leave.
func (ms *membership) flush() {
	m := ms.m
	links := m.links.all()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.self == nil {
		return
	}
	var send []*member
	if wait := time.Until(ms.selfHold); wait > 0 {
		// Held back (new links only): the flush at the end of the hold
		// sends it.
		defer m.members.scheduleIn(wait)
	} else {
		send = append(send, ms.self)
	}
	for _, mb := range ms.byID {
		if mb.alive || mb.rec.Left {
			send = append(send, mb)
		}
	}
	// Deterministic order: a peer sees the same frames for the same state.
	slices.SortFunc(send, func(a, b *member) int { return strings.Compare(a.rec.ID, b.rec.ID) })
	// Each record's entry, made once for all the links it goes to: where
	// this host reaches the origin, when it has a link to it.
	linked := make(map[identity.ID]*link, len(links))
	for _, l := range links {
		linked[l.peer] = l
	}
	entries := make(map[*member]wire.MemberEntry, len(send))
	entryOf := func(mb *member) wire.MemberEntry {
		e, ok := entries[mb]
		if !ok {
			e = mb.entry
			e.Reach = mb.reach
			if dl := linked[identity.ID(mb.rec.ID)]; dl != nil {
				e.Reach = dl.reachable()
			}
			entries[mb] = e
		}
		return e
	}
	for _, l := range links {
		if l.leaving.Load() {
			continue
		}
		known := ms.known[l]
		if known == nil {
			known = map[identity.ID]uint64{}
			ms.known[l] = known
		}
		var f wire.Members
		size := 0
		for _, mb := range send {
			id := identity.ID(mb.rec.ID)
			if known[id] >= mb.rec.Version {
				continue
			}
			known[id] = mb.rec.Version
			e := entryOf(mb)
			f.Entries = append(f.Entries, e)
			size += len(e.Record) + len(e.Sig) + 16
			if size >= membersFrameBytes {
				m.members.send(l, &f)
				f, size = wire.Members{}, 0
			}
		}
		if len(f.Entries) > 0 {
			m.members.send(l, &f)
		}
	}
}

func (ms *membership) send(l *link, f *wire.Members) {
	m := ms.m
	if err := l.enqueueControl(wire.FrameMembers, f); err != nil {
		m.log.Debug("member records not sent", "node", l.name, "err", err)
	}
}

// leave tells every peer, ahead of the GoAway, that this host
// leaves: its last record has left set and no links, so the whole mesh
// drops it at once rather than after its neighbours' records arrive.
func (ms *membership) leave(links []*link) {
	m := ms.m
	ms.mu.Lock()
	if ms.self == nil || ms.self.rec.Left {
		ms.mu.Unlock()
		return
	}
	r := m.members.selfRecord(nil)
	r.Left, r.Links = true, nil
	r.Version = max(uint64(time.Now().UnixNano()), ms.self.rec.Version+1)
	e, err := m.members.sign(&r)
	if err != nil {
		ms.mu.Unlock()
		return
	}
	ms.self = &member{rec: r, entry: e}
	ms.mu.Unlock()
	for _, l := range links {
		m.members.send(l, &wire.Members{Entries: []wire.MemberEntry{e}})
	}
}

// forgetLink drops what was sent to a link that closed.
func (ms *membership) forgetLink(l *link) {
	ms.mu.Lock()
	delete(ms.known, l)
	ms.mu.Unlock()
}

// gc forgets nodes that have not been alive for the members' ttl.
func (ms *membership) gc(now time.Time) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for id, mb := range ms.byID {
		if !mb.alive && now.Sub(mb.since) > ms.ttl {
			delete(ms.byID, id)
			// What each link was sent of it goes too: a host that churns
			// through ids must not grow these maps on its long-lived links.
			for _, known := range ms.known {
				delete(known, id)
			}
		}
	}
}

// liveMember is what the routing table takes from a live member's record.
type liveMember struct {
	name     string
	services []string
	topics   []string
	listen   []string
	links    []string // sorted
}

// live returns the live members, for the routing table.
func (ms *membership) live() map[identity.ID]liveMember {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make(map[identity.ID]liveMember, len(ms.byID))
	for id, mb := range ms.byID {
		if !mb.alive {
			continue
		}
		out[id] = liveMember{name: mb.rec.Name, services: mb.rec.Services, topics: mb.rec.Topics, listen: mb.addrs(), links: mb.rec.Links}
	}
	return out
}

// The states of a membership record (MemberInfo.State). Lost and left are
// the control API's peer states of the same name, which Peers passes on;
// an alive member further away is listed there as control.PeerMember.
const (
	MemberAlive = "alive"
	MemberLost  = string(control.PeerLost)
	MemberLeft  = string(control.PeerLeft)
)

// MemberInfo is one node this host knows through membership.
type MemberInfo struct {
	ID, Name string
	State    string // MemberAlive, MemberLost or MemberLeft
	Hops     int    // links away, while alive
	Since    time.Time
	Listen   []string
	Services []string
	Topics   []string
}

// Members lists every node this host holds a membership record of,
// sorted by name then id; this host is not included.
func (m *Mesh) Members() []MemberInfo {
	ms := &m.members
	ms.mu.Lock()
	out := make([]MemberInfo, 0, len(ms.byID))
	for id, mb := range ms.byID {
		st := MemberAlive
		switch {
		case mb.rec.Left:
			st = MemberLeft
		case !mb.alive:
			st = MemberLost
		}
		out = append(out, MemberInfo{ID: string(id), Name: mb.rec.Name, State: st, Hops: mb.hops, Since: mb.since,
			Listen: mb.addrs(), Services: mb.rec.Services, Topics: mb.rec.Topics})
	}
	ms.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
