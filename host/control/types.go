package control

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// DefaultAddr is the control address a node listens on and a client talks to
// when nothing else is configured. Loopback only: the API has no
// authentication.
const DefaultAddr = "127.0.0.1:7480"

// Backend is what the node exposes to the control API. Every method may be
// called concurrently. Errors should be *message.Error values so that the
// API can report their status; any other error is reported as
// abi.StatusInternal (context.DeadlineExceeded as abi.StatusTimeout).
type Backend interface {
	// Call delivers a request and waits for its reply. The control API sets
	// m.Kind to abi.KindRequest, m.Deadline and m.From to "control"; ctx
	// ends at the deadline or when the HTTP client goes away.
	Call(ctx context.Context, m *message.Message) ([]byte, error)
	// Send delivers a one-way message (m.Kind abi.KindSend, no deadline).
	Send(ctx context.Context, m *message.Message) error
	// Publish delivers an event (m.Kind abi.KindEvent, no deadline) and
	// returns how many subscribers received it.
	Publish(ctx context.Context, m *message.Message) (int, error)
	// Subscribe registers interest in a topic pattern with a bounded buffer
	// of the given size. The control API always calls Close on the result.
	Subscribe(pattern string, buffer int) (Subscription, error)
	// Plugins describes every configured plugin.
	Plugins() []PluginInfo
	// Health summarises the node.
	Health() Health
}

// Reloader is implemented by a Backend that can re-read its configuration
// and reload plugins on request (POST /v1/reload). It is optional so that a
// Backend without reload still satisfies Backend; the route then answers
// with abi.StatusNoHandler.
type Reloader interface {
	Reload(ctx context.Context) error
}

// ConfigError is a Reloader's error that is the new configuration's fault:
// the file cannot be read, does not parse or validate, or changes a key only
// a restart applies. POST /v1/reload answers it with 400 invalid (the CLI
// exits 1), since retrying cannot succeed until the file is fixed; any other
// error keeps its own status, 500 internal for a plain error.
type ConfigError struct {
	Err error // why the configuration was refused
}

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Mesh is implemented by a Backend that is part of a mesh of hosts
// (GET /v1/peers, and ?node= on calls and sends). It is optional so that a
// Backend outside a mesh still satisfies Backend; those routes then answer
// with abi.StatusNoHandler.
type Mesh interface {
	// InMesh reports whether the node takes part in a mesh now: it
	// accepts links, discovers hosts, or knows one. When it does not, the
	// mesh routes answer as for a Backend that is not a Mesh.
	InMesh() bool
	// ID is this node's id.
	ID() string
	// Peers lists the hosts this node knows.
	Peers() []PeerInfo
	// CallNode / SendNode deliver to the named node only (a node name, a
	// node id or an id prefix of at least 6 characters); an unknown node
	// is a *message.Error with abi.StatusUnreachable. The message is
	// prepared as for Call and Send.
	CallNode(ctx context.Context, node string, m *message.Message) ([]byte, error)
	SendNode(ctx context.Context, node string, m *message.Message) error
}

// PeerState is the state of a host in GET /v1/peers. Its values are the
// Peer* constants; the JSON form is the plain string.
type PeerState string

// The states of a host in GET /v1/peers. A link or a configured peer is
// up, leaving, connecting, retrying or stopped; a host reached through a
// direct peer is relayed; a live host further away, known through
// membership, is a member; lost and left hosts stay listed for a while.
const (
	PeerUp         PeerState = "up"         // a live link to the host
	PeerLeaving    PeerState = "leaving"    // the host said goodbye; its link drains
	PeerConnecting PeerState = "connecting" // a configured peer being dialled
	PeerRetrying   PeerState = "retrying"   // a configured peer whose last dial failed
	PeerStopped    PeerState = "stopped"    // a configured peer the node gave up on (see Error)
	PeerRelayed    PeerState = "relayed"    // reached through a direct peer (see Via)
	PeerMember     PeerState = "member"     // live, further away; linked to when a message needs it
	PeerLost       PeerState = "lost"       // no chain of live links reaches it any more
	PeerLeft       PeerState = "left"       // it said goodbye
)

