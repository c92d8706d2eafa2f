package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/fuel"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Version is one loaded, immutable version of a plugin: its compiled module
// and a pool of instances. A request runs on the caller's goroutine with an
// instance taken from the pool; sends and events wait in a bounded queue
// for a small set of goroutines that deliver them the same way.
type Version struct {
	spec    Spec
	hash    string
	engine  *Engine
	host    Host
	rt      wazero.Runtime
	module  wazero.CompiledModule
	loaded  time.Time
	grants  [8]bool // indexed by capability position
	cfgCBOR []byte
	cfgFlat map[string]string

	// all is the pool: an instance whose deadline word is 0 is idle (see
	// take and put). idle hands instances to requests that wait for one.
	all     []*instance
	idle    chan *instance
	alive   atomic.Int64 // instances that exist (a failed restart loses one)
	waiting atomic.Int64 // requests waiting for an idle instance
	posts   *postQueue
	wg      sync.WaitGroup

	refs     atomic.Int64 // posts queued and requests waiting for an instance
	closing  atomic.Bool
	returned chan struct{} // an instance came back while closing (capacity 1)
	drained  chan struct{}
	drainOne sync.Once
	stopDog  chan struct{}
	closed   chan struct{}
	// asleep is true while the watchdog is about to wait or waits on
	// wake (capacity 1); the one arm that flips it back sends the wake,
	// so a call pays for a channel operation only when the watchdog
	// really sleeps, not on every call.
	asleep   atomic.Bool
	wake     chan struct{}
	dogWakes atomic.Uint64 // watchdog passes over the instances, for tests
	lastNow  atomic.Int64  // a recent nanotime reading (see deadline)

	restarts atomic.Uint64
	calls    atomic.Uint64
	errors   atomic.Uint64
	batches  atomic.Uint64 // pycomms_handle_batch calls, for tests
	// failures counts a codec's failed conversions by status.
	failures [abi.MaxStatus + 1]atomic.Uint64

	// actions is set for a transport version (LoadTransport): what its
	// action imports act on. nil for a handler.
	actions Actions
	// pluginKind is what the version was loaded as.
	pluginKind abi.PluginKind
	// codec is the state of a codec version (LoadCodec), nil otherwise.
	codec *codecState
}

// Hash is the sha256 of the module bytes, hex encoded.
func (v *Version) Hash() string { return v.hash }

// Restarts counts instances replaced after a trap, timeout or ABI violation.
func (v *Version) Restarts() uint64 { return v.restarts.Load() }

// Busy is the number of instances running guest code right now: handling
// a message, or starting again after one broke them. It is read from the
// instances' deadlines, which are set anyway, so a call pays no counter
// for it.
func (v *Version) Busy() int {
	n := 0
	for _, w := range v.all {
		if running(w.deadline.Load()) {
			n++
		}
	}
	return n
}

// Spec returns the spec this version was loaded from (without the bytes).
func (v *Version) Spec() Spec { s := v.spec; s.Wasm = nil; return s }

// LoadedAt is when the version finished loading.
func (v *Version) LoadedAt() time.Time { return v.loaded }

// TooLargeError refuses a module larger than its plugin's
// limits.max_module.
type TooLargeError struct{ Size, Limit uint64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("module is %d bytes, more than limits.max_module (%d bytes)", e.Size, e.Limit)
}

// Check compiles spec.Wasm and verifies its exports, imports and ABI version
// without starting a pool: what `validate` runs.
func (e *Engine) Check(ctx context.Context, spec Spec) error {
	spec.Instances = 1
	v, err := e.Load(ctx, spec, nil)
	if err != nil {
		return err
	}
	v.Close()
	return nil
}

// Load compiles spec.Wasm, checks it against ABI v1, instantiates the pool
// and starts serving. host may be nil for a plugin that is only checked.
func (e *Engine) Load(ctx context.Context, spec Spec, host Host) (*Version, error) {
	return e.load(ctx, spec, host, nil, abi.PluginHandler)
}

