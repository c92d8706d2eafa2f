// Package discovery announces a pycomms host on the local network segment
// and finds the others, with mDNS / DNS-SD (RFC 6762, RFC 6763), IPv4.
//
// A host announces one DNS-SD instance of service type [ServiceType] in
// domain "local.": the instance name is its node id (unique by
// construction), the SRV record points at "<id>.local." on the QUIC port
// (the TCP port when QUIC is off), the A records carry the IPv4 addresses
// of the interface the answer goes out on, and the TXT record carries a
// [Record]: id, name, tcp and quic ports and the wire protocol range. Every
// host also browses for the service and reports each valid answer other
// than its own to [Options.OnFound], and each host whose records expired
// or said goodbye to [Options.OnLost]. Nothing found is trusted: the mesh
// authenticates whoever it dials and applies the trust policy, so
// discovery only saves typing addresses. TXT records are untrusted input
// and pass [ParseTXT] first.
//
// # What it does on the wire
//
//   - One UDP socket on 0.0.0.0:5353, shared with other responders
//     (SO_REUSEADDR, SO_REUSEPORT: avahi sets both), joined to 224.0.0.251
//     on each given interface, with IP_PKTINFO so that each packet's
//     arrival interface is known (and on Linux IP_MULTICAST_ALL off).
//     Everything is sent out of an interface named per packet, so no route
//     for 224.0.0.0/4 is needed.
//   - Per interface, answers carry that interface's addresses only (RFC
//     6762 section 6.2), further limited to [Options.Listen] when the mesh
//     listens on particular addresses: a peer on one link never learns an
//     address of another link that it cannot reach.
//   - At start, two unsolicited announcements one second apart on every
//     interface (section 8.3); on [Service.Close], a goodbye: the same
//     records with TTL 0 (section 10.1). No probing (section 8.1): the
//     names are node ids, which a host cannot choose and a second host can
//     only hold by running the same identity, a clash that renaming would
//     not resolve and that the mesh reports when it meets both.
//   - Queries: a legacy query (source port not 5353, e.g. dig) gets a
//     unicast answer with its id, its question and TTLs of at most 10 s
//     (section 6.7); a query sent by unicast, or a QU question when this
//     host multicast its records on that interface within a quarter of
//     their TTL, a unicast answer; every other question a multicast answer
//     (section 5.4), delayed 20-120 ms when it holds the shared PTR
//     record, at most one per second per interface (section 6), and left
//     out when the querier listed it as a known answer with half its TTL
//     left (section 7.1). Questions for types a name does not have get an
//     NSEC (section 6.1).
//   - Every packet whose source is not on a subnet of the interface it
//     arrived on (nor IPv4 link-local) is ignored (section 11), and so is
//     every response not sent from port 5353.
//   - Browsing: a QU query at start, then QM queries 1, 2, 4, 8 s apart
//     and from then on every [Options.Interval] (default 10 s). RFC 6762
//     section 5.2 would have the interval keep doubling; it stops at
//     Interval because the mesh dials a host it gave up on again when
//     discovery reports it again, and these reports come from answers.
//     Responses, whoever asked, fill a cache per interface that honours
//     TTLs, cache-flush bits (section 10.2) and goodbyes (gone one second
//     after TTL 0); an instance whose PTR, SRV, TXT or every address left
//     the caches of all interfaces goes to OnLost.
//
// IPv6 is not announced: the mesh is dialled over IPv4 on the LAN, and an
// IPv6 link-local address needs a zone the mesh does not carry. AAAA
// records other hosts send are used when not link-local.
//
// # Why github.com/miekg/dns and not a ready mDNS library
//
// The package used github.com/hashicorp/mdns until it was tried against
// avahi 0.8 and python-zeroconf in network namespaces: its responder binds
// one zone to every interface, so a multi-homed host announced every
// address on every link (a peer resolved an unreachable address and every
// dial failed); it never announces, so a restarted host stayed invisible to
// a running avahi until avahi queried again (53 s, growing as queriers back
// off); it has no goodbye; it answers every query by unicast, off-link
// queries included; and its browser ignores TTLs and keeps one address per
// answer. None of that can be fixed from outside it. The other Go
// libraries (grandcat/zeroconf, libp2p/zeroconf, pion/mdns) also announce
// one address set on all interfaces or lack a TTL-honouring browser.
// miekg/dns, which hashicorp/mdns was built on, does the DNS message
// encoding; the mDNS rules above are this package's, in about 1 000 lines,
// and golang.org/x/net/ipv4 gives the per-packet interface.
//
// # Where it sends
//
// The package never picks interfaces: the caller passes them in
// [Options.Interfaces] (the node passes [MulticastInterfaces], and only when
// discovery.mdns is true), and nothing is sent before [Start]. The tests
// that send mDNS run only inside network namespaces they create.
//
// The platforms are Linux, macOS and the BSDs: elsewhere (Windows)
// golang.org/x/net/ipv4 does not report a packet's arrival interface, and
// Start fails with an error saying so.
package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// ServiceType is the DNS-SD service type pycomms hosts announce, in domain
// "local.".
const ServiceType = "_pycomms._udp"