// Reachable reports whether a host in state s can be reached now: up,
// leaving, relayed or a live member further away.
func (s PeerState) Reachable() bool {
	switch s {
	case PeerUp, PeerLeaving, PeerRelayed, PeerMember:
		return true
	}
	return false
}

// PeerInfo describes one host a mesh node knows, as listed by GET /v1/peers.
// The mesh fills it (host/internal/mesh.PeerInfo is this type), so the API lists
// exactly what the mesh knows without a second struct to keep in step.
type PeerInfo struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Addr      string `json:"addr"`
	Transport string `json:"transport"` // tcp | quic | "" when not connected
	// State is up, leaving, connecting, retrying or stopped for a link or
	// a configured peer; relayed for a host reached through a direct peer;
	// member for a live host further away, known through membership (the
	// node links to it when a message needs it); lost for a host no chain
	// of live links reaches any more, and left for one that said goodbye
	// (both listed for a minute, or twelve dead times, then forgotten).
	State PeerState `json:"state"`
	Via   string    `json:"via,omitempty"` // relay node name for relayed hosts
	// Config is the configured peer URL this entry was dialed from.
	Config string `json:"config,omitempty"`
	// Dialed is true when this node opened the connection.
	Dialed  bool          `json:"dialed"`
	RTT     time.Duration `json:"rtt_ns"`
	MsgsIn  uint64        `json:"msgs_in"`
	MsgsOut uint64        `json:"msgs_out"`
	Dropped uint64        `json:"dropped"`
	Since   time.Time     `json:"since,omitzero"`
	// Error is the last connection error, e.g. why a dial is retrying.
	Error string `json:"error,omitempty"`
	// Silent is how long ago the link last carried a frame (measured at
	// the ping interval); a link silent for discovery.dead_after is closed.
	Silent time.Duration `json:"silent_ns,omitempty"`
	// Found says how this node learnt of the host: configured (peers:),
	// mdns, gossip (membership records passed on by other hosts), inbound
	// (the host dialled this node), relayed.
	Found string `json:"found,omitempty"`
	// Clash names the other nodes that use this node's name; names should
	// be unique in a mesh, and the lowest id keeps the name for --node.
	Clash []string `json:"clash,omitempty"`
	// Hops is how many links membership says lie between this node and
	// the host (1 for a direct peer); 0 when not known there (yet).
	Hops     int      `json:"hops,omitempty"`
	Services []string `json:"services,omitempty"`
	Topics   []string `json:"topics,omitempty"`
}

// Subscription is a live subscription on the node. Messages that arrive
// while its buffer is full are dropped and counted, never queued without
// bound: a slow control client must not hold up publishers.
type Subscription interface {
	// C delivers matching events. The backend closes it when the node
	// ends the subscription (for example on shutdown).
	C() <-chan *message.Message
	// Dropped is the number of messages dropped so far because the buffer
	// was full.
	Dropped() uint64
	// Close ends the subscription. It is safe to call more than once.
	Close()
}

// PluginInfo describes one configured plugin, as listed by GET /v1/plugins.
type PluginInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Path string `json:"path"`
	// Version is a short hash of the loaded .wasm content, so that two
	// nodes (or two reloads) can be compared at a glance.
	Version string `json:"version"`
	// State is PluginServing or PluginFailed; no other value is used.
	State string `json:"state"`
	// Error says why the last load or reload failed; when an older version
	// keeps serving, State is still PluginServing and Error explains the
	// refusal.
	Error     string    `json:"error,omitempty"`
	Instances int       `json:"instances"`
	Busy      int       `json:"busy"`
	Calls     uint64    `json:"calls"`
	Errors    uint64    `json:"errors"`
	Services  []string  `json:"services"`
	Topics    []string  `json:"topics"`
	Grants    []string  `json:"grants"`
	LoadedAt  time.Time `json:"loaded_at"`
	// Config is a transport plugin's config with the values of its
	// secrets replaced by "[redacted]" (a handler's is not shown: configs
	// written before secrets existed mark none).
	Config map[string]any `json:"config,omitempty"`
	// Transport is set for a transport plugin: its connections and
	// counters.
	Transport *TransportInfo `json:"transport,omitempty"`
	// Accepts and Encodings are what a plugin that declares accepts takes
	// (abi/SPEC.md section 14.5); Converted counts the messages and replies
	// converted for it, Dropped the sends and events that could not be.
	Accepts   []string `json:"accepts,omitempty"`
	Encodings []string `json:"encodings,omitempty"`
	Converted uint64   `json:"converted,omitempty"`
	Dropped   uint64   `json:"dropped,omitempty"`
	// Codec is set for a codec plugin.
	Codec *CodecInfo `json:"codec,omitempty"`
}

