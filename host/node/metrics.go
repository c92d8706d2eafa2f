package node

// Metrics: what GET /metrics serves, in the Prometheus text format.
//
// Why github.com/prometheus/client_golang: it is the reference
// implementation of the exposition format that every scraper (Prometheus,
// VictoriaMetrics, the OpenTelemetry collector, Grafana Agent) reads, and
// its histograms are lock-free atomic adds. Writing the format by hand
// would save a dependency but not the escaping, the content negotiation
// and the histogram bookkeeping, which are easy to get subtly wrong; the
// architecture asks for a well-kept library for anything that is not the
// product's core, and metrics are named there.
//
// Most values already exist as counters inside the node (router, plugins,
// mesh links, transports): a custom prometheus.Collector reads them at
// scrape time, so they cost nothing on the message path. Only the call
// latency histogram and the errors-by-status counter are updated per call,
// through router.Options.Observe, and only for calls a local owner
// handles.
//
// Labels are bounded by configuration, never by traffic: plugin (a
// configured plugin name, or go:NAME for a Go handler), service (a service
// the config declares; never the subject, whose method part is whatever a
// caller writes), status (the 13 ABI status names), transport (tcp or
// quic for mesh links; the transport plugin's name for transport
// connections). Link and transport connection ids are no labels: they are
// new on every reconnect, so such series would grow without bound over the
// life of the process. Counter series of a plugin or transport removed by
// a reload stay, frozen, so that no counter goes back or vanishes; one
// re-added under its name counts on from them. Its gauges go.
//
// Mesh links are counted twice: per transport (pycomms_link_*, every link
// since the start) and per peer (pycomms_peer_*, labelled peer, peer_name
// and transport). A peer's node id is its key's, the same across
// reconnects and restarts, and the peers are bounded by the mesh's
// membership, so a peer's series sums its successive links and never goes
// down while the mesh remembers the peer (a link, or its membership
// record: alive, lost or left until forgotten, mesh.PeerTraffic). A
// forgotten peer's series are dropped, not frozen (peerMono), since peers
// come and go for the life of the process; the per-transport series keep
// its counts. At most mesh.MaxPeerSeries (256) peers have series of their
// own; the others are summed under peer="other", which never goes down.

import (
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/internal/transport"
	"github.com/pycomms/pycomms-host/host/message"
)

// nodeCounts are counters the node keeps for metrics only.
type nodeCounts struct {
	reloadsApplied, reloadsRefused atomic.Uint64 // config reloads
	swaps, swapsRefused            atomic.Uint64 // plugin versions swapped in, and refused
}

// callBuckets are the latency histogram's upper bounds in seconds: from a
// few microseconds (a WAT handler in process) to the plugin timeout's
// default of 5 s and beyond.
var callBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// nodeMetrics is the node's registry and the state its collector keeps.
type nodeMetrics struct {
	n     *Node
	reg   *prometheus.Registry
	calls *callMetrics

	// retMu guards retiredTransports, which holds, per transport plugin
	// name, the final counters of its stopped instances (a reload
	// restarts a transport as a new one whose counters start at zero).
	// Taken inside Node.mu.
	retMu             sync.Mutex
	retiredTransports map[string]transport.Stats
	// scrapeMu serialises Collect and guards mono, which keeps every
	// counter the collector reports from going back, whatever the node
	// does to the objects behind it (a plugin that failed and loads again
	// is a new object). Keyed by series. Taken before Node.mu.
	scrapeMu sync.Mutex
	mono     map[string]monoState
	// peerMono does for the per-peer link series what mono does for the
	// others, except that a series the mesh no longer reports (its peer
	// was forgotten) is dropped, not kept frozen: peers come and go for
	// the life of the process, and their series must not pile up.
	peerMono map[string]monoState
	scrapes  uint64
}

type monoState struct {
	desc       *prometheus.Desc
	labels     []string
	last, base float64
	scrape     uint64 // the scrape that last reported it
}

func newNodeMetrics(n *Node) *nodeMetrics {
	nm := &nodeMetrics{
		n:                 n,
		reg:               prometheus.NewRegistry(),
		calls:             newCallMetrics(),
		retiredTransports: map[string]transport.Stats{},
		mono:              map[string]monoState{},
		peerMono:          map[string]monoState{},
	}
	nm.reg.MustRegister(nm.calls.duration, nm.calls.errors, nm.calls.remote, nm.calls.remoteErrors, (*nodeCollector)(nm),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return nm
}

// metricsHandler serves the registry in the Prometheus text format.
func (n *Node) metricsHandler() http.Handler {
	return promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{})
}

