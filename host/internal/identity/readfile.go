package identity

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Limits on the files a config names (node key, certificate, CA bundle).
// A path is operator input like any other key: /dev/zero, a FIFO or a
// multi-gigabyte file must be refused with a clear error, not read until
// memory runs out.
const (
	maxKeyFile  = 64 << 10 // a PEM ed25519 key is ~120 bytes
	maxCertFile = 1 << 20  // a certificate chain
	maxCAFile   = 4 << 20  // a CA bundle (the system bundle is ~220 KB)
)

// readSmallFile reads path, which must be a regular file of at most max
// bytes; what names it in errors ("node key", "CA file").
func readSmallFile(path, what string, max int64) ([]byte, error) {
	// Stat before opening: opening a FIFO for reading blocks until a
	// writer comes.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is %s, not a regular file", what, path, fileKind(st.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is %s, not a regular file", what, path, fileKind(st.Mode()))
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s %s is %d bytes, more than the %d allowed", what, path, st.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if int64(len(data)) > max { // grew after the stat
		return nil, fmt.Errorf("%s %s is more than the %d bytes allowed", what, path, max)
	}
	return data, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a plain file"
}
