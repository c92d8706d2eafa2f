package watch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/internal/hosttest"
)

// waitBound is how long a test waits for something that must happen. It is
// a liveness bound, far above the expected time, so that a loaded machine
// does not fail a test; correctness never depends on it.
const waitBound = 20 * time.Second

// pollEvery is the step of bounded polls.
const pollEvery = 5 * time.Millisecond

// report is one onChange call.
type report struct {
	data []byte
	sum  [32]byte
}

// sink collects the onChange calls of one path.
type sink struct {
	ch chan report
}

func newSink() *sink { return &sink{ch: make(chan report, 64)} }

func (s *sink) onChange(data []byte, sum [32]byte) {
	s.ch <- report{data: bytes.Clone(data), sum: sum}
}

// next waits for the next report, failing the test after waitBound.
func (s *sink) next(t *testing.T) report {
	t.Helper()
	select {
	case r := <-s.ch:
		return r
	case <-time.After(waitBound):
		t.Fatalf("no report within %v", waitBound)
		return report{}
	}
}

// none asserts that no report arrives within d. It can only err towards
// passing on a slow machine, never towards failing.
func (s *sink) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-s.ch:
		t.Fatalf("unexpected report of %d bytes: %q", len(r.data), short(r.data))
	case <-time.After(d):
	}
}

// wantReport waits for the next report and checks it carries want.
func (s *sink) wantReport(t *testing.T, want []byte) {
	t.Helper()
	r := s.next(t)
	if !bytes.Equal(r.data, want) {
		t.Fatalf("reported content %q, want %q", short(r.data), short(want))
	}
	if r.sum != sha256.Sum256(want) {
		t.Fatalf("reported sum %x, want sha256 of the content", r.sum)
	}
}

func short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// checks records how each check of each path ended.
type checks struct {
	mu   sync.Mutex
	list []check
}

type check struct {
	path string
	o    outcome
}

func (c *checks) observe(path string, o outcome) {
	c.mu.Lock()
	c.list = append(c.list, check{path, o})
	c.mu.Unlock()
}

// mark returns a position to wait after.
func (c *checks) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.list)
}

// waitFor polls, with a bound, until a check of path ending with o is
// recorded after position from, and returns the position after it.
func (c *checks) waitFor(t *testing.T, from int, path string, o outcome) int {
	t.Helper()
	next := 0
	hosttest.CheckForEvery(t, waitBound, pollEvery, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for j := from; j < len(c.list); j++ {
			if c.list[j].path == path && c.list[j].o == o {
				next = j + 1
				return nil
			}
		}
		return fmt.Errorf("no %q check of %s after position %d (%d checks recorded)", o, path, from, len(c.list))
	})
	return next
}

// logRecorder is a slog.Handler that keeps the records it is given.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// warnings returns the messages of records at Warn level or above.
func (l *logRecorder) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level >= slog.LevelWarn {
			out = append(out, r.Message)
		}
	}
	return out
}

// env is a Watcher under test with its recorders.
type env struct {
	w      *Watcher
	checks *checks
	logs   *logRecorder
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	logs := &logRecorder{}
	opts.Logger = slog.New(logs)
	w, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c := &checks{}
	w.observe = c.observe
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{w: w, checks: c, logs: logs}
}

// add watches path with the hash of known as the initial content and waits
// until the initial check has finished, so the test starts from a quiet
// watcher.
func (e *env) add(t *testing.T, path string, known []byte) *sink {
	t.Helper()
	var initial [32]byte
	if known != nil {
		initial = sha256.Sum256(known)
	}
	s := newSink()
	from := e.checks.mark()
	if err := e.w.Add(path, initial, s.onChange); err != nil {
		t.Fatalf("Add(%s): %v", path, err)
	}
	want := outcomeUnchanged
	if known == nil {
		want = outcomeGone
	}
	e.checks.waitFor(t, from, path, want)
	return s
}

// writeAtomic replaces path with data the safe way: a temporary file in the
// same directory, renamed over the target.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteThenRenameReportedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	old := []byte("old plugin")
	writeFile(t, path, old)
	s := e.add(t, path, old)

	next := randomBytes(t, 100_000)
	writeAtomic(t, path, next)
	s.wantReport(t, next)
	s.none(t, 10*50*time.Millisecond)
	if w := e.logs.warnings(); len(w) != 0 {
		t.Fatalf("unexpected warnings: %q", w)
	}
}

func TestUnknownInitialReportsExistingContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	content := []byte("already there")
	writeFile(t, path, content)

	s := newSink()
	if err := e.w.Add(path, [32]byte{}, s.onChange); err != nil {
		t.Fatal(err)
	}
	s.wantReport(t, content)
	s.none(t, 10*50*time.Millisecond)
}

func TestSameContentNotReported(t *testing.T) {
	t.Parallel()
	// The in-place rewrite below truncates first; a long settle keeps the
	// empty moment from looking stable.
	e := newEnv(t, Options{Settle: 300 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	content := randomBytes(t, 10_000)
	writeFile(t, path, content)
	s := e.add(t, path, content)

	// touch: new mtime, same bytes.
	from := e.checks.mark()
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	from = e.checks.waitFor(t, from, path, outcomeUnchanged)

	// cp same.wasm plugin.wasm: truncate and write in place.
	writeFile(t, path, bytes.Clone(content))
	from = e.checks.waitFor(t, from, path, outcomeUnchanged)

	// An identical copy renamed over the file: new inode, same bytes.
	writeAtomic(t, path, bytes.Clone(content))
	e.checks.waitFor(t, from, path, outcomeUnchanged)

	// A real change afterwards is the only report: nothing before it was
	// reported, and the watcher still works after unchanged checks.
	changed := append(bytes.Clone(content), "v2"...)
	writeAtomic(t, path, changed)
	s.wantReport(t, changed)
	s.none(t, 3*300*time.Millisecond)
}

func TestSlowChunkedWriteReportedWhenComplete(t *testing.T) {
	t.Parallel()
	// The pauses between chunks are a tenth of the settle interval, so the
	// partial file is never quiet for a whole interval unless the machine
	// stalls this goroutine for over a second.
	const settle = 1500 * time.Millisecond
	const pause = settle / 10
	e := newEnv(t, Options{Settle: settle})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	old := []byte("old plugin")
	writeFile(t, path, old)
	s := e.add(t, path, old)

	content := randomBytes(t, 256*1024)
	const chunks = 8
	step := len(content) / chunks

	// Like cp: truncate the existing file, then write it in pieces.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < chunks; i++ {
		if _, err := f.Write(content[i*step : (i+1)*step]); err != nil {
			t.Fatal(err)
		}
		// The pause between chunks doubles as the check that nothing is
		// reported while the file is incomplete.
		if i < chunks-1 {
			s.none(t, pause)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	s.wantReport(t, content)
	s.none(t, settle)
}

func TestDeleteThenRecreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	old := []byte("old plugin")
	writeFile(t, path, old)
	s := e.add(t, path, old)

	from := e.checks.mark()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, path, outcomeGone)
	if w := e.logs.warnings(); len(w) != 0 {
		t.Fatalf("a removed file must not be a warning, got %q", w)
	}

	recreated := []byte("recreated plugin")
	writeAtomic(t, path, recreated)
	s.wantReport(t, recreated)

	// And once more with a plain create-and-write instead of a rename.
	from = e.checks.mark()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, path, outcomeGone)
	again := []byte("written in place")
	writeFile(t, path, again)
	s.wantReport(t, again)
	s.none(t, 10*50*time.Millisecond)
}

func TestFileCreatedAfterAdd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "later.wasm")
	s := e.add(t, path, nil)

	content := []byte("first version")
	writeAtomic(t, path, content)
	s.wantReport(t, content)
}

func TestTwoFilesInOneDirectory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.wasm"), filepath.Join(dir, "b.wasm")
	writeFile(t, pa, []byte("a0"))
	writeFile(t, pb, []byte("b0"))
	sa := e.add(t, pa, []byte("a0"))
	sb := e.add(t, pb, []byte("b0"))

	writeAtomic(t, pa, []byte("a1"))
	sa.wantReport(t, []byte("a1"))

	writeAtomic(t, pb, []byte("b1"))
	sb.wantReport(t, []byte("b1"))

	// Both at once, several times over: each ends with one report of its
	// own last content.
	for i := 0; i < 5; i++ {
		writeAtomic(t, pa, []byte("a-burst"))
		writeAtomic(t, pb, []byte("b-burst"))
	}
	writeAtomic(t, pa, []byte("a2"))
	writeAtomic(t, pb, []byte("b2"))
	wantLast(t, sa, []byte("a2"))
	wantLast(t, sb, []byte("b2"))
}

