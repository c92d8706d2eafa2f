// Package discovery announces a pycomms host on the local network segment
// and finds the others, with mDNS / DNS-SD (RFC 6762, RFC 6763).
//
// A host announces one DNS-SD instance of service type [ServiceType] in
// domain "local.": the instance name is its node id (unique by
// construction), the SRV record points at "<id>.local." on the QUIC port
// (the TCP port when QUIC is off), the A records carry the IPv4 addresses of
// the interfaces it was given, and the TXT record carries a [Record]: id,
// name, tcp and quic ports and the wire protocol range. Every host also
// browses for the service now and then and reports each valid answer other
// than its own to [Options.OnFound]. Nothing found is trusted: the mesh
// authenticates whoever it dials and applies the trust policy, so discovery
// only saves typing addresses. TXT records are untrusted input and pass
// [ParseTXT] first.
//
// # Why github.com/hashicorp/mdns
//
// It is small (three files on top of github.com/miekg/dns), maintained, and
// does both halves: the responder (mdns.NewServer with a Zone built by
// mdns.NewMDNSService) and the browser (mdns.QueryContext with a
// QueryParam), and both can be tied to an interface we choose
// (Config.Iface, QueryParam.Interface). It needs no daemon (unlike Avahi
// over D-Bus) and no cgo. What reading its source (v1.0.7) showed, and how
// this package copes:
//
//   - The responder binds 0.0.0.0:5353 and [::]:5353 (SO_REUSEADDR) and joins
//     224.0.0.251 / ff02::fb on Config.Iface. A failed IPv6 (or IPv4) socket
//     is ignored as long as the other works, so a network namespace without
//     IPv6 is fine. One responder runs per given interface, all announcing
//     the same zone; on Linux every one of them also sees the queries of the
//     other interfaces (IP_MULTICAST_ALL), so a host with n interfaces may
//     answer a query n times; the browser keeps the first complete answer.
//   - It answers every query by unicast to the querier's address and port
//     (the querier sends from an ephemeral port, a "legacy" query in RFC 6762
//     terms), never by multicast, and it never announces unsolicited: no
//     probing, no announcements, no conflict resolution. Instance names are
//     node ids, so conflicts do not arise between honest hosts.
//   - It has no goodbye: Server.Shutdown only closes its sockets, and its
//     browser ignores TTLs anyway. So [Service.Close] sends no TTL-0 goodbye;
//     other hosts notice a host is gone because they stop seeing it (and the
//     mesh notices first, when the link drops).
//   - mdns.QueryContext opens new sockets on every call: a unicast socket
//     on an ephemeral port, which sends the query out of
//     QueryParam.Interface, and a socket on 5353 that joins 224.0.0.251 on
//     the interface the routing table picks for that group (not on
//     QueryParam.Interface). Without a route covering 224.0.0.251 (no
//     default route, e.g. an isolated LAN) that join fails and the query with
//     it; `ip route add 224.0.0.0/4 dev IF` fixes it. The error is logged
//     with that hint.
//   - The browser runs IPv4 only (QueryParam.DisableIPv6): announcements
//     carry IPv4 addresses only, and an IPv6 socket that fails to send
//     (no IPv6, or a tentative address) would fail the whole query.
//   - The browser keeps only the last A and the last AAAA record of an
//     answer, so [Found.Addrs] has at most one IPv4 address per answer even
//     when the host announced several. It delivers answers on a channel
//     without blocking and changes an answer after delivering it, so this
//     package reads the answers only once the query has returned.
//
// # Where it sends
//
// The package never picks interfaces: the caller passes them in
// [Options.Interfaces] (the node passes [MulticastInterfaces], and only when
// discovery.mdns is true), and nothing is sent before [Start]. The tests
// that send mDNS run only inside network namespaces they create.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/mdns"
)

// ServiceType is the DNS-SD service type pycomms hosts announce, in domain
// "local.".
const ServiceType = "_pycomms._udp"

// domain is the DNS-SD domain: link-local multicast DNS.
const domain = "local."

// Browse timing: the first fastBrowses browses run fastInterval apart (so
// hosts started together find each other quickly), then Options.Interval.
const (
	fastInterval    = 2 * time.Second
	fastBrowses     = 5
	defaultInterval = 10 * time.Second
	maxQueryTimeout = time.Second
)

// entriesCap bounds the answers one query can deliver: the library drops
// answers it cannot hand over without blocking, and they are read only
// after the query (see the package doc), so the channel must hold them all.
const entriesCap = 1024

// Found is one host seen on the LAN.
type Found struct {
	Record
	// Addrs are the addresses from the answer: its IPv4 address (the
	// library keeps one A record), and its IPv6 address when there is one
	// that can be used without an interface zone (not link-local).
	Addrs []net.IP
}