// retireTransport adds a stopped transport's final counters to those
// kept under its name. The caller holds n.mu.
func (nm *nodeMetrics) retireTransport(name string, st transport.Stats) {
	nm.retMu.Lock()
	defer nm.retMu.Unlock()
	r := nm.retiredTransports[name]
	addTransport(&r, st)
	nm.retiredTransports[name] = r
}

func addTransport(r *transport.Stats, st transport.Stats) {
	r.BytesIn += st.BytesIn
	r.BytesOut += st.BytesOut
	r.MessagesIn += st.MessagesIn
	r.MessagesOut += st.MessagesOut
	r.Dropped += st.Dropped
	r.Accepted += st.Accepted
	r.Dialed += st.Dialed
	r.Refused += st.Refused
	r.DialErrors += st.DialErrors
	r.Errors += st.Errors
}

// callMetrics are the per-call metrics: updated on the call path.
type callMetrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	// remote is the requests this host's callers sent to other hosts:
	// one series, since their subjects are the callers' to choose.
	remote       prometheus.Histogram
	remoteErrors *prometheus.CounterVec
}

func newCallMetrics() *callMetrics {
	return &callMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pycomms_call_duration_seconds",
			Help:    "Time from routing a request to a local plugin (or Go handler) until its reply or error, per plugin and service.",
			Buckets: callBuckets,
		}, []string{"plugin", "service"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pycomms_call_errors_total",
			Help: "Requests a local plugin (or Go handler) answered with an error, per plugin, service and ABI status name.",
		}, []string{"plugin", "service", "status"}),
		remote: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pycomms_remote_call_duration_seconds",
			Help:    "Time from routing a request to another host (no local handler) until its reply or error, as the caller on this host saw it; all services together.",
			Buckets: callBuckets,
		}),
		remoteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pycomms_remote_call_errors_total",
			Help: "Requests sent to another host that ended in an error, per ABI status name (unreachable, timeout, the remote handler's status, ...).",
		}, []string{"status"}),
	}
}

// remoteObserver is router.Options.ObserveRemote.
func (cm *callMetrics) remoteObserver() router.CallObserver {
	return &callObserver{h: cm.remote, errs: cm.remoteErrors}
}

// observer is router.Options.Observe: the router asks once per route
// rebuild, so the label lookups happen there, not per call. The same
// (plugin, service) always gets the same series, so a reload or a swap
// keeps counting into it.
func (cm *callMetrics) observer(owner, service string) router.CallObserver {
	return &callObserver{
		h:    cm.duration.WithLabelValues(owner, service),
		errs: cm.errors.MustCurryWith(prometheus.Labels{"plugin": owner, "service": service}),
	}
}

type callObserver struct {
	h    prometheus.Observer
	errs *prometheus.CounterVec
}

func (o *callObserver) Observe(start time.Time, err error) {
	o.h.Observe(time.Since(start).Seconds())
	if err != nil {
		o.errs.WithLabelValues(message.StatusOf(err).String()).Inc()
	}
}

// nodeCollector reads the node's counters at scrape time.
type nodeCollector nodeMetrics

// Describe sends nothing: the collector is unchecked, because its series
// depend on the plugins configured at the time of the scrape.
func (c *nodeCollector) Describe(chan<- *prometheus.Desc) {}

