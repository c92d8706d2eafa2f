package hosttest

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
)

// LogRecords is an io.Writer for a host's JSON-lines log (log.format
// json) that keeps each line, decoded when it is a JSON object, with the
// time it arrived: a test asks which records a host logged, and when,
// while the host goes on writing. The zero value is ready to use.
type LogRecords struct {
	mu      sync.Mutex
	partial []byte
	raw     []string
	recs    []LogRecord
	changed chan struct{} // closed and replaced by every complete line
}

// LogRecord is one decoded log line.
type LogRecord struct {
	// At is when the line was written to the LogRecords (the host's own
	// "time" field has a coarser, host-side clock).
	At time.Time
	// Fields are the line's JSON fields ("msg", "level", ...).
	Fields map[string]any
}

// Msg is the record's "msg" field.
func (r LogRecord) Msg() string { s, _ := r.Fields["msg"].(string); return s }

// Write takes in p, which may hold part of a line or several lines.
func (l *LogRecords) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	now := time.Now()
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.raw = append(l.raw, line)
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			l.recs = append(l.recs, LogRecord{At: now, Fields: m})
		}
		added = true
	}
	if added && l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return len(p), nil
}

// Changed returns a channel closed when the next complete line arrives.
func (l *LogRecords) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// Find returns the first record with message msg.
func (l *LogRecords) Find(msg string) (LogRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Msg() == msg {
			return r, true
		}
	}
	return LogRecord{}, false
}

// All returns the records so far, in order.
func (l *LogRecords) All() []LogRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// FirstAt is when a record with one of msgs was first written at or after
// since; zero if none was.
func (l *LogRecords) FirstAt(since time.Time, msgs ...string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		for _, msg := range msgs {
			if r.Msg() == msg && !r.At.Before(since) {
				return r.At
			}
		}
	}
	return time.Time{}
}

// Index is the index of the first line (JSON or not) that contains s, or
// -1.
func (l *LogRecords) Index(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, line := range l.raw {
		if strings.Contains(line, s) {
			return i
		}
	}
	return -1
}

// Lines returns up to n lines from index i, joined by newlines.
func (l *LogRecords) Lines(i, n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	i = min(max(i, 0), len(l.raw))
	return strings.Join(l.raw[i:min(len(l.raw), i+n)], "\n")
}

// Tail returns the last n lines, joined by newlines.
func (l *LogRecords) Tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw[max(0, len(l.raw)-n):], "\n")
}