// CodecInfo describes a codec plugin in PluginInfo: its pairs (as the
// SPEC writes them, "type application/json application/cbor") and its
// counters. Conversions counts every conversion asked of it (as Calls);
// Failures counts the failed ones by status name.
type CodecInfo struct {
	Pairs       []string          `json:"pairs"`
	Conversions uint64            `json:"conversions"`
	Failures    map[string]uint64 `json:"failures"`
}

// The states of a plugin in PluginInfo.State: a closed set.
const (
	// PluginServing: a version is loaded and its routes are bound.
	PluginServing = "serving"
	// PluginFailed: no version could be loaded (at start, or added by a
	// reload that could not load it); it has no routes, Error says why,
	// and it is loaded again when its file changes or the config reloads.
	PluginFailed = "failed"
)

// Health summarises a node, as returned by GET /v1/health.
type Health struct {
	Status string `json:"status"`
	Node   string `json:"node"`
	// ID is the node id; "" for a node outside a mesh. The server fills
	// it from Mesh.ID when the Backend leaves it empty.
	ID      string        `json:"id,omitempty"`
	Uptime  time.Duration `json:"uptime"` // a Go duration string in JSON, e.g. "1h2m3s"
	Plugins int           `json:"plugins"`
	// Peers counts the peers in state "up". The server fills it from
	// Mesh.Peers when the Backend leaves it zero.
	Peers int `json:"peers"`
	// Members counts the live hosts this node knows in its mesh, however
	// reached: peers up, relayed hosts and members further away. The
	// server fills it from Mesh.Peers when the Backend leaves it zero.
	Members int    `json:"members,omitempty"`
	Version string `json:"version"`
	// Ready is false while any plugin is in state PluginFailed; NotReady
	// then says which ("plugins failed: a, b").
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	// ConfigGeneration counts the configs applied since start (1 for the
	// first; a refused reload or one that changes nothing leaves it), and
	// ConfigDigest is the applied config's digest: a client that reloads
	// waits for either to change instead of sleeping.
	ConfigGeneration uint64 `json:"config_generation,omitempty"`
	ConfigDigest     string `json:"config_digest,omitempty"`
}

// healthJSON is Health with Uptime as a string: a duration in nanoseconds is
// unreadable for the humans who curl this route.
type healthJSON struct {
	Status  string `json:"status"`
	Node    string `json:"node"`
	ID      string `json:"id,omitempty"`
	Uptime  string `json:"uptime"`
	Plugins int    `json:"plugins"`
	Peers   int    `json:"peers"`
	Members int    `json:"members,omitempty"`
	Version string `json:"version"`

	Ready            bool   `json:"ready"`
	NotReady         string `json:"not_ready,omitempty"`
	ConfigGeneration uint64 `json:"config_generation,omitempty"`
	ConfigDigest     string `json:"config_digest,omitempty"`
}

// MarshalJSON encodes Uptime as a Go duration string.
func (h Health) MarshalJSON() ([]byte, error) {
	return json.Marshal(healthJSON{
		Status: h.Status, Node: h.Node, ID: h.ID, Uptime: h.Uptime.String(),
		Plugins: h.Plugins, Peers: h.Peers, Members: h.Members, Version: h.Version,
		Ready: h.Ready, NotReady: h.NotReady, ConfigGeneration: h.ConfigGeneration, ConfigDigest: h.ConfigDigest,
	})
}

// UnmarshalJSON decodes Uptime from a Go duration string.
func (h *Health) UnmarshalJSON(b []byte) error {
	var j healthJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var up time.Duration
	if j.Uptime != "" {
		var err error
		if up, err = time.ParseDuration(j.Uptime); err != nil {
			return fmt.Errorf("health: uptime: %w", err)
		}
	}
	*h = Health{Status: j.Status, Node: j.Node, ID: j.ID, Uptime: up, Plugins: j.Plugins, Peers: j.Peers, Members: j.Members, Version: j.Version,
		Ready: j.Ready, NotReady: j.NotReady, ConfigGeneration: j.ConfigGeneration, ConfigDigest: j.ConfigDigest}
	return nil
}

