//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package discovery

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketOptions lets the mDNS socket share port 5353 with other responders
// (avahi, mDNSResponder, another Service) and, on Linux, receive multicast
// only for the groups and interfaces it joined (IP_MULTICAST_ALL off).
func socketOptions(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1); serr != nil {
				return
			}
		}
		serr = platformSocketOptions(int(fd))
	})
	if err != nil {
		return err
	}
	return serr
}
