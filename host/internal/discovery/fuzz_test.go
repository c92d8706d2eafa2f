package discovery

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// FuzzHandlePacket feeds arbitrary datagrams to the responder and browser
// as if they arrived on a LAN interface from an on-link address: nothing
// panics, the cache stays within maxCache, and whatever OnFound reports
// passed ParseTXT. The socket is closed before fuzzing, so answers and
// follow-up queries fail to send (counted) and no packet leaves the test.
func FuzzHandlePacket(f *testing.F) {
	self := Record{ID: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Name: "self", TCPPort: 7400, QUICPort: 7400, MinProto: 1, MaxProto: 2}
	other := Record{ID: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Name: "other", TCPPort: 7401, QUICPort: 7401, MinProto: 1, MaxProto: 2}
	svc := dns.CanonicalName(ServiceType + "." + domain)
	inst := dns.CanonicalName(other.ID + "." + ServiceType + "." + domain)
	host := dns.CanonicalName(other.ID + "." + domain)
	answer := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Answer: []dns.RR{
		&dns.PTR{Hdr: hdr(svc, dns.TypePTR, 120, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120, true), Port: 7401, Target: host},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120, true), Txt: other.TXT()},
		&dns.A{Hdr: hdr(host, dns.TypeA, 120, true), A: net.IPv4(10, 9, 0, 2)},
	}}
	query := &dns.Msg{Question: []dns.Question{{Name: svc, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}}
	goodbye := answer.Copy()
	for _, rr := range goodbye.Answer {
		rr.Header().Ttl = 0
	}
	for _, m := range []*dns.Msg{answer, query, goodbye} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Add([]byte{0, 0, 0x84, 0, 0, 0, 0, 1}, true)

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	pc.Close()
	var found []Found
	s := &Service{
		opts: Options{Self: self, Interval: defaultInterval,
			OnFound: func(x Found) { found = append(found, x) }, OnLost: func(Found) {}},
		log:      slog.New(slog.DiscardHandler),
		conn:     ipv4.NewPacketConn(pc),
		byIndex:  map[int]*ifaceState{},
		svcName:  svc,
		instName: dns.CanonicalName(self.ID + "." + ServiceType + "." + domain),
		hostName: dns.CanonicalName(self.ID + "." + domain),
		port:     self.QUICPort,
	}
	_, lan, _ := net.ParseCIDR("10.9.0.1/24")
	lan.IP = net.IPv4(10, 9, 0, 1)
	ifc := &ifaceState{ifi: net.Interface{Index: 7, Name: "fuzz0"}, nets: []*net.IPNet{lan}, addrs: []net.IP{lan.IP},
		cache: map[string]*cached{}, present: map[string]Found{}, followUp: map[string]time.Time{}}
	s.ifaces = []*ifaceState{ifc}
	s.byIndex[7] = ifc
	now := time.Unix(1_800_000_000, 0)

	f.Fuzz(func(t *testing.T, data []byte, toGroup bool) {
		found = found[:0]
		now = now.Add(time.Second)
		s.handle(packet{data: data, src: &net.UDPAddr{IP: net.IPv4(10, 9, 0, 2), Port: mdnsPort}, ifIndex: 7, toGroup: toGroup}, now)
		s.expire(now)
		if len(ifc.cache) > maxCache {
			t.Fatalf("cache holds %d records, more than maxCache (%d)", len(ifc.cache), maxCache)
		}
		for _, x := range found {
			if _, err := ParseTXT(x.TXT()); err != nil {
				t.Fatalf("OnFound got a record ParseTXT refuses: %+v: %v", x.Record, err)
			}
		}
	})
}
