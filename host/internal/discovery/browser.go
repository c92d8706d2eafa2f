package discovery

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Cache bounds: a LAN can send any number of records; the cache of one
// interface holds at most maxCache of them (what does not fit is dropped
// and counted) and no TTL beyond maxTTL.
const (
	maxCache = 1024
	maxTTL   = otherTTL
	// goodbyeGrace is how long a record stays after a goodbye (TTL 0) or a
	// cache flush (RFC 6762 sections 10.1, 10.2).
	goodbyeGrace = time.Second
	// followUpGap is the least time between two queries for the missing
	// records of one instance on one interface.
	followUpGap = time.Second
)

// cached is one record in the cache of an interface.
type cached struct {
	rr       dns.RR // class without the cache-flush bit
	received time.Time
	expires  time.Time
}

// rrKey identifies a record by name, type and data (not TTL).
func rrKey(rr dns.RR) string {
	c := dns.Copy(rr)
	h := c.Header()
	h.Ttl, h.Class, h.Name = 0, dns.ClassINET, dns.CanonicalName(h.Name)
	return c.String()
}

// nameType is the key of the records a cache-flush bit refers to.
func nameType(rr dns.RR) string {
	return fmt.Sprintf("%s/%d", dns.CanonicalName(rr.Header().Name), rr.Header().Rrtype)
}

// handleResponse adds the records of a response that arrived on ifc to its
// cache and reports every instance of ServiceType the response touched.
func (s *Service) handleResponse(ifc *ifaceState, m *dns.Msg, now time.Time) {
	rrs := append(slices.Clone(m.Answer), m.Extra...)
	touched := map[string]bool{}
	// Names of our service first, then addresses of the targets of SRV
	// records, so that nothing unrelated enters the cache.
	targets := map[string]bool{}
	var addrs []dns.RR
	flushed := map[string]bool{}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Class&^cacheFlush != dns.ClassINET {
			continue
		}
		name := dns.CanonicalName(h.Name)
		switch h.Rrtype {
		case dns.TypePTR:
			if name != s.svcName {
				continue
			}
			touched[dns.CanonicalName(rr.(*dns.PTR).Ptr)] = true
		case dns.TypeSRV, dns.TypeTXT:
			if !strings.HasSuffix(name, "."+s.svcName) {
				continue
			}
			touched[name] = true
			if srv, ok := rr.(*dns.SRV); ok {
				targets[dns.CanonicalName(srv.Target)] = true
			}
		case dns.TypeA, dns.TypeAAAA:
			addrs = append(addrs, rr)
			continue
		default:
			continue
		}
		s.cacheAdd(ifc, rr, now, flushed)
	}
	for _, c := range ifc.cache {
		if srv, ok := c.rr.(*dns.SRV); ok {
			targets[dns.CanonicalName(srv.Target)] = true
		}
	}
	for _, rr := range addrs {
		name := dns.CanonicalName(rr.Header().Name)
		if !targets[name] {
			continue
		}
		s.cacheAdd(ifc, rr, now, flushed)
		for inst, target := range s.targetsOf(ifc) {
			if target == name {
				touched[inst] = true
			}
		}
	}
	for inst := range touched {
		s.report(ifc, inst, now)
	}
}

// cacheAdd adds or refreshes rr; a TTL of 0 (goodbye) makes it expire
// after goodbyeGrace. A record with the cache-flush bit makes the other
// records of its name and type received over a second ago expire after
// goodbyeGrace too (RFC 6762 section 10.2).
func (s *Service) cacheAdd(ifc *ifaceState, rr dns.RR, now time.Time, flushed map[string]bool) {
	h := rr.Header()
	rr = dns.Copy(rr)
	flush := h.Class&cacheFlush != 0
	rr.Header().Class = dns.ClassINET
	if flush && h.Ttl > 0 && !flushed[nameType(rr)] {
		flushed[nameType(rr)] = true
		nt := nameType(rr)
		for _, c := range ifc.cache {
			if nameType(c.rr) == nt && now.Sub(c.received) > goodbyeGrace && c.expires.After(now.Add(goodbyeGrace)) {
				c.expires = now.Add(goodbyeGrace)
				s.expiresAt(c.expires)
			}
		}
	}
	key := rrKey(rr)
	c := ifc.cache[key]
	if h.Ttl == 0 {
		if c != nil && c.expires.After(now.Add(goodbyeGrace)) {
			c.expires = now.Add(goodbyeGrace)
			s.expiresAt(c.expires)
		}
		return
	}
	if c == nil {
		if len(ifc.cache) >= maxCache {
			s.dropped.Add(1)
			return
		}
		c = &cached{}
		ifc.cache[key] = c
	}
	c.rr, c.received = rr, now
	c.expires = now.Add(time.Duration(min(h.Ttl, maxTTL)) * time.Second)
	s.expiresAt(c.expires)
}

// expiresAt makes the loop run expire at t at the latest.
func (s *Service) expiresAt(t time.Time) {
	if s.nextExpiry.IsZero() || t.Before(s.nextExpiry) {
		s.nextExpiry = t
	}
}

// targetsOf maps every instance with an SRV record in ifc's cache to its
// target host name.
func (s *Service) targetsOf(ifc *ifaceState) map[string]string {
	out := map[string]string{}
	for _, c := range ifc.cache {
		if srv, ok := c.rr.(*dns.SRV); ok {
			out[dns.CanonicalName(srv.Header().Name)] = dns.CanonicalName(srv.Target)
		}
	}
	return out
}