// domain is the DNS-SD domain: link-local multicast DNS.
const domain = "local."

// Browse timing: the first query at once, then firstGap, doubling up to
// Options.Interval.
const (
	firstGap        = time.Second
	defaultInterval = 10 * time.Second
)

// packetQueue bounds the packets read but not yet handled; more are
// dropped (and counted).
const packetQueue = 256

// Found is one host seen on the LAN.
type Found struct {
	Record
	// Addrs are the usable addresses of its answer: IPv4, then IPv6 ones
	// that need no interface zone (not link-local), those on a subnet of
	// Interface first.
	Addrs []net.IP
	// Interface is the interface the answer arrived on.
	Interface string `json:",omitempty"`
}

// Options configure a [Service].
type Options struct {
	// Self is what this host announces. It must be valid (see ParseTXT).
	Self Record
	// Interfaces are where to announce and browse; required, non-empty.
	// Interfaces without an IPv4 address are skipped (logged); at least
	// one must have one.
	Interfaces []net.Interface
	// Listen are the addresses the host's listeners are bound to. When one
	// of them is unspecified (0.0.0.0, ::) or Listen is empty, every IPv4
	// address of an interface is announced on it; otherwise only those in
	// Listen, and an interface with none of them announces nothing (it
	// still browses).
	Listen []net.IP
	// Interval is how often to browse once the first queries (1, 2, 4, 8 s
	// apart, or Interval apart if that is shorter) are done; default 10s.
	Interval time.Duration
	// Logger receives the service's log; default slog.Default().
	Logger *slog.Logger
	// OnFound is called for every valid answer that is not Self (by ID),
	// repeats included, from one goroutine, one call at a time (OnLost
	// calls included); it must not block long. It may be nil.
	OnFound func(Found)
	// OnLost is called once for a host OnFound reported when its records
	// are gone from every interface: it said goodbye (a second later) or
	// its records' TTL ran out. It may be nil.
	OnLost func(Found)
}

// Stats count what a Service did.
type Stats struct {
	// Queries counts browse queries sent, one per interface per browse.
	Queries uint64
	// QueryErrors counts packets that could not be sent.
	QueryErrors uint64
	// Answers counts complete answers received, this host's own and
	// refused ones included.
	Answers uint64
	// Self counts answers from this host itself (same node id), which are
	// not reported.
	Self uint64
	// Refused counts answers dropped as invalid: a bad TXT record, an
	// instance name that is not the announced id.
	Refused uint64
	// Responses counts responses sent: announcements, answers (unicast
	// and multicast) and goodbyes.
	Responses uint64
	// Ignored counts packets dropped unread: from a source not on the
	// arrival interface's subnets, from an interface not given, a response
	// not from port 5353, or not a valid mDNS message.
	Ignored uint64
	// Dropped counts packets and records that did not fit the bounded
	// queue and caches.
	Dropped uint64
	// Lost counts hosts reported to OnLost.
	Lost uint64
}

// ifaceState is what a Service keeps per interface. Only the loop
// goroutine touches it after Start.
type ifaceState struct {
	ifi   net.Interface
	nets  []*net.IPNet // its IPv4 subnets, for the source check
	addrs []net.IP     // what it announces

	lastMcast time.Time // last multicast of this host's records on it
	pendingAt time.Time // when the delayed multicast answer is due; zero: none
	pendingQ  []dns.Question

	// The last query sent on it: the same bytes coming back from this
	// host's own address (multicast loopback) are not answered.
	lastQuery   []byte
	lastQueryAt time.Time

	cache    map[string]*cached
	present  map[string]Found // instances reported to OnFound, by instance name
	followUp map[string]time.Time
}

