package identity

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Files a config names are read only when they are regular and small:
// trust.ca: /dev/zero once read until the process ran out of memory.
func TestConfiguredFilesAreBounded(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxCAFile + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"/dev/zero", "CA file /dev/zero is a device, not a regular file"},
		{fifo, "is a named pipe, not a regular file"},
		{big, "more than the 4194304 allowed"},
		{filepath.Join(dir, "missing.pem"), "no such file"},
	} {
		_, err := LoadCA(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadCA(%s) = %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
	if _, err := loadCert("/dev/zero", nil); err == nil || !strings.Contains(err.Error(), "node certificate /dev/zero is a device, not a regular file") {
		t.Errorf("loadCert(/dev/zero) = %v", err)
	}
}
