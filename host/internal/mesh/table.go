package mesh

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/identity"
)

// node is another host of the mesh as this host sees it.
type node struct {
	id       identity.ID
	name     string
	services []string
	topics   []string
	direct   *link    // the link to it, or nil
	via      *link    // the relay's link when direct is nil
	listen   []string // where membership says it can be reached
}

// far reports whether n is known only through membership, with neither a
// link nor a relay: a message to it waits for a direct link.
func (n *node) far() bool { return n.direct == nil && n.via == nil }

// out is the link a message to n leaves on, nil for a far node.
func (n *node) out() *link {
	if n.direct != nil {
		return n.direct
	}
	return n.via
}

// providers are the nodes serving one service: the directly linked ones
// when there are any (fewer links crossed), else the relayed ones.
// Requests rotate over them.
type providers struct {
	nodes []*node
	// next is shared with the providers of the same service in the
	// tables before and after, so that a rebuild (a record or interest
	// arriving) does not restart the rotation.
	next *atomic.Uint32
}

// pick returns the next provider in rotation, skipping one whose link is
// suspect, closing or leaving (liveness.go) while another is usable: such
// a link would hold the request until it is declared dead. When every
// provider is avoided the rotation stands.
func (p *providers) pick() *node {
	if len(p.nodes) == 1 {
		return p.nodes[0]
	}
	i := int(p.next.Add(1))
	for k := range len(p.nodes) {
		n := p.nodes[(i+k)%len(p.nodes)]
		if l := n.out(); l == nil || !l.avoid() {
			return n
		}
	}
	return p.nodes[i%len(p.nodes)]
}

// table is one immutable snapshot of what the rest of the mesh serves,
// rebuilt on every change of links or interest. Lookups take no lock.
type table struct {
	self      identity.ID
	selfName  string
	nodes     map[identity.ID]*node
	services  map[string]*providers
	depth     int
	listeners []*node          // nodes with topics, by id
	names     map[string]*node // name -> a node of that name (see clash)
	// clash lists, per name used by more than one node (this host
	// included), every id that uses it, sorted. Such a name addresses no
	// node (see resolve).
	clash map[string][]identity.ID
}

// buildTable indexes the live links, what they advertised, and the live
// members known only through membership (far nodes, reached by linking to
// them when a message needs them).
func buildTable(self identity.ID, selfName string, links []*link, members map[identity.ID]liveMember, prev *table) *table {
	t := &table{self: self, selfName: selfName, nodes: map[identity.ID]*node{},
		services: map[string]*providers{}, names: map[string]*node{}}
	// Links in id order, so that which relay a node is reached through
	// does not depend on map order.
	slices.SortFunc(links, func(a, b *link) int { return strings.Compare(string(a.peer), string(b.peer)) })
	for _, l := range links {
		n := &node{id: l.peer, name: l.name, direct: l}
		if in := l.interest.Load(); in != nil {
			n.services, n.topics = in.Services, in.Topics
		}
		t.nodes[l.peer] = n
	}
	for id, f := range members {
		if id == self {
			continue
		}
		if n := t.nodes[id]; n != nil {
			// A new link whose interest is on its way: the node's own
			// record stands in, so that linking to a node never makes one
			// of its services vanish for a moment.
			if n.services == nil && n.topics == nil {
				n.services, n.topics = f.services, f.topics
			}
			continue
		}
		n := &node{id: id, name: f.name, services: f.services, topics: f.topics, listen: f.listen}
		// A relay is a direct peer whose record and the node's list each
		// other, the lowest id if several: the first messages go through
		// it while this host links to the node.
		for _, l := range links {
			r, ok := members[l.peer]
			if !ok {
				continue
			}
			if _, ok := slices.BinarySearch(f.links, string(l.peer)); !ok {
				continue
			}
			if _, ok := slices.BinarySearch(r.links, string(id)); ok {
				n.via = l
				break
			}
		}
		t.nodes[id] = n
	}
	direct := map[string][]*node{}
	relayed := map[string][]*node{}
	far := map[string][]*node{}
	for _, n := range t.nodes {
		for _, s := range n.services {
			if abi.ValidateSubject(s) != nil {
				continue
			}
			switch {
			case n.direct != nil:
				direct[s] = append(direct[s], n)
			case n.far():
				far[s] = append(far[s], n)
			default:
				relayed[s] = append(relayed[s], n)
			}
		}
		if len(n.topics) > 0 {
			t.listeners = append(t.listeners, n)
		}
		t.names[n.name] = n
	}
	// Names must be unique in a mesh; a clash is found here once per
	// rebuild rather than by every caller that needs it.
	t.clash = map[string][]identity.ID{}
	ids := map[string][]identity.ID{selfName: {self}}
	for _, n := range t.nodes {
		ids[n.name] = append(ids[n.name], n.id)
	}
	for name, list := range ids {
		if len(list) > 1 {
			slices.Sort(list)
			t.clash[name] = list
		}
	}
	byID := func(a, b *node) int { return strings.Compare(string(a.id), string(b.id)) }
	for _, tier := range []map[string][]*node{relayed, far} {
		for s, ns := range tier {
			if _, ok := direct[s]; !ok {
				direct[s] = ns
			}
		}
	}
	for s, ns := range direct {
		slices.SortFunc(ns, byID)
		p := &providers{nodes: ns, next: new(atomic.Uint32)}
		if prev != nil && prev.services[s] != nil {
			p.next = prev.services[s].next
		}
		t.services[s] = p
		if d := strings.Count(s, ".") + 1; d > t.depth {
			t.depth = d
		}
	}
	slices.SortFunc(t.listeners, byID)
	return t
}