// wantLast drains reports until one carries want. Reports of intermediate
// contents are allowed (the machine may have paused between writes long
// enough for them to settle), reports of anything else are not.
func wantLast(t *testing.T, s *sink, want []byte) {
	t.Helper()
	for {
		r := s.next(t)
		if bytes.Equal(r.data, want) {
			s.none(t, 500*time.Millisecond)
			return
		}
		if !strings.Contains(string(r.data), "burst") {
			t.Fatalf("reported %q, want %q", short(r.data), short(want))
		}
	}
}

func TestBurstOfEventsGivesOneReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 300 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	writeFile(t, path, []byte("v0"))
	s := e.add(t, path, []byte("v0"))

	// Many events in a row for the same final content: touches, an
	// identical rewrite and a rename.
	content := randomBytes(t, 50_000)
	writeAtomic(t, path, content)
	for i := 0; i < 20; i++ {
		now := time.Now().Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(path, now, now); err != nil {
			t.Fatal(err)
		}
	}
	writeAtomic(t, path, bytes.Clone(content))
	s.wantReport(t, content)
	s.none(t, 3*300*time.Millisecond)
}

func TestRemoveStopsReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.wasm"), filepath.Join(dir, "b.wasm")
	writeFile(t, pa, []byte("a0"))
	writeFile(t, pb, []byte("b0"))
	sa := e.add(t, pa, []byte("a0"))
	sb := e.add(t, pb, []byte("b0"))

	e.w.Remove(pa)
	e.w.Remove(pa) // a second Remove is harmless
	writeAtomic(t, pa, []byte("a1"))
	writeAtomic(t, pb, []byte("b1"))
	// b's report shows events of this directory were processed after a's
	// write; a must stay silent.
	sb.wantReport(t, []byte("b1"))
	sa.none(t, 10*50*time.Millisecond)

	// Removing the last file of a directory ends the directory watch; adding
	// it again must bring it back.
	e.w.Remove(pb)
	sb2 := e.add(t, pb, []byte("b1"))
	writeAtomic(t, pb, []byte("b2"))
	sb2.wantReport(t, []byte("b2"))
	if n := len(sb.ch); n != 0 {
		t.Fatalf("%d reports went to the callback of a removed watch", n)
	}
}

func TestCallbacksForOnePathDoNotOverlap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.wasm"), filepath.Join(dir, "b.wasm")
	writeFile(t, pa, []byte("a0"))
	writeFile(t, pb, []byte("b0"))

	var inFlight, maxInFlight atomic.Int32
	started := make(chan []byte, 8)
	release := make(chan struct{})
	onA := func(data []byte, _ [32]byte) {
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		started <- bytes.Clone(data)
		<-release
		inFlight.Add(-1)
	}
	from := e.checks.mark()
	if err := e.w.Add(pa, sha256.Sum256([]byte("a0")), onA); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, pa, outcomeUnchanged)
	sb := e.add(t, pb, []byte("b0"))

	writeAtomic(t, pa, []byte("a1"))
	if got := <-started; string(got) != "a1" {
		t.Fatalf("first callback got %q, want a1", got)
	}
	// While a's callback is blocked, a changes again and b changes: b is
	// reported (paths are independent), a's second callback must wait.
	writeAtomic(t, pa, []byte("a2"))
	writeAtomic(t, pb, []byte("b1"))
	sb.wantReport(t, []byte("b1"))
	select {
	case got := <-started:
		t.Fatalf("second callback for a started (%q) while the first was running", got)
	default:
	}

	release <- struct{}{}
	select {
	case got := <-started:
		if string(got) != "a2" {
			t.Fatalf("second callback got %q, want a2", got)
		}
	case <-time.After(waitBound):
		t.Fatal("no second callback for a")
	}
	release <- struct{}{}
	if m := maxInFlight.Load(); m != 1 {
		t.Fatalf("%d callbacks for one path ran at once, want 1", m)
	}
}

func TestUnreadableFileRetriedOnNextEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	writeFile(t, path, []byte("v0"))
	s := e.add(t, path, []byte("v0"))

	// Something that cannot be read as a plugin appears under the name.
	from := e.checks.mark()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, path, outcomeUnreadable)
	if w := e.logs.warnings(); len(w) == 0 {
		t.Fatal("an unreadable plugin path logged no warning")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, []byte("v1"))
	s.wantReport(t, []byte("v1"))
}

func TestPermissionDeniedRetriedOnNextEvent(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	writeFile(t, path, []byte("v0"))
	s := e.add(t, path, []byte("v0"))

	// A new version appears already unreadable (mode 0 before the rename).
	from := e.checks.mark()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-unreadable")
	writeFile(t, tmp, []byte("v1"))
	if err := os.Chmod(tmp, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, path, outcomeUnreadable)
	if w := e.logs.warnings(); len(w) == 0 {
		t.Fatal("an unreadable plugin file logged no warning")
	}
	// Making it readable is the next event; the file is then reported.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s.wantReport(t, []byte("v1"))
}

func TestMaxWaitGivesUpThenRecovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 200 * time.Millisecond, MaxWait: 600 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	writeFile(t, path, []byte("v0"))
	s := e.add(t, path, []byte("v0"))

	// A writer that never stops appending, much faster than the settle
	// interval: the watcher must give up with a warning, not wait forever.
	from := e.checks.mark()
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			writerDone <- err
			return
		}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				writerDone <- f.Close()
				return
			case <-tick.C:
				if _, err := f.Write([]byte("growing")); err != nil {
					f.Close()
					writerDone <- err
					return
				}
			}
		}
	}()
	e.checks.waitFor(t, from, path, outcomeGaveUp)
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	found := false
	for _, msg := range e.logs.warnings() {
		if strings.Contains(msg, "still changing") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no warning about giving up; warnings: %q", e.logs.warnings())
	}

	// The next change is handled normally. Reports of the grown file are
	// legitimate if the writer paused long enough; the final one must be
	// the new content.
	final := []byte("final plugin")
	writeAtomic(t, path, final)
	for {
		r := s.next(t)
		if bytes.Equal(r.data, final) {
			break
		}
		if !bytes.HasPrefix(r.data, []byte("v0growing")) {
			t.Fatalf("reported %q, want the grown file or %q", short(r.data), final)
		}
	}
}

func TestCallbackPanicDoesNotStopWatcher(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	writeFile(t, path, []byte("v0"))
	s := newSink()
	var calls atomic.Int32
	onChange := func(data []byte, sum [32]byte) {
		if calls.Add(1) == 1 {
			panic("broken reload")
		}
		s.onChange(data, sum)
	}
	from := e.checks.mark()
	if err := e.w.Add(path, sha256.Sum256([]byte("v0")), onChange); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, path, outcomeUnchanged)

	writeAtomic(t, path, []byte("v1"))
	e.checks.waitFor(t, from, path, outcomeReported)
	writeAtomic(t, path, []byte("v2"))
	s.wantReport(t, []byte("v2"))
}

func TestAddErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	dir := t.TempDir()
	noop := func([]byte, [32]byte) {}

	missingDir := filepath.Join(dir, "nope", "plugin.wasm")
	err := e.w.Add(missingDir, [32]byte{}, noop)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "nope")) {
		t.Fatalf("Add in a missing directory: got %v, want an error naming the directory", err)
	}

	if err := e.w.Add(dir, [32]byte{}, noop); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("Add of a directory: got %v, want an error", err)
	}

	path := filepath.Join(dir, "plugin.wasm")
	if err := e.w.Add(path, [32]byte{}, nil); err == nil {
		t.Fatal("Add with a nil callback succeeded")
	}
	if err := e.w.Add(path, [32]byte{}, noop); err != nil {
		t.Fatal(err)
	}
	if err := e.w.Add(path, [32]byte{}, noop); err == nil || !strings.Contains(err.Error(), "already watched") {
		t.Fatalf("second Add of the same path: got %v", err)
	}

	if _, err := New(Options{Settle: -time.Second}); err == nil {
		t.Fatal("New with a negative settle interval succeeded")
	}
	if _, err := New(Options{MaxWait: -time.Second}); err == nil {
		t.Fatal("New with a negative max wait succeeded")
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	w, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.settle != DefaultSettle || w.maxWait != DefaultMaxWait || w.log == nil {
		t.Fatalf("defaults: settle %v, max wait %v, logger %v", w.settle, w.maxWait, w.log)
	}
}