// Options configure a [Service].
type Options struct {
	// Self is what this host announces. It must be valid (see ParseTXT).
	Self Record
	// Interfaces are where to announce and browse; required, non-empty.
	// Interfaces without an IPv4 address are skipped (logged); at least
	// one must have one.
	Interfaces []net.Interface
	// Interval is how often to browse once the first 5 browses, 2 seconds
	// apart (or Interval apart if it is shorter), are done; default 10s.
	Interval time.Duration
	// Logger receives the service's log; default slog.Default(). The
	// library's own messages go to it at debug level.
	Logger *slog.Logger
	// OnFound is called for every valid answer that is not Self (by ID),
	// repeats included, from one goroutine, one call at a time; it must not
	// block long. It may be nil.
	OnFound func(Found)
}

// Stats count what a Service did.
type Stats struct {
	// Queries counts browse queries: one per interface per browse that
	// could be sent. The library also sends a follow-up query for each
	// answer that arrives incomplete; those are not counted.
	Queries uint64
	// QueryErrors counts browse queries that failed (no socket, no route).
	QueryErrors uint64
	// Answers counts complete answers received, this host's own and refused
	// ones included.
	Answers uint64
	// Self counts answers from this host itself (same node id), which are
	// not reported.
	Self uint64
	// Refused counts answers dropped as invalid: a bad TXT record, an
	// instance name that is not the announced id, or no usable address.
	Refused uint64
}

// Service is a running announcer and browser. Stop it with Close.
type Service struct {
	opts    Options
	log     *slog.Logger
	libLog  *log.Logger
	ifaces  []net.Interface
	servers []*mdns.Server

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	queries, queryErrors, answers, self, refused atomic.Uint64
}

// MulticastInterfaces returns the interfaces of the current network
// namespace that are up, multicast-capable and not loopback: the ones to
// pass in Options.Interfaces when mDNS discovery is on.
func MulticastInterfaces() ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0 {
			out = append(out, ifi)
		}
	}
	return out, nil
}

// Start checks the options, starts a responder on each interface and the
// browse loop. The first browse goes out at once. On error nothing is left
// running.
func Start(o Options) (*Service, error) {
	if len(o.Interfaces) == 0 {
		return nil, errors.New("discovery: no interfaces given: mDNS is sent only on the interfaces the caller names (see MulticastInterfaces)")
	}
	if err := o.Self.validate(); err != nil {
		return nil, fmt.Errorf("discovery: this host's record is not valid: %w", err)
	}
	if o.Interval < 0 {
		return nil, fmt.Errorf("discovery: browse interval %v is negative", o.Interval)
	}
	if o.Interval == 0 {
		o.Interval = defaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{
		opts:   o,
		log:    o.Logger.With("component", "discovery"),
		done:   make(chan struct{}),
		libLog: log.New(libWriter{o.Logger.With("component", "discovery", "lib", "hashicorp/mdns")}, "", 0),
	}

	var ips []net.IP
	for _, ifi := range o.Interfaces {
		v4, err := ipv4Addrs(ifi)
		if err != nil {
			return nil, fmt.Errorf("discovery: interface %s: %w", ifi.Name, err)
		}
		if len(v4) == 0 {
			s.log.Info("interface has no IPv4 address, not announcing or browsing on it", "iface", ifi.Name)
			continue
		}
		s.ifaces = append(s.ifaces, ifi)
		ips = append(ips, v4...)
	}
	if len(s.ifaces) == 0 {
		return nil, fmt.Errorf("discovery: none of the interfaces %s has an IPv4 address", ifaceNames(o.Interfaces))
	}

	port := o.Self.QUICPort
	if port == 0 {
		port = o.Self.TCPPort
	}
	zone, err := mdns.NewMDNSService(o.Self.ID, ServiceType, domain, o.Self.ID+"."+domain, port, ips, o.Self.TXT())
	if err != nil {
		return nil, fmt.Errorf("discovery: building the announcement: %w", err)
	}
	for i := range s.ifaces {
		srv, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: &s.ifaces[i], Logger: s.libLog})
		if err != nil {
			s.shutdownServers()
			return nil, fmt.Errorf("discovery: starting the mDNS responder on %s: %w", s.ifaces[i].Name, err)
		}
		s.servers = append(s.servers, srv)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.loop(ctx)
	s.log.Info("mDNS discovery started", "service", ServiceType, "id", o.Self.ID, "ifaces", ifaceNames(s.ifaces), "addrs", ips)
	return s, nil
}

// Close stops browsing and answering and waits until the service's
// goroutines are done; a browse in progress ends within a second. It sends
// no goodbye (the library has none, see the package doc). Close may be
// called more than once.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		s.shutdownServers()
		s.log.Info("mDNS discovery stopped")
	})
	return nil
}

// Stats returns the counters so far.
func (s *Service) Stats() Stats {
	return Stats{
		Queries:     s.queries.Load(),
		QueryErrors: s.queryErrors.Load(),
		Answers:     s.answers.Load(),
		Self:        s.self.Load(),
		Refused:     s.refused.Load(),
	}
}