// own reports whether ip is one of ifc's addresses.
func (ifc *ifaceState) own(ip net.IP) bool {
	for _, n := range ifc.nets {
		if n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// onLink reports whether ip is on one of ifc's subnets or IPv4 link-local.
func (ifc *ifaceState) onLink(ip net.IP) bool {
	if ip4 := ip.To4(); ip4 != nil && ip4[0] == 169 && ip4[1] == 254 {
		return true
	}
	for _, n := range ifc.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Service is a running announcer and browser. Stop it with Close.
type Service struct {
	opts    Options
	log     *slog.Logger
	conn    *ipv4.PacketConn
	ifaces  []*ifaceState
	byIndex map[int]*ifaceState

	svcName, instName, hostName string // canonical (lower case, fully qualified)
	port                        int
	nextExpiry                  time.Time // earliest expiry in the caches (an upper bound); zero: none

	stop       chan struct{}
	done       chan struct{} // loop ended (goodbye sent)
	readerDone chan struct{}
	once       sync.Once

	queries, queryErrors, answers, self, refused atomic.Uint64
	responses, ignored, dropped, lost            atomic.Uint64
}

// packet is one datagram read from the socket.
type packet struct {
	data    []byte
	src     *net.UDPAddr
	ifIndex int
	toGroup bool
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

// Start checks the options, opens the socket, announces this host on each
// interface and starts browsing. The first query goes out at once. On
// error nothing is left running.
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
		opts:       o,
		log:        o.Logger.With("component", "discovery"),
		byIndex:    map[int]*ifaceState{},
		svcName:    dns.CanonicalName(ServiceType + "." + domain),
		instName:   dns.CanonicalName(o.Self.ID + "." + ServiceType + "." + domain),
		hostName:   dns.CanonicalName(o.Self.ID + "." + domain),
		port:       o.Self.QUICPort,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if s.port == 0 {
		s.port = o.Self.TCPPort
	}
	anyListen := len(o.Listen) == 0
	for _, ip := range o.Listen {
		anyListen = anyListen || ip.IsUnspecified()
	}

	var joined []net.Interface
	for _, ifi := range o.Interfaces {
		nets, err := ipv4Nets(ifi)
		if err != nil {
			return nil, fmt.Errorf("discovery: interface %s: %w", ifi.Name, err)
		}
		if len(nets) == 0 {
			s.log.Info("interface has no IPv4 address, not announcing or browsing on it", "iface", ifi.Name)
			continue
		}
		ifc := &ifaceState{ifi: ifi, nets: nets, cache: map[string]*cached{}, present: map[string]Found{}, followUp: map[string]time.Time{}}
		for _, n := range nets {
			if anyListen || slicesContainsIP(o.Listen, n.IP) {
				ifc.addrs = append(ifc.addrs, n.IP)
			}
		}
		if len(ifc.addrs) == 0 {
			s.log.Info("the mesh listens on no address of this interface: browsing on it, announcing nothing", "iface", ifi.Name, "listen", o.Listen)
		}
		s.ifaces = append(s.ifaces, ifc)
		s.byIndex[ifi.Index] = ifc
		joined = append(joined, ifi)
	}
	if len(s.ifaces) == 0 {
		return nil, fmt.Errorf("discovery: none of the interfaces %s has an IPv4 address", ifaceNames(o.Interfaces))
	}
	conn, err := openSocket(joined)
	if err != nil {
		return nil, fmt.Errorf("discovery: mDNS socket on %s: %w", ifaceNames(joined), err)
	}
	s.conn = conn

	pkts := make(chan packet, packetQueue)
	go s.read(pkts)
	go s.loop(pkts)
	var announced []string
	for _, ifc := range s.ifaces {
		announced = append(announced, fmt.Sprintf("%s=%v", ifc.ifi.Name, ifc.addrs))
	}
	s.log.Info("mDNS discovery started", "service", ServiceType, "id", o.Self.ID, "ifaces", ifaceNames(joined), "announced", announced)
	return s, nil
}

// Close sends the goodbye on every interface, stops answering and browsing
// and waits until the service's goroutines are done. Close may be called
// more than once.
func (s *Service) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.conn.Close()
		<-s.readerDone
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
		Responses:   s.responses.Load(),
		Ignored:     s.ignored.Load(),
		Dropped:     s.dropped.Load(),
		Lost:        s.lost.Load(),
	}
}

// read hands every datagram to the loop until the socket is closed.
func (s *Service) read(pkts chan<- packet) {
	defer close(s.readerDone)
	buf := make([]byte, maxPacket)
	for {
		n, cm, src, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("mDNS read failed", "err", err)
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond): // not a busy loop on a persistent error
			}
			continue
		}
		udp, ok := src.(*net.UDPAddr)
		if !ok || cm == nil {
			s.ignored.Add(1)
			continue
		}
		p := packet{data: append([]byte(nil), buf[:n]...), src: udp, ifIndex: cm.IfIndex, toGroup: cm.Dst.Equal(mdnsGroup)}
		select {
		case pkts <- p:
		default:
			s.dropped.Add(1)
		}
	}
}