// load is Load, LoadTransport (with actions) and LoadCodec, by kind.
func (e *Engine) load(ctx context.Context, spec Spec, host Host, actions Actions, kind abi.PluginKind) (*Version, error) {
	spec.defaults()
	sum := sha256.Sum256(spec.Wasm)
	v := &Version{
		spec:     spec,
		hash:     hex.EncodeToString(sum[:]),
		engine:   e,
		host:     host,
		idle:     make(chan *instance, spec.Instances),
		posts:    newPostQueue(spec.Queue),
		drained:  make(chan struct{}),
		stopDog:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		returned: make(chan struct{}, 1),
		closed:   make(chan struct{}),
		actions:  actions,

		pluginKind: kind,
	}
	for _, g := range spec.Grants {
		bit, ok := capBit(g)
		if !ok {
			return nil, fmt.Errorf("unknown capability %q (known: %s)", g, capNames())
		}
		v.grants[bit] = true
	}
	if len(spec.Config) > 0 {
		b, err := cbor.Marshal(spec.Config)
		if err != nil {
			return nil, fmt.Errorf("encode plugin config: %w", err)
		}
		v.cfgCBOR = b
	}
	v.cfgFlat = flatten(spec.Config)

	if len(spec.Wasm) < 8 || string(spec.Wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module (no \\0asm header)")
	}
	if uint64(len(spec.Wasm)) > spec.MaxModule {
		return nil, &TooLargeError{Size: uint64(len(spec.Wasm)), Limit: spec.MaxModule}
	}
	// Instrument bounds every count and index before wazero, whose decoder
	// allocates from declared counts, sees a byte (see package fuel).
	metered, err := fuel.Instrument(spec.Wasm)
	if err != nil {
		return nil, fmt.Errorf("prepare module: %w", err)
	}
	pages := memoryPages(spec.Memory)
	// Debug info off: fuel drops the DWARF sections (code offsets move), so
	// there is nothing for wazero to keep custom sections for.
	cfg := wazero.NewRuntimeConfigCompiler().
		WithDebugInfoEnabled(false).
		WithMemoryLimitPages(pages).
		WithCompilationCache(e.cache)
	v.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	ok := false
	defer func() {
		if !ok {
			v.rt.Close(context.Background())
		}
	}()
	mod, err := v.rt.CompileModule(ctx, metered)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	v.module = mod
	if err := checkModule(mod, v.kind()); err != nil {
		return nil, err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, v.rt); err != nil {
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	if err := v.instantiateHostModules(ctx); err != nil {
		return nil, err
	}
	// The watchdog reads v.all, so the slice is complete before it starts;
	// instantiate arms each instance's deadline under its own lock.
	v.all = make([]*instance, spec.Instances)
	for i := range v.all {
		v.all[i] = &instance{v: v, slot: i}
	}
	go v.watchdog()
	defer func() {
		if !ok {
			close(v.stopDog)
		}
	}()
	for i, w := range v.all {
		if err := w.instantiate(ctx); err != nil {
			for _, o := range v.all[:i] {
				o.close()
			}
			return nil, err
		}
		w.deadline.Store(idle)
	}
	v.alive.Store(int64(spec.Instances))
	if kind == abi.PluginCodec {
		if err := v.loadPairs(); err != nil {
			for _, w := range v.all {
				w.close()
			}
			return nil, err
		}
	}
	deliver := v.deliverPosts
	if _, ok := mod.ExportedFunctions()[abi.ExportHandleBatch]; ok {
		deliver = v.deliverBatches
	}
	for range min(spec.Instances, 4) {
		if kind == abi.PluginCodec {
			break // a codec gets no sends or events
		}
		v.wg.Add(1)
		go deliver()
	}
	v.loaded = time.Now()
	v.lastNow.Store(nanotime())
	ok = true
	return v, nil
}

// acquire takes a reference that keeps the version from draining (a post
// in the queue, a request waiting for an instance; a request that found
// one idle holds the instance instead, see collect); it fails once Close
// has begun, and the caller then retries on the current version.
func (v *Version) acquire() bool {
	v.refs.Add(1)
	if v.closing.Load() {
		v.release()
		return false
	}
	return true
}

func (v *Version) release() { v.releaseN(1) }

// releaseN drops n references at once (a batch's).
func (v *Version) releaseN(n int) {
	if v.refs.Add(-int64(n)) == 0 && v.closing.Load() {
		v.drainOne.Do(func() { close(v.drained) })
	}
}

// Close stops accepting messages, lets every accepted message finish, then
// frees the instances and the runtime. It is what "drain the old pool"
// means on a swap. Safe to call more than once and concurrently.
func (v *Version) Close() {
	if v.closing.Swap(true) {
		<-v.closed
		return
	}
	if v.refs.Load() == 0 {
		v.drainOne.Do(func() { close(v.drained) })
	}
	<-v.drained
	v.posts.close()
	v.wg.Wait()
	v.collect()
	close(v.stopDog)
	for _, w := range v.all {
		w.close()
	}
	v.rt.Close(context.Background())
	close(v.closed)
}

// epoch is the origin of nanotime.
var epoch = time.Now()

// nanotime reads the monotonic clock only (time.Since on a time with a
// monotonic reading), about half the cost of time.Now, which also reads
// the wall clock: deadlines are kept on this clock.
func nanotime() int64 { return int64(time.Since(epoch)) }

// clockSlack is how stale a clock reading may be and still stand for a
// message's arrival: see deadline.
const clockSlack = int64(time.Millisecond)

// deadline returns when m must be done, on the nanotime clock: the
// sender's deadline or the plugin's timeout from its arrival, whichever
// comes first.
//
// Reading the clock is a fifth of a 64 B call on a VM, so a sender's
// deadline that is at most clockSlack past the timeout counted from the
// version's last clock reading (lastNow, never after the arrival) is taken
// as it is, without a reading: it is then exact when it is the earlier
// bound, and at most clockSlack past the timeout bound otherwise. Callers
// that give every message the plugin's timeout (a loop of calls with the
// same budget) read the clock about once per clockSlack.
func (v *Version) deadline(m *message.Message) int64 {
	timeout := int64(v.spec.Timeout)
	sender := int64(math.MaxInt64)
	if !m.Deadline.IsZero() {
		// Sub uses the monotonic readings when m.Deadline has one (it was
		// made in this process), the wall clock otherwise. A deadline
		// before the epoch has long passed; 0 means idle.
		sender = max(int64(m.Deadline.Sub(epoch)), 1)
		if sender-timeout <= v.lastNow.Load()+clockSlack {
			return sender
		}
	}
	now := nanotime()
	if now-v.lastNow.Load() > clockSlack/2 {
		// Racing stores may leave an older reading: still one taken
		// before every later arrival, which is all deadline needs.
		v.lastNow.Store(now)
	}
	dl := now + timeout
	if dl < now {
		dl = math.MaxInt64
	}
	return min(dl, sender)
}

// deadlineTime turns a nanotime deadline back into a time.Time.
func deadlineTime(dl int64) time.Time { return epoch.Add(time.Duration(dl)) }

// Request runs a request on an idle instance and returns its reply. It
// waits for an instance until the deadline; at most Queue requests wait.
func (v *Version) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	dl := v.deadline(m)
	if reply, ok, err := v.runIdle(m, dl); ok {
		return reply, err
	}
	if !v.acquire() {
		return nil, errRetired
	}
	defer v.release()
	w, err := v.checkout(ctx, m, dl)
	if err != nil {
		// A refused call is still a call: errors never exceed calls.
		v.calls.Add(1)
		v.errors.Add(1)
		return nil, err
	}
	return v.run(w, m, dl)
}

