package mesh

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The descriptions below are what hosttest.CheckFor's failures show: each
// check returns an error that says which host held what, so that a flake
// can be read from its log.

// describeHost says what h holds: its links, the nodes of its routing
// table (how each is reached and what it serves), and the members it does
// not hold as alive.
func describeHost(h *host) string {
	var links []string
	for _, l := range h.mesh.links.all() {
		how := "accepted"
		if l.dialed {
			how = "dialed"
		}
		links = append(links, fmt.Sprintf("%s (%s, since %v, gone %v)", l.name, how, time.Since(l.since).Round(time.Millisecond), l.gone.Load()))
	}
	slices.Sort(links)
	t := h.mesh.routes.load()
	var nodes []string
	for _, n := range t.nodes {
		how := "far"
		switch {
		case n.direct != nil:
			how = "linked"
		case n.via != nil:
			how = "via " + n.via.name
		}
		nodes = append(nodes, fmt.Sprintf("%s %s serving %v topics %v", n.name, how, n.services, n.topics))
	}
	slices.Sort(nodes)
	var notAlive []string
	for _, mb := range h.mesh.Members() {
		if mb.State != MemberAlive {
			notAlive = append(notAlive, mb.Name+" "+mb.State)
		}
	}
	return fmt.Sprintf("%s holds links %v; routes to %v; members not alive %v", h.name, links, nodes, notAlive)
}

// holds returns nil when ok, else an error saying what was waited for and
// what each of hosts holds.
func holds(ok bool, what string, hosts ...*host) error {
	if ok {
		return nil
	}
	var ds []string
	for _, h := range hosts {
		ds = append(ds, describeHost(h))
	}
	return fmt.Errorf("%s: %s", what, strings.Join(ds, "; "))
}

// routeErr returns nil when h routes subj to n providers (any number when
// n is 0), else says how h routes it.
func routeErr(h *host, subj string, n int) error {
	p := h.mesh.routes.load().lookup(subj)
	if p != nil && (n == 0 || len(p.nodes) == n) {
		return nil
	}
	want := "a route"
	if n > 0 {
		want = fmt.Sprintf("%d providers", n)
	}
	return fmt.Errorf("%s %s for %s, want %s; %s", h.name, describeRoute(h, subj), subj, want, describeHost(h))
}

// noRouteErr returns nil when h has no route for subj.
func noRouteErr(h *host, subj string) error {
	if h.mesh.routes.load().lookup(subj) == nil {
		return nil
	}
	return fmt.Errorf("%s still %s for %s", h.name, describeRoute(h, subj), subj)
}

// linkErr returns nil when h holds a link to each of to.
func linkErr(h *host, to ...*host) error {
	for _, o := range to {
		if h.mesh.links.get(o.id.ID) == nil {
			return fmt.Errorf("%s has no link to %s; %s", h.name, o.name, describeHost(h))
		}
	}
	return nil
}

// listenersErr returns nil when h's table holds n nodes with topics.
func listenersErr(h *host, n int) error {
	if got := len(h.mesh.routes.load().listeners); got != n {
		return fmt.Errorf("%s routes events to %d hosts, want %d; %s", h.name, got, n, describeHost(h))
	}
	return nil
}

// allAliveErr returns nil when every host holds every other as an alive
// member, else names the first that does not and what it holds.
func allAliveErr(hosts []*host) error {
	for i, h := range hosts {
		for j, o := range hosts {
			if i == j {
				continue
			}
			mb, ok := memberOf(h, o)
			if !ok {
				return fmt.Errorf("%s holds no member record of %s; %s", h.name, o.name, describeHost(h))
			}
			if mb.State != MemberAlive {
				return fmt.Errorf("%s holds %s as %s; %s", h.name, o.name, mb.State, describeHost(h))
			}
		}
	}
	return nil
}

