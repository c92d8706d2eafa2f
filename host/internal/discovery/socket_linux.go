package discovery

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// platformSocketOptions turns IP_MULTICAST_ALL off: by default Linux hands
// a socket bound to the wildcard address the multicast of every group any
// socket joined on any interface.
func platformSocketOptions(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
		return fmt.Errorf("IP_MULTICAST_ALL: %w", err)
	}
	return nil
}