// runIdle runs m on an idle instance, if there is one (ok false: none).
// An instance in hand needs no reference: Close waits for every instance
// to come back (collect). When Close began before the take, the instance
// goes back and the message fails with errRetired, for the version
// serving now.
func (v *Version) runIdle(m *message.Message, dl int64) (reply []byte, ok bool, err error) {
	w := v.take(dl)
	if w == nil {
		return nil, false, nil
	}
	if v.closing.Load() {
		v.put(w)
		return nil, true, errRetired
	}
	reply, err = v.run(w, m, dl)
	return reply, true, err
}

// TryRequest runs a request at once when an instance is idle, and
// otherwise does nothing and reports ok false: it never waits. The mesh's
// link reader uses it to serve a request without handing it to another
// goroutine.
func (v *Version) TryRequest(m *message.Message) (reply []byte, ok bool, err error) {
	reply, ok, err = v.runIdle(m, v.deadline(m))
	if err == errRetired {
		return nil, false, nil // the caller goes to the version serving now
	}
	return reply, ok, err
}

// take returns an idle instance armed with dl, or nil when every one is
// held: taking it and arming its deadline is one compare-and-swap.
func (v *Version) take(dl int64) *instance {
	for _, w := range v.all {
		if w.deadline.Load() == idle && w.deadline.CompareAndSwap(idle, dl) {
			v.wakeDog()
			return w
		}
	}
	return nil
}

