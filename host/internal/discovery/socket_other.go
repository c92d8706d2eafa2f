//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package discovery

import (
	"fmt"
	"runtime"
	"syscall"
)

// socketOptions refuses: on this platform golang.org/x/net/ipv4 does not
// report the arrival interface of a packet, without which a multi-homed
// host cannot answer on each interface with that interface's addresses.
func socketOptions(network, address string, c syscall.RawConn) error {
	return fmt.Errorf("mDNS discovery is not supported on %s: it needs the arrival interface of each packet (IP_PKTINFO)", runtime.GOOS)
}
