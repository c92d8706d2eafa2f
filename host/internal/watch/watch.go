// Package watch watches plugin .wasm files and reports a file only once it
// is complete and its content has changed.
//
// Users replace a plugin in two common ways: write a temporary file and
// rename it over the old one (atomic), or `cp new.wasm plugin.wasm`, which
// truncates the old file and writes the new bytes in pieces. A half-written
// file must never be loaded, so a change is handled in three steps:
//
//  1. The file's parent directory is watched, not the file itself: a rename
//     replaces the inode, and a watch on the old inode would go silent.
//     Events are filtered by the watched file names.
//  2. After an event the file must be stable: identity (device and inode),
//     size and modification time unchanged across one settle interval, with
//     no further event for it in that interval. While it keeps changing the
//     check repeats, for at most MaxWait; then a warning is logged and the
//     file waits for its next event.
//  3. The stable file is read and hashed with SHA-256. Only if the hash
//     differs from the last reported (or initially known) hash is the
//     callback called, so a touch or an identical copy reloads nothing.
//
// A removed file is not an error: it is reported when it reappears with new
// content. A file that cannot be read is logged and retried on its next event.
//
// File-system events come from github.com/fsnotify/fsnotify rather than from
// polling or from hand-written inotify calls. It gives one API over inotify
// (Linux), kqueue (BSD, macOS), ReadDirectoryChangesW (Windows) and FEN
// (illumos), and already handles the per-platform details of renames (a
// rename into a watched directory arrives as Create on the new name) and of
// watch descriptors that vanish with their directory. Polling would trade
// reload latency against CPU time for every file on every host, and would
// still need the same stability check; events cost nothing while the files
// are idle.
//
// Each watched file has its own goroutine, so callbacks for one path never
// run concurrently with each other, while different paths are independent: a
// slow reload of one plugin does not delay another.
package watch

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Default values for the zero fields of Options.
const (
	DefaultSettle  = 250 * time.Millisecond
	DefaultMaxWait = 30 * time.Second
)

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("watcher is closed")

// Options configures a Watcher. The zero value is usable.
type Options struct {
	// Settle is how long a file's identity, size and modification time must
	// stay unchanged, with no event for it, before it is read. Zero means
	// DefaultSettle.
	Settle time.Duration
	// MaxWait bounds how long one change keeps being re-checked while the
	// file keeps changing. When it runs out a warning is logged and the file
	// waits for its next event. Zero means DefaultMaxWait.
	MaxWait time.Duration
	// Logger receives warnings (unreadable file, MaxWait exceeded, event
	// queue overflow) and debug records. Nil means slog.Default().
	Logger *slog.Logger
}

// Watcher watches a set of files and calls a per-file callback when a file
// has new, complete content. Create it with New; it is safe for concurrent
// use. Close it to stop its goroutines.
type Watcher struct {
	fsw     *fsnotify.Watcher
	settle  time.Duration
	maxWait time.Duration
	log     *slog.Logger

	// dirMu serialises changes to the set of watched directories together
	// with the fsnotify calls that apply them. The event loop never takes it:
	// fsnotify may block inside Add or Remove until its own event is
	// consumed, and the loop is the consumer.
	dirMu sync.Mutex
	dirs  map[string]int // watched directory -> number of watched files in it

	mu     sync.Mutex // guards closed and files
	closed bool
	files  map[string]*file // absolute path -> watched file

	wg sync.WaitGroup // the event loop and every per-file goroutine

	// observe, when set before the first Add, is told how every check of a
	// file ended. Tests use it to know that the watcher has looked at a file
	// without guessing how long that takes.
	observe func(path string, o outcome)
}

// file is one watched path. Only its own goroutine touches last.
type file struct {
	path       string
	dir        string
	onChange   func(data []byte, sum [32]byte)
	maxSize    func() int64
	onOversize func(size int64)
	last       [32]byte

	kick chan struct{} // capacity 1: pending events for this path collapse into one
	stop chan struct{} // closed by Remove or Close
	done chan struct{} // closed when the goroutine has exited
}

// poke records that an event arrived for f without ever blocking the event
// loop; a pending poke already covers this one.
func (f *file) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// outcome is how one check of a file ended.
type outcome int

