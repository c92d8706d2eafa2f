package discovery

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/net/ipv4"
)

// mdnsPort and mdnsGroup are where mDNS lives (RFC 6762 section 3).
const mdnsPort = 5353

var mdnsGroup = net.IPv4(224, 0, 0, 251).To4()

// maxPacket is the largest mDNS message read or written (RFC 6762 section
// 17: 9000 bytes, jumbo frames included).
const maxPacket = 9000

// openSocket opens the one socket a Service uses: UDP 0.0.0.0:5353, shared
// with any other mDNS responder on the machine (SO_REUSEADDR and
// SO_REUSEPORT, which avahi also sets), joined to 224.0.0.251 on each of
// the given interfaces only, and reporting the arrival interface of every
// packet (IP_PKTINFO), which is how an answer goes back out of the
// interface its query came in on, with that interface's addresses.
func openSocket(ifaces []net.Interface) (*ipv4.PacketConn, error) {
	lc := net.ListenConfig{Control: socketOptions}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", mdnsPort))
	if err != nil {
		return nil, fmt.Errorf("opening UDP port %d: %w", mdnsPort, err)
	}
	p := ipv4.NewPacketConn(pc)
	fail := func(what string, err error) (*ipv4.PacketConn, error) {
		p.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := p.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		return fail("asking for the arrival interface of packets (IP_PKTINFO)", err)
	}
	// RFC 6762 section 11: mDNS is sent with IP TTL 255, unicast included.
	if err := p.SetMulticastTTL(255); err != nil {
		return fail("setting the multicast TTL", err)
	}
	if err := p.SetTTL(255); err != nil {
		return fail("setting the unicast TTL", err)
	}
	// Other mDNS software on this machine (and other Services in this
	// process) must see what this one sends.
	if err := p.SetMulticastLoopback(true); err != nil {
		return fail("enabling multicast loopback", err)
	}
	for i := range ifaces {
		if err := p.JoinGroup(&ifaces[i], &net.UDPAddr{IP: mdnsGroup}); err != nil {
			return fail(fmt.Sprintf("joining %v on %s", mdnsGroup, ifaces[i].Name), err)
		}
	}
	return p, nil
}