// lookup returns the providers of the longest service serving s, trying
// the proper prefixes of s that end at a '.', deepest first (the same rule
// as the local router).
func (t *table) lookup(s string) *providers {
	v, _ := abi.LongestService(t.services, t.depth, s)
	return v
}

// resolve finds the node a reference names: an id, a name, or a prefix
// of an id of at least 6 characters. self is true when it names this
// host. A full id names its node even when another node has a name equal
// to it: ids are proved in every handshake, names are only claimed. Any
// other reference must match exactly one node, as a name or as an id
// prefix: a name that several nodes claim (any member can claim any name,
// including this host's) or a prefix that several ids share resolves to
// none, and ambiguous lists the ids that match, so that the caller can
// refuse with them instead of silently picking one.
func (t *table) resolve(ref string) (n *node, self bool, ambiguous []identity.ID) {
	if ref == string(t.self) {
		return nil, true, nil
	}
	if n := t.nodes[identity.ID(ref)]; n != nil {
		return n, false, nil
	}
	var match []identity.ID
	if ids, ok := t.clash[ref]; ok {
		match = append(match, ids...)
	} else if ref == t.selfName {
		match = append(match, t.self)
	} else if n := t.names[ref]; n != nil {
		match = append(match, n.id)
	}
	// A reference that is also an id prefix matches those ids too: a
	// member named after the start of another node's id (the peers table
	// shows 12 characters of each id) must not capture the calls meant
	// for that node.
	if len(ref) >= 6 && isIDPrefix(ref) {
		if strings.HasPrefix(string(t.self), ref) {
			match = append(match, t.self)
		}
		for id := range t.nodes {
			if strings.HasPrefix(string(id), ref) {
				match = append(match, id)
			}
		}
	}
	slices.Sort(match)
	match = slices.Compact(match)
	switch {
	case len(match) == 0:
		return nil, false, nil
	case len(match) > 1:
		return nil, false, match
	case match[0] == t.self:
		return nil, true, nil
	}
	return t.nodes[match[0]], false, nil
}

// isIDPrefix reports whether s uses only the characters of a node id, so
// that the prefix scan is skipped for names that cannot be one.
func isIDPrefix(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func validID(s string) bool {
	_, err := identity.ParseID(s)
	return err == nil
}

// routes is the routing table: an immutable *table behind an atomic
// pointer, so that every message reads it without a lock, rebuilt from
// the links and the live members whenever either changes.
type routes struct {
	m         *Mesh
	cur       atomic.Pointer[table]
	rebuildMu sync.Mutex // serialises rebuild

	waitMu sync.Mutex
	waitCh chan struct{} // closed and replaced at each rebuild (and failed dial)

	clashes sync.Map // name -> struct{}: clashes already logged
}

func (rt *routes) init(m *Mesh) {
	rt.m, rt.waitCh = m, make(chan struct{})
	rt.cur.Store(buildTable(m.id, m.name, nil, nil, nil))
}

// load returns the current table.
func (rt *routes) load() *table { return rt.cur.Load() }

// rebuild indexes the live links, what they advertised and the live
// members, and wakes whoever waits for a route.
func (rt *routes) rebuild() {
	m := rt.m
	// One rebuild at a time: each reads the state after the change that
	// called it, so the table stored last reflects the last change. Two
	// at once could store, last, the one that read the older state, and
	// it would stand until the next change.
	rt.rebuildMu.Lock()
	defer rt.rebuildMu.Unlock()
	links := m.links.all()
	live := links[:0]
	for _, l := range links {
		if !l.leaving.Load() {
			live = append(live, l)
		}
	}
	t := buildTable(m.id, m.name, live, m.members.live(), rt.cur.Load())
	rt.cur.Store(t)
	rt.wake()
	for name, ids := range t.clash {
		if _, seen := rt.clashes.LoadOrStore(name, struct{}{}); !seen {
			m.log.Warn("node name clash: names must be unique in a mesh; the name addresses none of these nodes, address them by id",
				"name", name, "ids", ids)
		}
	}
}

// wake wakes the messages waiting for a link to a far node:
// the table changed, or a dial gave up.
func (rt *routes) wake() {
	rt.waitMu.Lock()
	close(rt.waitCh)
	rt.waitCh = make(chan struct{})
	rt.waitMu.Unlock()
}

// changed returns a channel closed at the next rebuild of the table
// or failed dial of a discovered host.
func (rt *routes) changed() <-chan struct{} {
	rt.waitMu.Lock()
	defer rt.waitMu.Unlock()
	return rt.waitCh
}

// coalescer runs a function once after a delay, however many times it is
// scheduled meanwhile; a shorter delay asked for meanwhile brings the run
// forward.
type coalescer struct {
	mu    sync.Mutex
	timer *time.Timer
	due   time.Time
}

func (c *coalescer) schedule(delay time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	due := time.Now().Add(delay)
	if c.timer != nil {
		if !due.Before(c.due) || !c.timer.Stop() {
			return
		}
	}
	c.due = due
	c.timer = time.AfterFunc(delay, func() {
		c.mu.Lock()
		c.timer = nil
		c.mu.Unlock()
		f()
	})
}