// TestRelativePath is not parallel: it changes the working directory.
func TestRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	writeFile(t, "plugin.wasm", []byte("v0"))
	s := e.add(t, filepath.Join(dir, "plugin.wasm"), []byte("v0"))
	if err := e.w.Add("plugin.wasm", [32]byte{}, s.onChange); err == nil {
		t.Fatal("the relative and absolute spelling of one path were watched twice")
	}

	e.w.Remove("plugin.wasm")
	from := e.checks.mark()
	if err := e.w.Add("plugin.wasm", sha256.Sum256([]byte("v0")), s.onChange); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, filepath.Join(dir, "plugin.wasm"), outcomeUnchanged)
	writeAtomic(t, filepath.Join(dir, "plugin.wasm"), []byte("v1"))
	s.wantReport(t, []byte("v1"))
}

// TestCloseStopsGoroutines is not parallel, so that the goroutine count is
// this test's alone.
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()

	// A settle far longer than the test: Close must interrupt the wait.
	w, err := New(Options{Settle: time.Hour, Logger: slog.New(&logRecorder{})})
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan struct{}, 16)
	onChange := func([]byte, [32]byte) { calls <- struct{}{} }
	d1, d2 := t.TempDir(), t.TempDir()
	for _, p := range []string{filepath.Join(d1, "a.wasm"), filepath.Join(d1, "b.wasm"), filepath.Join(d2, "c.wasm")} {
		writeFile(t, p, []byte("v0"))
		if err := w.Add(p, [32]byte{}, onChange); err != nil {
			t.Fatal(err)
		}
		writeAtomic(t, p, []byte("v1"))
	}

	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitBound):
		t.Fatal("Close did not return")
	}

	var now int
	if hosttest.Poll(waitBound, pollEvery, func() error {
		if now = runtime.NumGoroutine(); now > before {
			return errors.New("goroutines left")
		}
		return nil
	}) != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before New, %d after Close:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	}
	if len(calls) != 0 {
		t.Fatalf("%d callbacks ran although no file was ever stable", len(calls))
	}

	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Add(filepath.Join(d1, "a.wasm"), [32]byte{}, onChange); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: got %v, want ErrClosed", err)
	}
	w.Remove(filepath.Join(d1, "a.wasm")) // must not block or panic
}

// TestOversizeFileIsNotRead: a stable file above MaxSize is reported to
// OnOversize by its size and never read, and the limit is asked for again
// on every change, so raising it lets the same size through.
func TestOversizeFileIsNotRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Settle: 50 * time.Millisecond})
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	old := []byte("old plugin")
	writeFile(t, path, old)

	var limit atomic.Int64
	limit.Store(1 << 10)
	sizes := make(chan int64, 8)
	s := newSink()
	from := e.checks.mark()
	err := e.w.AddFile(path, File{
		Initial:    sha256.Sum256(old),
		OnChange:   s.onChange,
		MaxSize:    limit.Load,
		OnOversize: func(n int64) { sizes <- n },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, path, outcomeUnchanged)

	// 1 TiB, sparse: reading it would take the process down.
	tmp := filepath.Join(filepath.Dir(path), "huge.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	from = e.checks.mark()
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	e.checks.waitFor(t, from, path, outcomeOversize)
	select {
	case n := <-sizes:
		if n != 1<<40 {
			t.Fatalf("OnOversize got %d, want %d", n, 1<<40)
		}
	case <-time.After(waitBound):
		t.Fatal("OnOversize not called")
	}
	s.none(t, 10*50*time.Millisecond)

	mid := randomBytes(t, 4<<10)
	writeAtomic(t, path, mid)
	e.checks.waitFor(t, from, path, outcomeOversize)
	if n := <-sizes; n != int64(len(mid)) {
		t.Fatalf("OnOversize got %d, want %d", n, len(mid))
	}
	limit.Store(1 << 20)
	writeAtomic(t, path, append(mid, 'x'))
	s.wantReport(t, append(mid, 'x'))

	if err := e.w.AddFile(filepath.Join(filepath.Dir(path), "other.wasm"), File{OnChange: s.onChange, MaxSize: limit.Load}); err == nil {
		t.Fatal("AddFile accepted MaxSize without OnOversize")
	}
}