const (
	outcomeReported   outcome = iota // new content, callback called
	outcomeUnchanged                 // stable, same hash as before
	outcomeGone                      // the file does not exist
	outcomeUnreadable                // stat or read failed, or it is not a regular file
	outcomeGaveUp                    // still changing after MaxWait
	outcomeOversize                  // stable but over File.MaxSize: not read, OnOversize called
)

func (o outcome) String() string {
	switch o {
	case outcomeReported:
		return "reported"
	case outcomeUnchanged:
		return "unchanged"
	case outcomeGone:
		return "gone"
	case outcomeUnreadable:
		return "unreadable"
	case outcomeGaveUp:
		return "gave up"
	case outcomeOversize:
		return "oversize"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// New creates a Watcher and starts its event loop.
func New(opts Options) (*Watcher, error) {
	if opts.Settle < 0 {
		return nil, fmt.Errorf("watch: settle interval %v is negative", opts.Settle)
	}
	if opts.MaxWait < 0 {
		return nil, fmt.Errorf("watch: max wait %v is negative", opts.MaxWait)
	}
	if opts.Settle == 0 {
		opts.Settle = DefaultSettle
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: start file-system watcher: %w", err)
	}
	w := &Watcher{
		fsw:     fsw,
		settle:  opts.Settle,
		maxWait: opts.MaxWait,
		log:     opts.Logger,
		dirs:    make(map[string]int),
		files:   make(map[string]*file),
	}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// Add starts watching path (made absolute). initial is the sha256 of the
// content the caller already loaded (zero value: unknown, so the first
// stable content is reported). onChange gets the full new content.
//
// The file need not exist yet, but its directory must. Add checks the file
// once right away, so a change made between the caller loading it and Add
// is not missed. onChange runs on the watcher's goroutine for this path:
// calls for one path never overlap, and the next change for the path is
// handled after onChange returns. onChange must not call Close, or Remove
// for its own path, because both wait for that goroutine to exit.
// A panic in onChange is logged and does not stop the watcher.
func (w *Watcher) Add(path string, initial [32]byte, onChange func(data []byte, sum [32]byte)) error {
	return w.AddFile(path, File{Initial: initial, OnChange: onChange})
}

// File describes one watched file for AddFile.
type File struct {
	// Initial is the hash of the content the caller already has.
	Initial [32]byte
	// OnChange gets the full new content, as in Add.
	OnChange func(data []byte, sum [32]byte)
	// MaxSize, when set, returns the largest file the watcher may read. A
	// stable file above it is never read, so a huge file renamed over a
	// watched one costs a stat, not its size in memory; OnOversize gets
	// its size instead. It is a function so that a limit changed by a
	// config reload applies to the next change.
	MaxSize func() int64
	// OnOversize is called, on the path's goroutine, for a stable file
	// larger than MaxSize. Required when MaxSize is set.
	OnOversize func(size int64)
}

// AddFile is Add with a size limit (see File).
func (w *Watcher) AddFile(path string, spec File) error {
	onChange := spec.OnChange
	if onChange == nil {
		return fmt.Errorf("watch: add %q: onChange is nil", path)
	}
	if spec.MaxSize != nil && spec.OnOversize == nil {
		return fmt.Errorf("watch: add %q: MaxSize without OnOversize", path)
	}
	initial := spec.Initial
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch: add %q: make path absolute: %w", path, err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return fmt.Errorf("watch: add %s: is a directory, not a plugin file", abs)
	}
	dir := filepath.Dir(abs)

	w.dirMu.Lock()
	defer w.dirMu.Unlock()

	w.mu.Lock()
	closed := w.closed
	_, dup := w.files[abs]
	w.mu.Unlock()
	if closed {
		return fmt.Errorf("watch: add %s: %w", abs, ErrClosed)
	}
	if dup {
		return fmt.Errorf("watch: add %s: already watched", abs)
	}

	if w.dirs[dir] == 0 {
		if err := w.fsw.Add(dir); err != nil {
			return fmt.Errorf("watch: add %s: watch directory %s: %w", abs, dir, err)
		}
	}
	w.dirs[dir]++

	f := &file{
		path:       abs,
		dir:        dir,
		onChange:   onChange,
		maxSize:    spec.MaxSize,
		onOversize: spec.OnOversize,
		last:       initial,
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	w.mu.Lock()
	if w.closed {
		// Close ran after the check above; it has closed fsnotify already,
		// so only the bookkeeping needs undoing.
		w.mu.Unlock()
		w.dirs[dir]--
		return fmt.Errorf("watch: add %s: %w", abs, ErrClosed)
	}
	w.files[abs] = f
	w.wg.Add(1)
	go w.run(f)
	w.mu.Unlock()

	f.poke()
	w.log.Debug("watching plugin file", "path", abs)
	return nil
}

// Remove stops watching path (made absolute the same way as in Add). When it
// returns, no callback for path is running and none will start. Removing a
// path that is not watched does nothing.
func (w *Watcher) Remove(path string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		w.log.Warn("cannot remove plugin file watch", "path", path, "err", err)
		return
	}

	w.dirMu.Lock()
	w.mu.Lock()
	f, ok := w.files[abs]
	delete(w.files, abs)
	closed := w.closed
	w.mu.Unlock()
	if !ok {
		w.dirMu.Unlock()
		return
	}
	w.dirs[f.dir]--
	if w.dirs[f.dir] == 0 {
		delete(w.dirs, f.dir)
		// Failing here is harmless: the directory may be gone, which
		// already ended its watch, or the watcher is closing.
		if err := w.fsw.Remove(f.dir); err != nil && !closed {
			w.log.Debug("stop watching directory", "dir", f.dir, "err", err)
		}
	}
	w.dirMu.Unlock()

	close(f.stop)
	<-f.done
	w.log.Debug("stopped watching plugin file", "path", abs)
}

// Close stops watching every file and waits until all of the watcher's
// goroutines have exited, including any callback in progress. It must not be
// called from a callback. Calling it again does nothing.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	files := w.files
	w.files = make(map[string]*file)
	w.mu.Unlock()

	err := w.fsw.Close()
	for _, f := range files {
		close(f.stop)
	}
	w.wg.Wait()
	if err != nil {
		return fmt.Errorf("watch: close file-system watcher: %w", err)
	}
	return nil
}

// loop hands fsnotify events to the goroutines of the files they name. It
// never blocks on a file, so one busy file cannot hold up events for others.
func (w *Watcher) loop() {
	defer w.wg.Done()
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.dispatch(ev)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were dropped by the kernel, so any file may have
				// changed unseen: check them all. The hash check keeps this
				// from reporting files that did not change.
				w.log.Warn("file-system event queue overflowed; re-checking all plugin files", "err", err)
				w.mu.Lock()
				for _, f := range w.files {
					f.poke()
				}
				w.mu.Unlock()
				continue
			}
			w.log.Warn("file-system watcher error", "err", err)
		}
	}
}

