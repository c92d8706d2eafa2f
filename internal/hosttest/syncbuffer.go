package hosttest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// SyncBuffer is an io.Writer that goroutines may write while a test reads
// it: a host's log, a process's stdout. The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Reset forgets everything written so far, for a buffer that tests run
// one at a time share.
func (s *SyncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// Contains reports whether sub was written (in one piece) so far.
func (s *SyncBuffer) Contains(sub string) bool { return strings.Contains(s.String(), sub) }

// Logger returns a debug-level text logger writing to s.
func (s *SyncBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
