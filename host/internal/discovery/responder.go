package discovery

import (
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TTLs (RFC 6762 section 10): 120 s for records about a host's addresses
// and its SRV, 75 minutes for the others.
const (
	hostTTL  = 120
	otherTTL = 4500
	// legacyTTL caps the TTLs of an answer to a legacy (one-shot, not
	// port 5353) query (RFC 6762 section 6.7).
	legacyTTL = 10
)

// cacheFlush is the top bit of the class of a unique record in a response
// (RFC 6762 section 10.2); unicastResponse is the same bit in a question,
// the QU bit (section 5.4).
const (
	cacheFlush      = 1 << 15
	unicastResponse = 1 << 15
)

// servicesName is the DNS-SD service enumeration name (RFC 6763 section 9).
const servicesName = "_services._dns-sd._udp." + domain

// Announcement timing (RFC 6762 section 8.3): two unsolicited responses one
// second apart at start.
const (
	announcements    = 2
	announceInterval = time.Second
)

// Multicast response timing (RFC 6762 section 6): an answer that includes a
// shared record (the PTR) waits 20-120 ms, one to a query with more known
// answers to come (TC bit) 400-500 ms, and a record is multicast on an
// interface at most once a second.
const (
	sharedDelayMin    = 20 * time.Millisecond
	sharedDelaySpread = 100 * time.Millisecond
	tcDelayMin        = 400 * time.Millisecond
	tcDelaySpread     = 100 * time.Millisecond
	mcastRateLimit    = time.Second
)

// records are this host's records on one interface: the addresses are that
// interface's own (RFC 6762 section 6.2).
func (s *Service) records(ifc *ifaceState) []dns.RR {
	if len(ifc.addrs) == 0 {
		return nil
	}
	rrs := []dns.RR{
		&dns.PTR{Hdr: hdr(s.svcName, dns.TypePTR, otherTTL, false), Ptr: s.instName},
		&dns.PTR{Hdr: hdr(servicesName, dns.TypePTR, otherTTL, false), Ptr: s.svcName},
		&dns.SRV{Hdr: hdr(s.instName, dns.TypeSRV, hostTTL, true), Port: uint16(s.port), Target: s.hostName},
		&dns.TXT{Hdr: hdr(s.instName, dns.TypeTXT, otherTTL, true), Txt: s.opts.Self.TXT()},
	}
	for _, ip := range ifc.addrs {
		rrs = append(rrs, &dns.A{Hdr: hdr(s.hostName, dns.TypeA, hostTTL, true), A: ip})
	}
	// Negative answers (RFC 6762 section 6.1): the host name has no other
	// type (no AAAA: see the package doc), the instance only SRV and TXT.
	rrs = append(rrs,
		&dns.NSEC{Hdr: hdr(s.hostName, dns.TypeNSEC, hostTTL, true), NextDomain: s.hostName, TypeBitMap: []uint16{dns.TypeA}},
		&dns.NSEC{Hdr: hdr(s.instName, dns.TypeNSEC, otherTTL, true), NextDomain: s.instName, TypeBitMap: []uint16{dns.TypeTXT, dns.TypeSRV}},
	)
	return rrs
}

func hdr(name string, t uint16, ttl uint32, unique bool) dns.RR_Header {
	class := uint16(dns.ClassINET)
	if unique {
		class |= cacheFlush
	}
	return dns.RR_Header{Name: name, Rrtype: t, Class: class, Ttl: ttl}
}

// matches reports whether rr answers question q (name and type; ANY
// matches every type). An NSEC answers any type its name lacks.
func matches(q dns.Question, rr dns.RR) bool {
	h := rr.Header()
	if !strings.EqualFold(q.Name, h.Name) {
		return false
	}
	if h.Rrtype == dns.TypeNSEC {
		if q.Qtype == dns.TypeANY {
			return false
		}
		for _, t := range rr.(*dns.NSEC).TypeBitMap {
			if t == q.Qtype {
				return false
			}
		}
		return true
	}
	return q.Qtype == dns.TypeANY || q.Qtype == h.Rrtype
}

// known reports whether the querier listed rr among its known answers with
// at least half its TTL left (RFC 6762 section 7.1).
func known(rr dns.RR, knownAnswers []dns.RR) bool {
	want := dns.Copy(rr)
	want.Header().Class &^= cacheFlush
	for _, k := range knownAnswers {
		kc := dns.Copy(k)
		kc.Header().Class &^= cacheFlush
		if dns.IsDuplicate(want, kc) && kc.Header().Ttl >= rr.Header().Ttl/2 {
			return true
		}
	}
	return false
}

// response builds a response on ifc: the records matching any of the
// questions (all of them when questions is nil: an announcement) in the
// answer section, the rest of this host's records as additional ones, so
// that one packet carries everything a browser needs. ttl0 makes it a
// goodbye.
func (s *Service) response(ifc *ifaceState, questions []dns.Question, ttl0 bool) *dns.Msg {
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}
	for _, rr := range s.records(ifc) {
		rr = dns.Copy(rr)
		if ttl0 {
			rr.Header().Ttl = 0
		}
		answer := questions == nil
		for _, q := range questions {
			if matches(q, rr) {
				answer = true
				break
			}
		}
		if answer {
			m.Answer = append(m.Answer, rr)
		} else if !ttl0 {
			m.Extra = append(m.Extra, rr)
		}
	}
	return m
}