func (s *Service) shutdownServers() {
	for _, srv := range s.servers {
		srv.Shutdown()
	}
	s.servers = nil
}

func (s *Service) loop(ctx context.Context) {
	defer close(s.done)
	fast := min(fastInterval, s.opts.Interval)
	timeout := min(maxQueryTimeout, fast/2)
	lastErr := make([]string, len(s.ifaces))
	for n := 0; ; n++ {
		start := time.Now()
		s.browse(ctx, timeout, lastErr)
		wait := s.opts.Interval
		if n < fastBrowses-1 {
			wait = fast
		}
		// Up to 10% later, so that hosts started together drift apart.
		wait += rand.N(wait/10 + 1)
		t := time.NewTimer(time.Until(start.Add(wait)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// browse queries every interface at once, then handles the answers.
func (s *Service) browse(ctx context.Context, timeout time.Duration, lastErr []string) {
	results := make([][]*mdns.ServiceEntry, len(s.ifaces))
	errs := make([]error, len(s.ifaces))
	var wg sync.WaitGroup
	for i := range s.ifaces {
		wg.Go(func() {
			entries := make(chan *mdns.ServiceEntry, entriesCap)
			errs[i] = mdns.QueryContext(ctx, &mdns.QueryParam{
				Service:     ServiceType,
				Domain:      domain,
				Timeout:     timeout,
				Interface:   &s.ifaces[i],
				Entries:     entries,
				DisableIPv6: true,
				Logger:      s.libLog,
			})
			// The library has returned: it no longer touches the entries.
			close(entries)
			for e := range entries {
				results[i] = append(results[i], e)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		name := s.ifaces[i].Name
		if err != nil {
			s.queryErrors.Add(1)
			if ctx.Err() != nil {
				continue
			}
			msg := err.Error()
			if msg != lastErr[i] {
				lastErr[i] = msg
				hint := ""
				if strings.Contains(msg, "multicast") {
					hint = "the library joins 224.0.0.251 on the interface the routing table picks: without a default route, add one for multicast, e.g. ip route add 224.0.0.0/4 dev " + name
				}
				s.log.Warn("mDNS browse failed", "iface", name, "err", err, "hint", hint)
			}
			continue
		}
		s.queries.Add(1)
		if lastErr[i] != "" {
			lastErr[i] = ""
			s.log.Info("mDNS browse works again", "iface", name)
		}
	}
	if ctx.Err() != nil {
		return
	}
	for i := range results {
		for _, e := range results[i] {
			s.answer(e, s.ifaces[i].Name)
		}
	}
}

// answer checks one answer and reports it.
func (s *Service) answer(e *mdns.ServiceEntry, iface string) {
	s.answers.Add(1)
	f, err := found(e)
	if err != nil {
		s.refused.Add(1)
		s.log.Debug("mDNS answer refused", "iface", iface, "instance", quoteValue(e.Name), "err", err)
		return
	}
	if f.ID == s.opts.Self.ID {
		s.self.Add(1)
		return
	}
	if s.opts.OnFound != nil {
		s.opts.OnFound(f)
	}
}

// found validates an answer: its TXT record, its instance name (which must
// be the announced id) and its addresses.
func found(e *mdns.ServiceEntry) (Found, error) {
	r, err := ParseTXT(e.InfoFields)
	if err != nil {
		return Found{}, err
	}
	want := r.ID + "." + ServiceType + "." + domain
	if !strings.EqualFold(e.Name, want) {
		return Found{}, fmt.Errorf("instance name %s is not the announced id (want %q)", quoteValue(e.Name), want)
	}
	f := Found{Record: r}
	if ip := e.AddrV4.To4(); ip != nil && usable(ip) {
		f.Addrs = append(f.Addrs, ip)
	}
	if ip := e.AddrV6; ip != nil && ip.To4() == nil && len(ip) == net.IPv6len && usable(ip) && !ip.IsLinkLocalUnicast() {
		f.Addrs = append(f.Addrs, ip)
	}
	if len(f.Addrs) == 0 {
		return Found{}, fmt.Errorf("no usable address (A %v, AAAA %v)", e.AddrV4, e.AddrV6)
	}
	return f, nil
}

func usable(ip net.IP) bool {
	return !ip.IsUnspecified() && !ip.IsMulticast() && !ip.Equal(net.IPv4bcast)
}

func ipv4Addrs(ifi net.Interface) ([]net.IP, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("reading its addresses: %w", err)
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip := n.IP.To4(); ip != nil {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

func ifaceNames(ifs []net.Interface) string {
	names := make([]string, len(ifs))
	for i, ifi := range ifs {
		names[i] = ifi.Name
	}
	return strings.Join(names, ",")
}

// libWriter turns the library's log.Logger lines into debug records: its
// messages are mostly about other hosts' packets and closed sockets, and
// whatever matters to the node is logged here by this package.
type libWriter struct{ l *slog.Logger }

func (w libWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