// describeRoute says how h routes subj: to which node, over what, or not
// at all.
func describeRoute(h *host, subj string) string {
	p := h.mesh.routes.load().lookup(subj)
	if p == nil {
		return "has no route"
	}
	var parts []string
	for _, n := range p.nodes {
		switch {
		case n.direct != nil:
			parts = append(parts, fmt.Sprintf("%s over its link (gone %v, leaving %v, suspect %v)", n.name, n.direct.gone.Load(), n.direct.leaving.Load(), n.direct.probe.suspect.Load() != 0))
		case n.via != nil:
			parts = append(parts, fmt.Sprintf("%s via %s", n.name, n.via.name))
		default:
			parts = append(parts, n.name+" as a far member")
		}
	}
	return "routes to " + strings.Join(parts, ", ")
}

// convergedErr says which host does not yet know every other one as a
// live member with its services, and what it holds instead.
func convergedErr(hosts []*host) error {
	for i, h := range hosts {
		t := h.mesh.routes.load()
		if len(t.nodes) != len(hosts)-1 {
			var names []string
			for _, n := range t.nodes {
				names = append(names, n.name)
			}
			return fmt.Errorf("%s routes to %d hosts, want %d: %v", h.name, len(t.nodes), len(hosts)-1, names)
		}
		var notAlive []string
		for _, mb := range h.mesh.Members() {
			if mb.State != "alive" {
				notAlive = append(notAlive, mb.Name+" "+mb.State)
			}
		}
		if n := len(h.mesh.Members()); n != len(hosts)-1 || len(notAlive) > 0 {
			return fmt.Errorf("%s holds %d members, want %d alive; not alive: %v", h.name, n, len(hosts)-1, notAlive)
		}
		for j := range hosts {
			if s := fmt.Sprintf("svc%02d.x", j); j != i && t.lookup(s) == nil {
				o := hosts[j]
				what := "no link"
				if l := h.mesh.links.get(o.id.ID); l != nil {
					what = fmt.Sprintf("a link (since %v) with interest %+v", time.Since(l.since).Round(time.Millisecond), l.interest.Load())
				}
				mb, _ := memberOf(h, o)
				svc, _ := o.router.Interest()
				return fmt.Errorf("%s has no route for %s: it holds %s, and %s's record as %s with services %v; %s serves %v", h.name, s, what, o.name, mb.State, mb.Services, o.name, svc)
			}
		}
	}
	return nil
}

// linksTo says which hosts hold a link to target, and how the link looks
// from each end.
func linksTo(hosts []*host, target *host) string {
	var out []string
	for _, h := range hosts {
		if h == target {
			continue
		}
		if l := h.mesh.links.get(target.id.ID); l != nil {
			out = append(out, fmt.Sprintf("%s has a link to %s (dialed %v, since %v, last frame %v ago, gone %v)",
				h.name, target.name, l.dialed, time.Since(l.since).Round(time.Millisecond),
				time.Since(time.Unix(0, l.lastSeen.Load())).Round(time.Millisecond), l.gone.Load()))
		}
	}
	for _, l := range target.mesh.links.all() {
		out = append(out, fmt.Sprintf("%s still holds a link to %s (dialed %v, since %v, gone %v)",
			target.name, l.name, l.dialed, time.Since(l.since).Round(time.Millisecond), l.gone.Load()))
	}
	if len(out) == 0 {
		return "no host holds a link to " + target.name
	}
	return strings.Join(out, "; ")
}

// joinedErr returns nil when a and b each hold a link to the other.
func joinedErr(a, b *host) error {
	if err := linkErr(a, b); err != nil {
		return err
	}
	return linkErr(b, a)
}

// memberErr returns nil when h holds other in one of states, "" standing
// for no record at all, else says what h holds of it.
func memberErr(h, other *host, states ...string) error {
	mb, ok := memberOf(h, other)
	st := ""
	if ok {
		st = mb.State
	}
	if slices.Contains(states, st) {
		return nil
	}
	if !ok {
		return fmt.Errorf("%s holds no record of %s, want %q", h.name, other.name, states)
	}
	return fmt.Errorf("%s holds %s as %s (%d hops), want %q; %s", h.name, other.name, mb.State, mb.Hops, states, describeHost(h))
}