// handleQuery answers a query that arrived on ifc from src (on-link,
// checked). A legacy query (source port not 5353) gets a unicast answer
// in classic DNS form; a query sent to this host by unicast, or a QU
// question when this host multicast its records on ifc recently, a unicast
// one; everything else a multicast one, after the delay and within the
// rate limit RFC 6762 section 6 sets.
func (s *Service) handleQuery(ifc *ifaceState, m *dns.Msg, src *net.UDPAddr, toGroup bool, now time.Time) {
	ours := s.records(ifc)
	if len(ours) == 0 {
		return
	}
	legacy := src.Port != mdnsPort
	var mcast, ucast []dns.Question
	shared := false
	for _, q := range m.Question {
		qu := q.Qclass&unicastResponse != 0
		class := q.Qclass &^ unicastResponse
		if class != dns.ClassINET && class != dns.ClassANY {
			continue
		}
		var answers []dns.RR
		for _, rr := range ours {
			if matches(q, rr) && !known(rr, m.Answer) {
				answers = append(answers, rr)
			}
		}
		if len(answers) == 0 {
			continue
		}
		q.Qclass = class
		switch {
		case legacy || !toGroup:
			ucast = append(ucast, q)
		case qu && now.Sub(ifc.lastMcast) < time.Duration(hostTTL)*time.Second/4:
			ucast = append(ucast, q)
		default:
			mcast = append(mcast, q)
			for _, rr := range answers {
				if rr.Header().Class&cacheFlush == 0 {
					shared = true
				}
			}
		}
	}
	if len(ucast) > 0 {
		r := s.response(ifc, ucast, false)
		if legacy {
			// RFC 6762 section 6.7: the query's id and question, short
			// TTLs, no cache-flush bits, as a plain DNS server answers.
			r.Id = m.Id
			r.Question = ucast
			for _, rr := range append(r.Answer, r.Extra...) {
				rr.Header().Class &^= cacheFlush
				rr.Header().Ttl = min(rr.Header().Ttl, legacyTTL)
			}
		}
		s.send(ifc, r, src, "answer")
	}
	if len(mcast) > 0 {
		delay := time.Duration(0)
		switch {
		case m.Truncated:
			delay = tcDelayMin + randDuration(tcDelaySpread)
		case shared:
			delay = sharedDelayMin + randDuration(sharedDelaySpread)
		}
		at := now.Add(delay)
		if ifc.pendingAt.IsZero() || at.Before(ifc.pendingAt) {
			ifc.pendingAt = at
		}
		ifc.pendingQ = append(ifc.pendingQ, mcast...)
		if len(ifc.pendingQ) > maxPendingQuestions {
			// Every question asks for this host's records: once there are
			// this many, the answer is all of them anyway.
			ifc.pendingQ = ifc.pendingQ[:maxPendingQuestions]
		}
	}
}

// maxPendingQuestions bounds the questions a delayed multicast answer
// collects.
const maxPendingQuestions = 32

// flushPending multicasts the delayed answer on ifc when it is due and the
// rate limit allows; it returns when it will be due otherwise (zero when
// nothing is pending).
func (s *Service) flushPending(ifc *ifaceState, now time.Time) time.Time {
	if ifc.pendingAt.IsZero() {
		return time.Time{}
	}
	due := ifc.pendingAt
	if next := ifc.lastMcast.Add(mcastRateLimit); !ifc.lastMcast.IsZero() && next.After(due) {
		due = next
	}
	if now.Before(due) {
		return due
	}
	r := s.response(ifc, ifc.pendingQ, false)
	ifc.pendingAt, ifc.pendingQ = time.Time{}, nil
	s.multicast(ifc, r, "answer")
	return time.Time{}
}

// multicast sends m to 224.0.0.251:5353 out of ifc.
func (s *Service) multicast(ifc *ifaceState, m *dns.Msg, what string) {
	if s.send(ifc, m, &net.UDPAddr{IP: mdnsGroup, Port: mdnsPort}, what) {
		ifc.lastMcast = time.Now()
	}
}