func (w *Watcher) dispatch(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	w.mu.Lock()
	f := w.files[name]
	var orphans []*file
	if f == nil && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		for _, g := range w.files {
			if g.dir == name {
				orphans = append(orphans, g)
			}
		}
	}
	w.mu.Unlock()

	if f != nil {
		f.poke()
		return
	}
	if len(orphans) > 0 {
		// The kernel ends a directory watch when the directory goes away;
		// nothing in it will be seen again, which the operator must know.
		w.log.Warn("directory of watched plugin files was removed or renamed; changes to its files are no longer seen until they are added again",
			"dir", name, "files", len(orphans))
		for _, g := range orphans {
			g.poke()
		}
	}
}

// run is the goroutine of one watched file: it checks the file after each
// burst of events, one check at a time.
func (w *Watcher) run(f *file) {
	defer w.wg.Done()
	defer close(f.done)
	for {
		// A stop wins over a pending event, so nothing is reported for a
		// file once Remove or Close has started.
		select {
		case <-f.stop:
			return
		default:
		}
		select {
		case <-f.stop:
			return
		case <-f.kick:
		}
		o, stopped := w.check(f)
		if stopped {
			return
		}
		if w.observe != nil {
			w.observe(f.path, o)
		}
	}
}

// check waits until f is stable, then reads and hashes it and calls the
// callback if the content is new. It reports stopped when f.stop closed
// while waiting.
func (w *Watcher) check(f *file) (o outcome, stopped bool) {
	deadline := time.Now().Add(w.maxWait)
	timer := time.NewTimer(w.settle)
	defer timer.Stop()

	prev, prevErr := os.Stat(f.path)
	for {
		select {
		case <-f.stop:
			return 0, true
		case <-f.kick:
			// Another event during the interval: the writer is still at
			// work, so the interval starts over from the current state.
			prev, prevErr = os.Stat(f.path)
			if time.Now().After(deadline) {
				return w.giveUp(f), false
			}
			timer.Reset(w.settle)
			continue
		case <-timer.C:
		}

		cur, curErr := os.Stat(f.path)
		switch {
		case isNotExist(prevErr) && isNotExist(curErr):
			// Removed (or never created): not an error. Its reappearance
			// arrives as a Create event and starts a new check.
			w.log.Debug("plugin file is absent", "path", f.path)
			return outcomeGone, false
		case curErr != nil && !isNotExist(curErr):
			w.log.Warn("cannot stat plugin file; will retry on its next change", "path", f.path, "err", curErr)
			return outcomeUnreadable, false
		case prevErr == nil && curErr == nil && sameState(prev, cur):
			o, settled := w.readStable(f, cur)
			if settled {
				return o, false
			}
			// It changed while being read: keep waiting for stability.
			cur, curErr = os.Stat(f.path)
		}

		prev, prevErr = cur, curErr
		if time.Now().After(deadline) {
			return w.giveUp(f), false
		}
		timer.Reset(w.settle)
	}
}