// assemble builds the Found for instance inst from ifc's cache: complete
// is false while a record is missing (missing names the types to ask
// for); err is set when the records are all there but not valid.
func (s *Service) assemble(ifc *ifaceState, inst string, now time.Time) (f Found, missing []dns.Question, err error) {
	var ptr bool
	var srv *dns.SRV
	var txt *dns.TXT
	for _, c := range ifc.cache {
		if !c.expires.After(now) {
			continue
		}
		switch rr := c.rr.(type) {
		case *dns.PTR:
			ptr = ptr || dns.CanonicalName(rr.Ptr) == inst && dns.CanonicalName(rr.Hdr.Name) == s.svcName
		case *dns.SRV:
			if dns.CanonicalName(rr.Hdr.Name) == inst {
				srv = rr
			}
		case *dns.TXT:
			if dns.CanonicalName(rr.Hdr.Name) == inst {
				txt = rr
			}
		}
	}
	if !ptr {
		// Not (or no longer) an instance: nothing to ask for.
		return Found{}, nil, nil
	}
	if srv == nil {
		missing = append(missing, dns.Question{Name: inst, Qtype: dns.TypeSRV, Qclass: dns.ClassINET})
	}
	if txt == nil {
		missing = append(missing, dns.Question{Name: inst, Qtype: dns.TypeTXT, Qclass: dns.ClassINET})
	}
	if srv == nil {
		return Found{}, missing, nil
	}
	target := dns.CanonicalName(srv.Target)
	var v4, v6 []net.IP
	for _, c := range ifc.cache {
		if !c.expires.After(now) || dns.CanonicalName(c.rr.Header().Name) != target {
			continue
		}
		switch rr := c.rr.(type) {
		case *dns.A:
			if ip := rr.A.To4(); ip != nil && usable(ip) {
				v4 = append(v4, ip)
			}
		case *dns.AAAA:
			if ip := rr.AAAA; ip.To4() == nil && len(ip) == net.IPv6len && usable(ip) && !ip.IsLinkLocalUnicast() {
				v6 = append(v6, ip)
			}
		}
	}
	if len(v4)+len(v6) == 0 {
		missing = append(missing, dns.Question{Name: target, Qtype: dns.TypeA, Qclass: dns.ClassINET})
	}
	if len(missing) > 0 {
		return Found{}, missing, nil
	}
	r, err := ParseTXT(txt.Txt)
	if err != nil {
		return Found{}, nil, err
	}
	if want := r.ID + "." + s.svcName; inst != want {
		return Found{}, nil, fmt.Errorf("instance name %s is not the announced id (want %q)", quoteValue(inst), want)
	}
	// Addresses on ifc's own subnets first: those are the ones this host
	// surely reaches; then any others, in a fixed order.
	addrs := append(v4, v6...)
	slices.SortStableFunc(addrs, func(a, b net.IP) int {
		ao, bo := ifc.onLink(a), ifc.onLink(b)
		switch {
		case ao && !bo:
			return -1
		case bo && !ao:
			return 1
		}
		return strings.Compare(string(a.To16()), string(b.To16()))
	})
	return Found{Record: r, Addrs: addrs, Interface: ifc.ifi.Name}, nil, nil
}

// report checks instance inst on ifc after a response touched it: a
// complete, valid one goes to OnFound (repeats included); an incomplete
// one gets a follow-up query for what is missing.
func (s *Service) report(ifc *ifaceState, inst string, now time.Time) {
	f, missing, err := s.assemble(ifc, inst, now)
	switch {
	case err != nil:
		s.answers.Add(1)
		s.refused.Add(1)
		s.log.Debug("mDNS answer refused", "iface", ifc.ifi.Name, "instance", quoteValue(inst), "err", err)
	case len(missing) > 0:
		if last, ok := ifc.followUp[inst]; ok && now.Sub(last) < followUpGap {
			return
		}
		if len(ifc.followUp) >= maxCache {
			clear(ifc.followUp)
		}
		ifc.followUp[inst] = now
		// Not s.multicast: that times this host's own records.
		s.send(ifc, &dns.Msg{Question: missing}, &net.UDPAddr{IP: mdnsGroup, Port: mdnsPort}, "follow-up query")
	case f.ID == "":
		// A goodbye or a PTR that went: handled when it expires.
	case f.ID == s.opts.Self.ID:
		s.answers.Add(1)
		s.self.Add(1)
	default:
		s.answers.Add(1)
		ifc.present[inst] = f
		if s.opts.OnFound != nil {
			s.opts.OnFound(f)
		}
	}
}

// expire drops the records of every interface that expired, reports the
// instances that went with them to OnLost, and returns when the next
// record expires (zero when the caches are empty).
func (s *Service) expire(now time.Time) time.Time {
	var next time.Time
	for _, ifc := range s.ifaces {
		for k, c := range ifc.cache {
			if !c.expires.After(now) {
				delete(ifc.cache, k)
			} else if next.IsZero() || c.expires.Before(next) {
				next = c.expires
			}
		}
	}
	for _, ifc := range s.ifaces {
		for inst, f := range ifc.present {
			if g, missing, err := s.assemble(ifc, inst, now); err == nil && len(missing) == 0 && g.ID != "" {
				continue
			}
			delete(ifc.present, inst)
			if s.presentAnywhere(inst) {
				continue
			}
			s.lost.Add(1)
			s.log.Info("mDNS host gone", "iface", ifc.ifi.Name, "node", f.Name, "id", f.ID)
			if s.opts.OnLost != nil {
				s.opts.OnLost(f)
			}
		}
	}
	return next
}

func (s *Service) presentAnywhere(inst string) bool {
	for _, ifc := range s.ifaces {
		if _, ok := ifc.present[inst]; ok {
			return true
		}
	}
	return false
}