var (
	descRouter = map[string]*prometheus.Desc{}

	descPluginHandled  = desc("pycomms_plugin_messages_total", "Messages (requests, sends, events) a plugin handled, over all its versions.", "plugin")
	descPluginErrors   = desc("pycomms_plugin_errors_total", "Messages a plugin failed (error status, trap or timeout), over all its versions.", "plugin")
	descPluginRestarts = desc("pycomms_plugin_instance_restarts_total", "Plugin instances replaced after a trap or a timeout.", "plugin")
	descPoolWaits      = desc("pycomms_plugin_pool_waits_total", "Requests that found every instance of the plugin busy and waited for one.", "plugin")
	descPoolRefused    = desc("pycomms_plugin_pool_refused_total", "Requests refused busy because the plugin's queue (plugins[].queue) was full.", "plugin")
	descPoolSize       = desc("pycomms_plugin_instances", "Configured size of the plugin's instance pool (plugins[].instances).", "plugin")
	descPoolBusy       = desc("pycomms_plugin_instances_busy", "Instances of the plugin running a message now.", "plugin")
	descPoolWaiting    = desc("pycomms_plugin_requests_waiting", "Requests waiting for an instance of the plugin now.", "plugin")
	descPluginUp       = desc("pycomms_plugin_up", "1 when the plugin serves, 0 when it failed to load.", "plugin")

	descReloads = desc("pycomms_config_reloads_total", "Config reloads, by result: applied, or refused (the running config kept serving).", "result")
	descSwaps   = desc("pycomms_plugin_swaps_total", "New plugin versions, by result: swapped in, or refused (the old version kept serving).", "result")

	descControlRefused = desc("pycomms_control_connections_refused_total", "Control API connections refused because the connection cap was reached.")

	descLinkBytesIn   = desc("pycomms_link_received_bytes_total", "Bytes received on mesh links, per transport.", "transport")
	descLinkBytesOut  = desc("pycomms_link_sent_bytes_total", "Bytes sent on mesh links, per transport.", "transport")
	descLinkFramesIn  = desc("pycomms_link_received_messages_total", "Messages received on mesh links, per transport.", "transport")
	descLinkFramesOut = desc("pycomms_link_sent_messages_total", "Messages queued for sending on mesh links, per transport.", "transport")
	descLinkDropped   = desc("pycomms_link_dropped_total", "Events received on mesh links and dropped (the endpoint was busy), per transport.", "transport")
	descLinksOpened   = desc("pycomms_links_opened_total", "Mesh links established, per transport.", "transport")
	descLinksOpen     = desc("pycomms_links_open", "Mesh links open now, per transport.", "transport")
	descPeerBytesIn   = desc("pycomms_peer_received_bytes_total", "Bytes received on mesh links, per peer node and transport, over the peer's successive links.", peerLabels...)
	descPeerBytesOut  = desc("pycomms_peer_sent_bytes_total", "Bytes sent on mesh links, per peer node and transport, over the peer's successive links.", peerLabels...)
	descPeerFramesIn  = desc("pycomms_peer_received_messages_total", "Messages received on mesh links, per peer node and transport.", peerLabels...)
	descPeerFramesOut = desc("pycomms_peer_sent_messages_total", "Messages queued for sending on mesh links, per peer node and transport.", peerLabels...)
	descPeerDropped   = desc("pycomms_peer_dropped_total", "Events received on mesh links and dropped (the endpoint was busy), per peer node and transport.", peerLabels...)
	descPeerLinks     = desc("pycomms_peer_links_opened_total", "Mesh links established, per peer node and transport (reconnects included).", peerLabels...)
	descPeerLinksOpen = desc("pycomms_peer_links_open", "Mesh links open now, per peer node and transport.", peerLabels...)
	descMeshRefused   = desc("pycomms_mesh_connections_refused_total", "Inbound mesh connections that failed authentication or the handshake.")
	descBadFrames     = desc("pycomms_mesh_bad_frames_total", "Mesh links closed for a malformed or oversized frame.")
	descMembership    = desc("pycomms_membership_events_total", "Mesh membership changes seen: found (through gossip), left (on purpose), lost (unreachable).", "event")

	descTrBytesIn   = desc("pycomms_transport_received_bytes_total", "Bytes received on a transport plugin's connections.", "plugin")
	descTrBytesOut  = desc("pycomms_transport_sent_bytes_total", "Bytes sent on a transport plugin's connections.", "plugin")
	descTrMsgsIn    = desc("pycomms_transport_received_messages_total", "Messages a transport plugin delivered into the host from its connections.", "plugin")
	descTrMsgsOut   = desc("pycomms_transport_sent_messages_total", "Messages the host routed out through a transport plugin (events on its topics, requests for its services).", "plugin")
	descTrDropped   = desc("pycomms_transport_dropped_total", "Messages routed to a transport plugin that it could not take (no connection open, queue full).", "plugin")
	descTrAccepted  = desc("pycomms_transport_connections_accepted_total", "Connections a transport plugin accepted.", "plugin")
	descTrDialed    = desc("pycomms_transport_connections_dialed_total", "Connections dialled for a transport plugin.", "plugin")
	descTrRefused   = desc("pycomms_transport_connections_refused_total", "Accepted connections closed at once (allow_from, limits.max_conns).", "plugin")
	descTrDialErrs  = desc("pycomms_transport_dial_errors_total", "Failed dials for a transport plugin.", "plugin")
	descTrConnsOpen = desc("pycomms_transport_connections_open", "Connections a transport plugin holds now.", "plugin")

	descQueueDepth     = desc("pycomms_queue_messages", "Messages a durable queue holds on this host (due, waiting out a back-off, or being delivered).", "queue")
	descQueueInFlight  = desc("pycomms_queue_messages_in_flight", "Messages of a durable queue being delivered now.", "queue")
	descQueueDead      = desc("pycomms_queue_dead_letters", "Dead letters a durable queue keeps.", "queue")
	descQueueEnqueued  = desc("pycomms_queue_enqueued_total", "Messages stored in a durable queue.", "queue")
	descQueueDelivered = desc("pycomms_queue_deliveries_total", "Deliveries of a durable queue's messages to its consumer (retries included).", "queue")
	descQueueAcked     = desc("pycomms_queue_acked_total", "Messages of a durable queue its consumer acknowledged (removed from the queue).", "queue")
	descQueueRetried   = desc("pycomms_queue_retries_total", "Failed deliveries of a durable queue's messages that were scheduled again.", "queue")
	descQueueDeadTotal = desc("pycomms_queue_dead_lettered_total", "Messages of a durable queue moved to its dead letters.", "queue")
)