// VersionInfo describes a build of pycomms-host, as returned by
// GET /v1/version and printed by `pycomms-host version`.
type VersionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	// ABIMin and ABIMax bound the plugin ABI versions this build accepts;
	// ABIVersion is the one it was written against.
	ABIMin     int `json:"abi_min"`
	ABIMax     int `json:"abi_max"`
	ABIVersion int `json:"abi_version"`
	// ProtocolMin and ProtocolMax bound the mesh wire protocol versions
	// this build speaks (host/internal/wire's MinVersion and MaxVersion); zero when
	// unknown. BuildVersion leaves them zero: the binary sets them, so
	// that this package does not depend on the wire protocol.
	ProtocolMin uint16 `json:"protocol_min"`
	ProtocolMax uint16 `json:"protocol_max"`
}

// String formats v on one line, e.g.
// "v0.1.0 (commit 0123456789ab, go1.26.8), ABI 1 (accepts 1..1), protocol 1..1";
// the protocol part is left out when ProtocolMax is zero.
func (v VersionInfo) String() string {
	s := v.BuildString() + ", " + v.ABIString()
	if p := v.ProtocolString(); p != "" {
		s += ", " + p
	}
	return s
}

// BuildString formats the build part of v, e.g.
// "v0.1.0 (commit 0123456789ab, go1.26.8)".
func (v VersionInfo) BuildString() string {
	switch {
	case v.Commit != "" && v.GoVersion != "":
		return fmt.Sprintf("%s (commit %s, %s)", v.Version, v.Commit, v.GoVersion)
	case v.GoVersion != "":
		return fmt.Sprintf("%s (%s)", v.Version, v.GoVersion)
	}
	return v.Version
}

// ABIString formats the ABI part of v, e.g. "ABI 1 (accepts 1..1)".
func (v VersionInfo) ABIString() string {
	return fmt.Sprintf("ABI %d (accepts %d..%d)", v.ABIVersion, v.ABIMin, v.ABIMax)
}

// ProtocolString formats the mesh protocol range of v, e.g.
// "protocol 1..1", or "" when ProtocolMax is zero (unknown).
func (v VersionInfo) ProtocolString() string {
	if v.ProtocolMax == 0 {
		return ""
	}
	return fmt.Sprintf("protocol %d..%d", v.ProtocolMin, v.ProtocolMax)
}

// BuildVersion describes the running binary. version and commit are the
// values a release build stamps in with -ldflags -X; when empty they come
// from the module and VCS information the Go toolchain embeds, so a plain
// `go build` or `go install` still reports something meaningful.
func BuildVersion(version, commit string) VersionInfo {
	if info, ok := debug.ReadBuildInfo(); ok {
		if version == "" && info.Main.Version != "" {
			version = info.Main.Version
		}
		if commit == "" {
			var rev string
			var dirty bool
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" && dirty {
				rev += "+dirty"
			}
			commit = rev
		}
	}
	if version == "" {
		version = "(devel)"
	}
	return VersionInfo{
		Version:    version,
		Commit:     commit,
		GoVersion:  runtime.Version(),
		ABIMin:     abi.MinVersion,
		ABIMax:     abi.MaxVersion,
		ABIVersion: abi.Version,
	}
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error  string `json:"error"`  // human-readable: what failed and where
	Status string `json:"status"` // abi.Status name, e.g. "no_handler"
	Code   int    `json:"code"`   // abi.Status number
}

// StreamMessage is one NDJSON line of GET /v1/subscribe.
type StreamMessage struct {
	Subject string            `json:"subject"`
	Headers map[string]string `json:"headers"`
	Payload []byte            `json:"payload"` // base64 in JSON
	// Dropped is the running count of messages this subscription has
	// dropped because the client read too slowly; omitted while zero.
	Dropped uint64 `json:"dropped,omitempty"`
	// Skipped is the running count of events skipped because they could
	// not be converted to the subscription's accept; omitted while zero.
	Skipped uint64 `json:"skipped,omitempty"`
}