func (w *Watcher) giveUp(f *file) outcome {
	w.log.Warn("plugin file is still changing; ignoring it until its next change",
		"path", f.path, "max_wait", w.maxWait)
	return outcomeGaveUp
}

// readStable reads f, whose last stat was st, and reports it if its hash is
// new. settled is false when the file changed while it was being read, so
// the caller must keep waiting.
func (w *Watcher) readStable(f *file, st fs.FileInfo) (o outcome, settled bool) {
	if !st.Mode().IsRegular() {
		w.log.Warn("plugin path is not a regular file; will retry on its next change",
			"path", f.path, "mode", st.Mode().String())
		return outcomeUnreadable, true
	}
	if f.maxSize != nil {
		if limit := f.maxSize(); st.Size() > limit {
			w.log.Debug("plugin file is over its size limit; not read", "path", f.path, "size", st.Size(), "limit", limit)
			f.last = [32]byte{} // the file that comes back after this one is new, whatever it holds
			w.deliverOversize(f, st.Size())
			return outcomeOversize, true
		}
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		if isNotExist(err) {
			return 0, false
		}
		w.log.Warn("cannot read plugin file; will retry on its next change", "path", f.path, "err", err)
		return outcomeUnreadable, true
	}
	// The stat before the read proved the file was quiet for one interval,
	// not that nobody wrote during the read; a second stat closes that gap.
	after, err := os.Stat(f.path)
	if err != nil || !sameState(st, after) || int64(len(data)) != st.Size() {
		return 0, false
	}

	sum := sha256.Sum256(data)
	if sum == f.last {
		w.log.Debug("plugin file content unchanged", "path", f.path)
		return outcomeUnchanged, true
	}
	f.last = sum
	w.log.Debug("plugin file changed", "path", f.path, "size", len(data), "sha256", fmt.Sprintf("%x", sum))
	w.deliver(f, data, sum)
	return outcomeReported, true
}

// deliver calls the callback. A panic in it is logged instead of ending the
// process: the callback is the caller's reload logic, and one bad reload
// must not take down a host serving every other plugin.
func (w *Watcher) deliver(f *file, data []byte, sum [32]byte) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("plugin file change callback panicked", "path", f.path, "panic", r,
				"stack", string(debug.Stack()))
		}
	}()
	f.onChange(data, sum)
}

func (w *Watcher) deliverOversize(f *file, size int64) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("plugin file oversize callback panicked", "path", f.path, "panic", r,
				"stack", string(debug.Stack()))
		}
	}()
	f.onOversize(size)
}

// sameState reports whether two stats show the same, unmodified file. The
// identity check catches a rename-over that keeps size and mtime (mv and
// cp -p preserve the modification time).
func sameState(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func isNotExist(err error) bool {
	return err != nil && errors.Is(err, fs.ErrNotExist)
}