// peerLabels label the per-peer link series: the node id (as GET
// /v1/peers shows it, or mesh.OtherPeers), the name it announced, and the
// transport.
var peerLabels = []string{"peer", "peer_name", "transport"}

func init() {
	for _, n := range []struct{ name, help string }{
		{"calls", "Requests routed (to a local owner or to another host)."},
		{"sends", "One-way sends routed."},
		{"published", "Events published."},
		{"delivered", "Event copies accepted by a local endpoint or subscription."},
		{"dropped", "Event copies dropped: endpoint busy or subscription buffer full."},
		{"no_handler", "Requests and sends nobody serves."},
		{"duplicates", "Events from other hosts dropped as already received."},
	} {
		descRouter[n.name] = desc("pycomms_router_"+n.name+"_total", n.help)
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	nm := (*nodeMetrics)(c)
	n := nm.n
	nm.scrapeMu.Lock()
	defer nm.scrapeMu.Unlock()
	nm.scrapes++
	// A counter whose object is gone (a plugin or transport removed by a
	// reload) is still reported, frozen at its last value, so that no
	// series of a counter disappears or goes back.
	defer func() {
		for _, st := range nm.mono {
			if st.scrape != nm.scrapes {
				ch <- prometheus.MustNewConstMetric(st.desc, prometheus.CounterValue, st.base+st.last, st.labels...)
			}
		}
	}()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, nm.monotone(d, float64(v), labels), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	rs := n.router.Stats()
	for name, v := range map[string]uint64{
		"calls": rs.Calls, "sends": rs.Sends, "published": rs.Published, "delivered": rs.Delivered,
		"dropped": rs.Dropped, "no_handler": rs.NoHandler, "duplicates": rs.Duplicates,
	} {
		counter(descRouter[name], v)
	}

	n.mu.Lock()
	plugins := make([]*managed, 0, len(n.plugins))
	for _, m := range n.plugins {
		plugins = append(plugins, m)
	}
	type tr struct {
		name string
		st   transport.Stats
	}
	var trs []tr
	nm.retMu.Lock()
	for name, rt := range n.transports {
		t := tr{name: name}
		if rt.tr != nil {
			t.st = rt.tr.Stats()
		}
		// Retired counts are read under n.mu too: stopTransportRoutes
		// moves them there under it, so each count is in one place.
		r := nm.retiredTransports[name]
		addTransport(&r, t.st)
		r.Conns = t.st.Conns
		t.st = r
		trs = append(trs, t)
	}
	nm.retMu.Unlock()
	n.mu.Unlock()

	for _, m := range plugins {
		m.mu.Lock()
		cfg, pp := m.cfg, m.p
		m.mu.Unlock()
		up := 0.0
		if pp != nil {
			up = 1
			st := pp.Stats()
			counter(descPluginHandled, st.Calls, cfg.Name)
			counter(descPluginErrors, st.Errors, cfg.Name)
			counter(descPluginRestarts, st.Restarts, cfg.Name)
			counter(descPoolWaits, st.Waits, cfg.Name)
			counter(descPoolRefused, st.RefusedBusy, cfg.Name)
			gauge(descPoolBusy, float64(st.Busy), cfg.Name)
			gauge(descPoolWaiting, float64(st.Waiting), cfg.Name)
		}
		gauge(descPoolSize, float64(cfg.Instances), cfg.Name)
		gauge(descPluginUp, up, cfg.Name)
	}

	counter(descReloads, n.counts.reloadsApplied.Load(), "applied")
	counter(descReloads, n.counts.reloadsRefused.Load(), "refused")
	counter(descSwaps, n.counts.swaps.Load(), "applied")
	counter(descSwaps, n.counts.swapsRefused.Load(), "refused")
	if s := n.server; s != nil {
		counter(descControlRefused, s.RefusedConns())
	}

	if m := n.mesh; m != nil {
		traffic := m.Traffic()
		for _, t := range []string{"tcp", "quic"} {
			tf := traffic[t]
			counter(descLinkBytesIn, tf.BytesIn, t)
			counter(descLinkBytesOut, tf.BytesOut, t)
			counter(descLinkFramesIn, tf.FramesIn, t)
			counter(descLinkFramesOut, tf.FramesOut, t)
			counter(descLinkDropped, tf.Dropped, t)
			counter(descLinksOpened, tf.LinksUp, t)
			gauge(descLinksOpen, float64(tf.LinksUp-tf.LinksDown), t)
		}
		// Per-peer series are reported while the mesh remembers the
		// peer; peerMono forgets the rest after this scrape.
		peerCounter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, monotoneIn(nm.peerMono, nm.scrapes, d, float64(v), labels), labels...)
		}
		for _, p := range m.PeerTraffic() {
			tf := p.Traffic
			peerCounter(descPeerBytesIn, tf.BytesIn, p.ID, p.Name, p.Transport)
			peerCounter(descPeerBytesOut, tf.BytesOut, p.ID, p.Name, p.Transport)
			peerCounter(descPeerFramesIn, tf.FramesIn, p.ID, p.Name, p.Transport)
			peerCounter(descPeerFramesOut, tf.FramesOut, p.ID, p.Name, p.Transport)
			peerCounter(descPeerDropped, tf.Dropped, p.ID, p.Name, p.Transport)
			peerCounter(descPeerLinks, tf.LinksUp, p.ID, p.Name, p.Transport)
			gauge(descPeerLinksOpen, float64(tf.LinksUp-tf.LinksDown), p.ID, p.Name, p.Transport)
		}
		maps.DeleteFunc(nm.peerMono, func(_ string, st monoState) bool { return st.scrape != nm.scrapes })
		counter(descMeshRefused, m.RefusedCount())
		counter(descBadFrames, m.BadFrames())
		ev := m.MemberEvents()
		counter(descMembership, ev.Found, "found")
		counter(descMembership, ev.Left, "left")
		counter(descMembership, ev.Lost, "lost")
	}

	// Queue names come from the config (plugins[].queues) or the queue
	// file, so their number is bounded by what an operator set up.
	for _, q := range n.Queues() {
		gauge(descQueueDepth, float64(q.Depth), q.Name)
		gauge(descQueueInFlight, float64(q.InFlight), q.Name)
		gauge(descQueueDead, float64(q.Dead), q.Name)
		counter(descQueueEnqueued, q.Enqueued, q.Name)
		counter(descQueueDelivered, q.Delivered, q.Name)
		counter(descQueueAcked, q.Acked, q.Name)
		counter(descQueueRetried, q.Retried, q.Name)
		counter(descQueueDeadTotal, q.DeadLettered, q.Name)
	}

	for _, t := range trs {
		st := t.st
		counter(descTrBytesIn, st.BytesIn, t.name)
		counter(descTrBytesOut, st.BytesOut, t.name)
		counter(descTrMsgsIn, st.MessagesIn, t.name)
		counter(descTrMsgsOut, st.MessagesOut, t.name)
		counter(descTrDropped, st.Dropped, t.name)
		counter(descTrAccepted, st.Accepted, t.name)
		counter(descTrDialed, st.Dialed, t.name)
		counter(descTrRefused, st.Refused, t.name)
		counter(descTrDialErrs, st.DialErrors, t.name)
		gauge(descTrConnsOpen, float64(len(st.Conns)), t.name)
	}
}

// monotone returns v as a counter that never goes back: when the object
// behind a series was replaced (its count restarted below the last one
// seen), what was counted before is kept as a base. nm.scrapeMu is held.
func (nm *nodeMetrics) monotone(d *prometheus.Desc, v float64, labels []string) float64 {
	return monotoneIn(nm.mono, nm.scrapes, d, v, labels)
}

// monotoneIn is monotone over the series states in mono, at scrape
// number scrape.
func monotoneIn(mono map[string]monoState, scrape uint64, d *prometheus.Desc, v float64, labels []string) float64 {
	key := d.String()
	for _, l := range labels {
		key += "\xff" + l
	}
	s, ok := mono[key]
	if !ok {
		s = monoState{desc: d, labels: slices.Clone(labels)}
	}
	if v < s.last {
		s.base += s.last
	}
	s.last, s.scrape = v, scrape
	mono[key] = s
	return s.base + v
}
