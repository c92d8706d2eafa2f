//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package discovery

// platformSocketOptions: BSD sockets receive only the groups they joined.
func platformSocketOptions(fd int) error { return nil }
