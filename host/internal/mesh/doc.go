// Package mesh connects pycomms hosts into one messaging fabric. Every
// host listens on TCP (TLS 1.3) and QUIC, dials the peers its config lists,
// authenticates each connection both ways (host/internal/identity), and then
// exchanges frames of the wire protocol (host/internal/wire, abi/PROTOCOL.md) over
// it: which services and topics each host serves (interest), and the
// requests, replies, sends and events themselves.
//
// Routing design. A host learns what its direct peers serve from their
// interest advertisements, and what every other host serves, where it
// listens and whom it links to from signed membership records flooded over
// the links (members.go, PROTOCOL.md section 14). A message goes straight
// to its destination when there is a link to it, or through a direct peer
// linked to the destination (a relay), and a relay forwards only to its
// own direct peers and only messages that have not been relayed yet. So a
// message crosses at most two links and cannot loop, and a mesh built as a
// chain (A lists B, B lists C) works before A has dialled C. A host that
// sends to a relayed host, or to one further away, links to it directly
// (Discovered, found "gossip"); mDNS (host/internal/discovery) feeds the same
// Discovered. Links follow use rather than forming a full mesh: see
// RATIONALE.md.
//
// Delivery guarantees: request/reply is at-most-once (a request whose
// provider or link dies fails with StatusUnreachable and is never resent),
// sends and events are at-most-once (a full send buffer or a busy
// subscriber drops them, counted), and events from one publisher reach a
// subscriber host in publish order (they share one ordered stream) while
// the path stays the same: events sent through a relay and then over a new
// direct link can overtake each other at the switch.
//
// # Parts
//
// The mesh is made of parts that each own their state and their lock;
// a part reaches another through the Mesh it belongs to (a back-pointer,
// never a copy of the other's state). The files read as the design:
//
//	mesh.go       Mesh: options, lifecycle (New, Start, Close), the periodic tick
//	listener.go   listener: the TCP and QUIC sockets and their accept loops
//	admission.go  slots: limits on connections that have not finished the handshake
//	handshake.go  self: this host as it presents itself; the Hello exchange
//	conn.go       conn: TCP and QUIC connections behind one interface
//	links.go      linkSet: the live links, one per peer; duplicates; retiring; closing
//	link.go       link: one handshaken connection: its reader, frames in
//	outbox.go     outbox: a link's send side: queued frames, one writer
//	requests.go   requests: a link's requests waiting for replies
//	deadlines.go  deadlines: one timer for every request's deadline
//	liveness.go   probe: fast liveness while requests wait; linkSet.sweep: steady liveness
//	dial.go       dialers: configured peers, redialled with backoff
//	discovered.go dialers: hosts found by discovery or gossip
//	members.go    membership: signed member records, flooded; who is alive
//	ack.go        acknowledged interest (ConfirmInterest); passing records on
//	advertise.go  adverts: this host's interest, sent to its direct peers
//	table.go      routes: the routing table, an immutable snapshot behind an atomic pointer
//	route.go      the outbound path: Call, Send, Publish to a remote node
//	inbound.go    inbound: messages from the links: replies, requests, relaying
//	inline.go     requests served on the link's reader, and the watcher that bounds it
//	workers.go    workers: the goroutines that run peer requests
//	peers.go      Peers: what this host knows of the mesh, for the control API
//	traffic.go    Traffic, PeerTraffic, MemberEvents: counters that only grow, closed links included, for metrics
//
// # Lock order
//
// A goroutine that holds one of these locks takes only locks further down
// the list (the first ones are the outermost):
//
//  1. link.sentMu (an advertisement being sent on that link)
//  2. routes.rebuildMu
//  3. dialers.mu
//  4. probe.mu
//  5. membership.mu; while it is held the mesh calls Local.Interest, so
//     the local router must not call into the mesh while holding a lock
//     that Interest takes
//  6. link.ackMu
//  7. linkSet.mu
//  8. outbox.mu
//  9. requests.mu
//
// Leaves, which are held only while no other lock is taken: dialer.mu,
// routes.waitMu, coalescer.mu, listener.qmu, slots.mu, deadlines.mu. No lock is held
// while calling into a link's close, the local router's Call, Send or
// Publish, or a network write; a link's close takes several of them in
// turn. Counters and flags read on every message are atomics, and the
// routing table is read without a lock.
package mesh
