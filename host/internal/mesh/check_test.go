package mesh

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// checkFor polls check every 10ms until it returns nil or d passes, and
// then fails the test with what the last check said: unlike eventually,
// the failure names which host held what, so a flake can be read from
// its log.
func checkFor(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %v", d, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// describeRoute says how h routes subj: to which node, over what, or not
// at all.
func describeRoute(h *host, subj string) string {
	p := h.mesh.routes.load().lookup(subj)
	if p == nil {
		return "no route"
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
