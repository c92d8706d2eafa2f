package control

import "time"

// TransportInfo is what PluginInfo.Transport shows of a transport plugin
// (kind transport): what it reaches and its counters since it started.
type TransportInfo struct {
	// Dial are its dial entries as configured; Listening the addresses
	// its accept entries are bound to.
	Dial      []string        `json:"dial,omitempty"`
	Listening []string        `json:"listening,omitempty"`
	Conns     []TransportConn `json:"conns"`
	Accepted  uint64          `json:"accepted"`
	Dialed    uint64          `json:"dialed"`
	// Reconnects counts dial entries connected again after a loss.
	Reconnects uint64 `json:"reconnects"`
	DialErrors uint64 `json:"dial_errors"`
	// Refused counts accepted connections closed at once: not in
	// allow_from, or at limits.max_conns.
	Refused  uint64 `json:"refused"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// MessagesIn are messages the plugin delivered into the host,
	// MessagesOut those the host routed out through it; Dropped those it
	// could not take (no connection open, queue full).
	MessagesIn  uint64 `json:"messages_in"`
	MessagesOut uint64 `json:"messages_out"`
	Dropped     uint64 `json:"dropped"`
	// OwnDropped counts messages the plugin delivered that carried this
	// host's own origin header: its own, come back through the medium.
	OwnDropped uint64 `json:"own_dropped"`
	// Duplicates counts events the plugin delivered with another host's
	// identity (pycomms-origin and pycomms-seq) that this host had
	// received already, through the mesh or another transport: dropped.
	Duplicates uint64 `json:"duplicates,omitempty"`
	// Errors counts the plugin's refused actions (a write on a connection
	// it does not own, a dial outside its list) and failed events;
	// InstanceFailures the instances replaced after a trap, overrun or ABI
	// violation, each closing its connections.
	Errors           uint64 `json:"errors"`
	InstanceFailures uint64 `json:"instance_failures"`
	// Events counts the plugin's events; EventNanos the wall time spent in
	// them, guest code and its actions: EventNanos/Events is the plugin's
	// share of each event.
	Events     uint64 `json:"events"`
	EventNanos uint64 `json:"event_nanos"`
	// Closes counts closed connections by reason ("peer closed", "read
	// buffer full", "instance failed", ...).
	Closes map[string]uint64 `json:"closes,omitempty"`
}

// TransportConn is one open connection of a transport.
type TransportConn struct {
	ID       uint32    `json:"id"`
	Entry    string    `json:"entry"` // "dial[0] tcp://..." or "accept[0] tcp://..."
	Remote   string    `json:"remote"`
	Instance int       `json:"instance"`
	BytesIn  uint64    `json:"bytes_in"`
	BytesOut uint64    `json:"bytes_out"`
	Since    time.Time `json:"since"`
}