// loop owns the interfaces' state: it handles packets, announces, browses,
// sends delayed answers and expires records, and says goodbye at the end.
func (s *Service) loop(pkts <-chan packet) {
	defer close(s.done)
	now := time.Now()
	nextAnnounce, announced := now, 0
	nextBrowse, gap, browses := now, min(firstGap, s.opts.Interval), 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.stop:
			for _, ifc := range s.ifaces {
				if len(ifc.addrs) > 0 {
					s.multicast(ifc, s.response(ifc, nil, true), "goodbye")
				}
			}
			return
		case p := <-pkts:
			s.handle(p, time.Now())
		case <-timer.C:
		}
		now = time.Now()
		if announced < announcements && !now.Before(nextAnnounce) {
			for _, ifc := range s.ifaces {
				if len(ifc.addrs) > 0 {
					s.multicast(ifc, s.response(ifc, nil, false), "announcement")
				}
			}
			announced++
			nextAnnounce = now.Add(announceInterval << (announced - 1))
		}
		if !now.Before(nextBrowse) {
			s.browse(browses == 0)
			browses++
			// Up to 10% later, so that hosts started together drift apart.
			nextBrowse = now.Add(gap + rand.N(gap/10+1))
			gap = min(gap*2, s.opts.Interval)
		}
		wake := nextBrowse
		if announced < announcements && nextAnnounce.Before(wake) {
			wake = nextAnnounce
		}
		for _, ifc := range s.ifaces {
			if due := s.flushPending(ifc, now); !due.IsZero() && due.Before(wake) {
				wake = due
			}
		}
		if !s.nextExpiry.IsZero() && !now.Before(s.nextExpiry) {
			s.nextExpiry = s.expire(now)
		}
		if !s.nextExpiry.IsZero() && s.nextExpiry.Before(wake) {
			wake = s.nextExpiry
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(time.Until(wake), 0))
	}
}

// browse sends the PTR query for ServiceType on every interface: with the
// QU bit the first time (RFC 6762 section 5.4), so that hosts that
// multicast their records within the last second answer this new querier
// anyway.
func (s *Service) browse(first bool) {
	class := uint16(dns.ClassINET)
	if first {
		class |= unicastResponse
	}
	q := &dns.Msg{Question: []dns.Question{{Name: s.svcName, Qtype: dns.TypePTR, Qclass: class}}}
	for _, ifc := range s.ifaces {
		if s.send(ifc, q, &net.UDPAddr{IP: mdnsGroup, Port: mdnsPort}, "query") {
			s.queries.Add(1)
		}
	}
}

// handle checks where a packet came from and dispatches it.
func (s *Service) handle(p packet, now time.Time) {
	ifc := s.byIndex[p.ifIndex]
	if ifc == nil || !ifc.onLink(p.src.IP) {
		// Another interface's traffic, or a source that is not on this
		// link (RFC 6762 section 11).
		s.ignored.Add(1)
		return
	}
	var m dns.Msg
	if err := m.Unpack(p.data); err != nil || m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		s.ignored.Add(1)
		return
	}
	if m.Response {
		if p.src.Port != mdnsPort {
			s.ignored.Add(1)
			return
		}
		s.handleResponse(ifc, &m, now)
		return
	}
	if p.src.Port == mdnsPort && now.Sub(ifc.lastQueryAt) < time.Second && bytes.Equal(p.data, ifc.lastQuery) && ifc.own(p.src.IP) {
		return
	}
	s.handleQuery(ifc, &m, p.src, p.toGroup, now)
}

// send packs m and sends it to dst out of ifc. It reports whether it was
// sent; a failure is counted and logged once per kind of error.
func (s *Service) send(ifc *ifaceState, m *dns.Msg, dst *net.UDPAddr, what string) bool {
	b, err := m.Pack()
	if err == nil && len(b) > maxPacket {
		err = fmt.Errorf("the message is %d bytes, over the %d mDNS allows", len(b), maxPacket)
	}
	if err == nil {
		_, err = s.conn.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifc.ifi.Index}, dst)
	}
	if err != nil {
		s.queryErrors.Add(1)
		s.log.Debug("mDNS send failed", "iface", ifc.ifi.Name, "what", what, "to", dst, "err", err)
		return false
	}
	if m.Response {
		s.responses.Add(1)
	} else {
		ifc.lastQuery, ifc.lastQueryAt = b, time.Now()
	}
	return true
}

func randDuration(d time.Duration) time.Duration { return rand.N(d + 1) }

func usable(ip net.IP) bool {
	return !ip.IsUnspecified() && !ip.IsMulticast() && !ip.Equal(net.IPv4bcast) && !ip.IsLoopback()
}

func slicesContainsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

// ipv4Nets returns the IPv4 addresses of an interface with their subnets.
func ipv4Nets(ifi net.Interface) ([]*net.IPNet, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("reading its addresses: %w", err)
	}
	var out []*net.IPNet
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip := n.IP.To4(); ip != nil {
				out = append(out, &net.IPNet{IP: ip, Mask: n.Mask[len(n.Mask)-net.IPv4len:]})
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