// collect waits until every live instance is back in the pool and takes
// them all out of it, for Close: requests that found an instance idle
// hold no reference (see Request), so the drained references do not cover
// them. Instances lost to a failed restart never come back; the live
// count says how many will.
func (v *Version) collect() {
	got := make([]bool, len(v.all))
	n := 0
	for {
		for drained := false; !drained; {
			select {
			case w := <-v.idle:
				got[w.slot] = true
				n++
			default:
				drained = true
			}
		}
		for i, w := range v.all {
			if !got[i] && w.deadline.CompareAndSwap(idle, held) {
				got[i] = true
				n++
			}
		}
		if int64(n) >= v.alive.Load() {
			return
		}
		// put signals returned once closing is set; a restart that fails
		// lowers alive without a put, hence the poll as well.
		select {
		case <-v.returned:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// put returns w to the pool, or hands it to a waiting request. The store
// comes before the load of waiting, and checkout counts itself waiting
// before it looks at the pool again: one of the two sees the other, so a
// waiter never sleeps past an idle instance.
func (v *Version) put(w *instance) {
	w.deadline.Store(idle)
	if v.waiting.Load() > 0 && w.deadline.CompareAndSwap(idle, held) {
		// Every instance is idle, in the channel or held, and the channel
		// has room for all of them: this never blocks.
		v.idle <- w
	}
	if v.closing.Load() {
		select {
		case v.returned <- struct{}{}: // wake collect
		default:
		}
	}
}

// checkout returns an instance armed with dl.
func (v *Version) checkout(ctx context.Context, m *message.Message, dl int64) (*instance, error) {
	if w := v.take(dl); w != nil {
		return w, nil
	}
	if v.alive.Load() == 0 {
		return nil, message.Errorf(abi.StatusTrap, "plugin %q has no instance left: every restart failed (see the log)", v.spec.Name)
	}
	if m.Chain != 0 {
		if err := v.loop(m); err != nil {
			return nil, err
		}
	}
	if n := v.waiting.Add(1); n > int64(v.spec.Queue) {
		v.waiting.Add(-1)
		return nil, message.Errorf(abi.StatusBusy, "plugin %q is busy: %d instances in use and %d requests waiting", v.spec.Name, v.spec.Instances, v.spec.Queue)
	}
	defer v.waiting.Add(-1)
	if w := v.take(dl); w != nil {
		return w, nil
	}
	t := time.NewTimer(time.Duration(dl - nanotime()))
	defer t.Stop()
	select {
	case w := <-v.idle:
		w.arm(dl)
		return w, nil
	case <-t.C:
		return nil, message.Errorf(abi.StatusTimeout, "plugin %q: %s: deadline passed while waiting for a free instance (%d in use)", v.spec.Name, m.Subject, v.spec.Instances)
	case <-ctx.Done():
		return nil, message.Errorf(abi.StatusTimeout, "plugin %q: %s: %v while waiting for a free instance", v.spec.Name, m.Subject, ctx.Err())
	}
}

// loop refuses a nested request when every live instance is held by the
// request's own call chain. A chain is synchronous: each instance it holds
// is blocked in a call waiting for the chain's deeper end, which is this
// request, so none of them can come free and waiting could only end at the
// deadline. When some instance is held by anything else, it will come free:
// the request waits as usual.
func (v *Version) loop(m *message.Message) error {
	held := 0
	var subjects []string
	for _, w := range v.all {
		if w.chain.Load() != m.Chain {
			continue
		}
		held++
		if hm := w.held.Load(); hm != nil && !slices.Contains(subjects, hm.Subject) {
			subjects = append(subjects, hm.Subject)
		}
	}
	if held == 0 || int64(held) < v.alive.Load() {
		return nil
	}
	v.engine.logger.Warn("call loop refused", "plugin", v.spec.Name, "subject", m.Subject, "from", m.From,
		"hops", m.Hops, "instances", held, "held_for", subjects)
	return message.Errorf(abi.StatusInvalid, "call loop: %q (called by plugin %q at call depth %d) needs an instance of plugin %q, but all %d are held by its own call chain (handling %s), each waiting for the call it made; a handler that calls back into its own plugin needs an instance free for it",
		m.Subject, m.From, m.Hops, v.spec.Name, held, quoteAll(subjects))
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// run delivers m on w, replaces w when the call broke it, and returns w (or
// its replacement) to the pool.
func (v *Version) run(w *instance, m *message.Message, dl int64) ([]byte, error) {
	v.calls.Add(1)
	reply, err, broken := w.invoke(m, dl)
	if err != nil {
		v.errors.Add(1)
	}
	if broken {
		v.replace(w, err)
	}
	if w.mod != nil {
		v.put(w)
	}
	return reply, err
}

// replace swaps a broken instance for a fresh one in the same slot. If the
// fresh one cannot start, the slot is lost and the pool shrinks.
func (v *Version) replace(w *instance, cause error) {
	logger := v.engine.logger
	v.restarts.Add(1)
	logger.Warn("plugin instance replaced", "plugin", v.spec.Name, "instance", w.slot, "cause", cause)
	w.close()
	if err := w.instantiate(context.Background()); err != nil {
		w.lost.Store(true)
		v.alive.Add(-1)
		logger.Error("plugin instance could not be restarted", "plugin", v.spec.Name, "instance", w.slot, "err", err)
		w.close()
	}
}

var errRetired = errors.New("plugin version retired")

// flatten turns a nested config map into dotted keys with string values,
// for config_get: the form a C or WAT plugin can use without a CBOR parser.
func flatten(m map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
		case map[any]any:
			for k, x := range t {
				p := fmt.Sprint(k)
				if prefix != "" {
					p = prefix + "." + p
				}
				walk(p, x)
			}
		case []any:
			s := make([]string, len(t))
			for i, x := range t {
				s[i] = fmt.Sprint(x)
			}
			out[prefix] = strings.Join(s, ",")
		case nil:
			out[prefix] = ""
		default:
			out[prefix] = fmt.Sprint(t)
		}
	}
	walk("", m)
	delete(out, "")
	return out
}
