package mesh

import (
	"fmt"
	"sort"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/internal/identity"
)

// PeerInfo describes one host this host knows: a direct peer, a configured
// peer not connected yet, a host reached through a relay, or a member known
// through membership only. It is the control API's type, filled here, so
// GET /v1/peers shows what the mesh knows without a copy field by field.
type PeerInfo = control.PeerInfo

// Peers lists what this host knows of the mesh, sorted by name then id.
func (m *Mesh) Peers() []PeerInfo {
	links, dialers := m.links.all(), m.dialers.list()
	var out []PeerInfo
	byID := map[identity.ID]int{}
	for _, l := range links {
		if l.gone.Load() {
			// Closed, about to leave the link set: its dialer, if any, says what
			// happens next.
			continue
		}
		p := PeerInfo{ID: string(l.peer), Name: l.name, Addr: l.addr, Transport: l.c.transport(), State: control.PeerUp,
			Dialed: l.dialed, Found: l.found, RTT: time.Duration(l.rtt.Load()), MsgsIn: l.msgsIn.Load(), MsgsOut: l.out.msgs.Load(),
			Dropped: l.dropped.Load(), Since: l.since, Silent: time.Since(time.Unix(0, l.lastSeen.Load())).Truncate(time.Millisecond)}
		if l.leaving.Load() {
			p.State = control.PeerLeaving
		}
		if at := l.probe.suspect.Load(); at != 0 {
			p.Error = fmt.Sprintf("no answer to a probe for %v: new requests go to other providers", time.Since(time.Unix(0, at)).Round(time.Millisecond))
		}
		if in := l.interest.Load(); in != nil {
			p.Services, p.Topics = in.Services, in.Topics
		}
		byID[l.peer] = len(out)
		out = append(out, p)
	}
	for _, d := range dialers {
		d.mu.Lock()
		id, state, lastErr, u := d.id, d.state, d.lastErr, d.peer.URL()
		d.mu.Unlock()
		if i, ok := byID[id]; ok && id != "" {
			out[i].Config = u
			continue
		}
		if state == control.PeerUp {
			// Its link is gone and the dialer has not caught up yet.
			state = control.PeerConnecting
		}
		if id != "" {
			// A configured peer known by membership too is listed once,
			// with the dialler's state (retrying, and why).
			byID[id] = len(out)
		}
		out = append(out, PeerInfo{ID: string(id), Addr: d.peer.Addr, Transport: d.peer.Transport, State: state, Error: lastErr, Config: u, Found: FoundConfigured})
	}
	for _, n := range m.routes.load().nodes {
		if n.direct != nil || n.far() {
			continue
		}
		byID[n.id] = len(out)
		out = append(out, PeerInfo{ID: string(n.id), Name: n.name, State: control.PeerRelayed, Via: n.via.name, Found: "relayed",
			Services: n.services, Topics: n.topics})
	}
	// Everything else membership knows: live members further away, and
	// the lost and left ones until they are forgotten.
	for _, mb := range m.Members() {
		if i, ok := byID[identity.ID(mb.ID)]; ok {
			out[i].Hops = mb.Hops
			if out[i].Name == "" {
				out[i].Name = mb.Name
			}
			continue
		}
		p := PeerInfo{ID: mb.ID, Name: mb.Name, State: control.PeerState(mb.State), Found: FoundGossip, Hops: mb.Hops, Since: mb.Since,
			Services: mb.Services, Topics: mb.Topics}
		if mb.State == MemberAlive {
			p.State = control.PeerMember
		}
		if len(mb.Listen) > 0 {
			p.Addr = mb.Listen[0]
		}
		out = append(out, p)
	}
	// Make a name clash visible where the operator looks, not only in the
	// log.
	clash := m.routes.load().clash
	for i, p := range out {
		for _, id := range clash[p.Name] {
			if p.ID != "" && string(id) != p.ID {
				out[i].Clash = append(out[i].Clash, string(id))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID+out[i].Config < out[j].ID+out[j].Config
	})
	return out
}
