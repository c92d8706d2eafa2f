package plugin

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var headerEnc, _ = cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()

type instanceKey struct{}

// errStopped is what the fuel tick panics with once the watchdog has
// marked an instance for stopping.
var errStopped = errors.New("stopped by the watchdog")

// instance is one Wasm instance of a version. The pool hands it to one
// caller at a time; that caller's goroutine runs the guest directly, so a
// message costs no goroutine switch.
type instance struct {
	v    *Version
	slot int
	ctx  context.Context // carries the instance to host functions

	mod    api.Module
	alloc  api.Function
	handle api.Function
	// handleBatch is pycomms_handle_batch, nil when the plugin does not
	// export it.
	handleBatch api.Function
	mem         api.Memory
	stack       [5]uint64

	// deadline is the instance's state and, while it runs guest code, when
	// that must be done, on the package's monotonic clock (nanotime): 0
	// idle in the pool, held (taken, running no guest code, or lost), a
	// deadline (> 0), or stopped once the watchdog found it past. Taking
	// an instance from the pool and arming its deadline is one
	// compare-and-swap from 0, and putting it back one store of 0. The
	// watchdog's stop is a compare-and-swap against the very deadline it
	// judged: a stop meant for one message cannot hit the next, which has
	// its own deadline (and were that the same instant, it would be just as
	// late). The padding keeps the word, which other callers read while
	// looking for an idle instance, off the cache lines its owner writes.
	_        [64]byte
	deadline atomic.Int64
	_        [56]byte
	// chain is the call chain (message.Message.Chain) of the request this
	// instance runs, given an id by the first call the handler makes; 0
	// while idle. Other callers read it to detect a call loop; held is the
	// message of that chain (set before chain, cleared after it), for the
	// loop's error text.
	chain atomic.Uint64
	held  atomic.Pointer[message.Message]

	// Per-message state, touched only by the goroutine holding the instance.
	msg      *message.Message
	due      int64 // the message's deadline (nanotime), for the calls it makes
	reply    []byte
	tooLarge uint64
	denied   abi.Capability
	callRes  []byte
	callErr  string // error text of the last failed call of this message
	// replyHdr: the headers set with reply_h for the reply being built;
	// callHdr: those of the last call's reply (result_header).
	replyHdr abi.Headers
	callHdr  abi.Headers
	// growFailed: a memory.grow failed during this message (or, before
	// the first message, during instantiation).
	growFailed bool
	fatal      *message.Error
	hdr        []byte
	// batchMsg stands for the message being handled during a batch.
	batchMsg message.Message

	// event is pycomms_transport_event of a transport (nil for a
	// handler), called with estack (see transport.go).
	event  api.Function
	estack [7]uint64
	// convert is pycomms_codec_convert of a codec (nil otherwise).
	convert api.Function
	// lost is set when the instance could not be restarted: read by
	// SlotAlive from any goroutine, where mod is its holder's alone.
	lost atomic.Bool
}

func (w *instance) instantiate(ctx context.Context) error {
	v := w.v
	name := fmt.Sprintf("pycomms.instance.%d", w.slot)
	out := &lineLogger{logger: v.engine.logger, plugin: v.spec.Name, stream: "stdout"}
	errOut := &lineLogger{logger: v.engine.logger, plugin: v.spec.Name, stream: "stderr"}
	cfg := wazero.NewModuleConfig().
		WithName(name).
		WithStartFunctions(abi.ExportInitialize).
		WithStdout(out).WithStderr(errOut).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader)

	// _initialize runs guest code before any message: bound it like one.
	w.ctx = &instanceCtx{Context: context.Background(), w: w}
	w.arm(nanotime() + int64(max(v.spec.Timeout, 10*time.Second)))
	defer w.deadline.Store(held)
	mod, err := v.rt.InstantiateModule(w.ctx, v.module, cfg)
	if err != nil {
		return fmt.Errorf("instantiate: %w", w.cause(err))
	}
	ok := false
	defer func() {
		if !ok {
			mod.Close(context.Background())
		}
	}()
	if err := mod.ExportedFunction(abi.ExportABIVersion).CallWithStack(w.ctx, w.stack[:1]); err != nil {
		return fmt.Errorf("call %s: %w", abi.ExportABIVersion, w.cause(err))
	}
	if ver := int32(w.stack[0]); ver < abi.MinVersion || ver > abi.MaxVersion {
		return fmt.Errorf("plugin ABI version %d is not supported: this host accepts %d..%d", ver, abi.MinVersion, abi.MaxVersion)
	}
	w.mod, w.mem = mod, mod.Memory()
	w.alloc = mod.ExportedFunction(abi.ExportAlloc)
	w.handle = mod.ExportedFunction(abi.ExportHandle)
	w.handleBatch = mod.ExportedFunction(abi.ExportHandleBatch)
	w.event = mod.ExportedFunction(abi.ExportTransportEvent)
	w.convert = mod.ExportedFunction(abi.ExportCodecConvert)
	ok = true
	return nil
}

func (w *instance) close() {
	if w.mod != nil {
		w.mod.Close(context.Background())
		w.mod = nil
	}
}

// The states of instance.deadline that are not a deadline.
const (
	idle    = 0
	stopped = -1 // the watchdog stopped it: the guest ends at its next fuel tick
	held    = -2 // taken from the pool, running no guest code (or lost)
)

// arm starts the watchdog clock for guest code about to run on an
// instance its caller holds: deadline is on the nanotime clock.
func (w *instance) arm(deadline int64) {
	w.deadline.Store(deadline)
	w.v.wakeDog()
}

// clear ends the message invoke started: its state is gone, the instance
// stays armed until the pool takes it back (Version.put).
func (w *instance) clear() {
	w.msg = nil
	if w.chain.Load() != 0 {
		w.chain.Store(0)
		w.held.Store(nil)
	}
}

// killed reports that the watchdog stopped the guest code running now.
func (w *instance) killed() bool { return w.deadline.Load() == stopped }

// checkDeadline is the watchdog's half of deadline enforcement: the guest
// stops at its next fuel tick. It reports whether the instance runs guest
// code (armed, stopped or not).
func (w *instance) checkDeadline(now int64) bool {
	d := w.deadline.Load()
	if d > 0 && now > d {
		w.deadline.CompareAndSwap(d, stopped)
	}
	return running(d)
}

// running reports whether an instance in state d runs guest code.
func running(d int64) bool { return d > 0 || d == stopped }

// invoke delivers one message to the guest, on an instance armed with
// deadline, and turns what happened into a reply or an error. broken
// reports that the instance must be replaced. deadline counts from the
// message's arrival: waiting for an instance counts against it, which is
// what the caller experiences.
func (w *instance) invoke(m *message.Message, deadline int64) (reply []byte, err error, broken bool) {
	if len(m.Headers) > 0 {
		w.hdr, _ = headerEnc.Marshal(m.Headers) // map[string]string always encodes
	} else {
		w.hdr = w.hdr[:0]
	}
	w.msg, w.due = m, deadline
	if m.Kind == abi.KindRequest && m.Chain != 0 {
		// Sends and events run detached from whoever posted them: they
		// never belong to the poster's chain.
		w.held.Store(m)
		w.chain.Store(m.Chain)
	}
	defer w.clear()
	w.growFailed = false
	defer func() {
		w.reply, w.tooLarge, w.denied, w.callErr = w.reply[:0], 0, "", ""
		w.replyHdr, w.callHdr = nil, nil
	}()

	s, p, h := len(m.Subject), len(m.Payload), len(w.hdr)
	total := uint64(s + p + h)
	limit := uint64(memoryPages(w.v.spec.Memory)) * 65536
	if total > limit {
		// The region must lie in linear memory, which can never grow past
		// the limit: refuse before running guest code, so the instance
		// stays as it was.
		return nil, message.Errorf(abi.StatusTooLarge, "plugin %q: %s: message of %d bytes (payload %d, subject %d, headers %d) exceeds limits.memory (%d bytes): it cannot fit in the plugin's memory",
			w.v.spec.Name, m.Subject, total, p, s, h, limit), false
	}
	w.stack[0] = total
	if cerr := w.alloc.CallWithStack(w.ctx, w.stack[:1]); cerr != nil {
		return nil, w.allocFailure(m, cerr, total, limit), true
	}
	ptr := uint32(w.stack[0])
	if ptr == 0 && total > 0 {
		// The guest says it cannot allocate (a failed memory.grow, a NULL
		// from malloc) and returned normally, so its state is consistent:
		// keep the instance. Nothing is written: address 0 is not a
		// buffer.
		return nil, message.Errorf(abi.StatusTooLarge, "plugin %q: %s: message of %d bytes (payload %d, subject %d, headers %d) does not fit in the plugin's memory: %s(%d) could not allocate it (memory %d of limits.memory %d bytes)",
			w.v.spec.Name, m.Subject, total, p, s, h, abi.ExportAlloc, total, w.mem.Size(), limit), false
	}
	buf, ok := w.mem.Read(ptr, uint32(total))
	if !ok {
		return nil, message.Errorf(abi.StatusTrap, "plugin %q: %s: ABI violation: %s(%d) returned out-of-bounds pointer %#x (memory is %d bytes)",
			w.v.spec.Name, m.Subject, abi.ExportAlloc, total, ptr, w.mem.Size()), true
	}
	copy(buf, m.Subject)
	copy(buf[s:], m.Payload)
	copy(buf[s+p:], w.hdr)
	w.stack = [5]uint64{uint64(m.Kind), uint64(ptr), uint64(s), uint64(p), uint64(h)}
	if cerr := w.handle.CallWithStack(w.ctx, w.stack[:5]); cerr != nil {
		return nil, w.failure(m, cerr), true
	}
	return w.complete(m, abi.ExportHandle, abi.Status(int32(w.stack[0])))
}

// failure turns a failed guest call into the caller's error.
func (w *instance) failure(m *message.Message, err error) *message.Error {
	name := w.v.spec.Name
	subject := m.Subject + ": "
	if w.fatal != nil {
		f := w.fatal
		w.fatal = nil
		return message.Errorf(f.Status, "plugin %q: %s%s", name, subject, f.Msg)
	}
	if w.killed() {
		// The arrival time is not read on the hot path (see
		// Version.deadline): say how late the stop came instead.
		late := time.Duration(max(nanotime()-w.due, 0)).Round(time.Millisecond)
		return message.Errorf(abi.StatusTimeout, "plugin %q: %sdid not finish within its deadline (stopped %v past it; instance replaced)", name, subject, late)
	}
	msg := firstLine(err).Error()
	if w.growFailed || uint64(w.mem.Size())+65536 > w.v.spec.Memory {
		// A failed memory.grow is the likely cause of what followed, even
		// when memory ended far below the cap (one large grow refused).
		return message.Errorf(abi.StatusTrap, "plugin %q: %strapped after memory.grow failed at its memory limit (%d bytes, limits.memory; memory is %d bytes): %s",
			name, subject, w.v.spec.Memory, w.mem.Size(), msg)
	}
	return message.Errorf(abi.StatusTrap, "plugin %q: %strapped: %s", name, subject, msg)
}

// allocFailure turns a trap inside pycomms_alloc into the caller's error.
// When the message needs more memory than the guest could still grow to,
// the trap is the allocator giving up under the limit (the Go runtime
// aborts, a hand-written allocator hits unreachable): the message is
// too_large, naming the limit. The instance is replaced all the same: a
// trap may leave the guest's state half-updated.
func (w *instance) allocFailure(m *message.Message, err error, total, limit uint64) *message.Error {
	if w.fatal != nil || w.killed() || uint64(w.mem.Size())+total <= limit {
		return w.failure(m, err)
	}
	return message.Errorf(abi.StatusTooLarge, "plugin %q: %s: message of %d bytes (payload %d, subject %d, headers %d) does not fit in the plugin's memory: %s(%d) trapped with memory %d of limits.memory %d bytes (instance replaced): %s",
		w.v.spec.Name, m.Subject, total, len(m.Payload), len(m.Subject), len(w.hdr), abi.ExportAlloc, total, w.mem.Size(), limit, firstLine(err))
}

// memoryPages is the number of 64 KiB pages limits.memory allows, at least
// one and at most the 4 GiB a 32-bit memory can address.
func memoryPages(limit uint64) uint32 {
	return uint32(min(max(limit/65536, 1), 65536))
}

// cause explains a failure outside message handling (instantiation).
func (w *instance) cause(err error) error {
	if w.killed() {
		return fmt.Errorf("did not finish within %v", max(w.v.spec.Timeout, 10*time.Second))
	}
	return firstLine(err)
}

// complete turns the status export (pycomms_handle or
// pycomms_codec_convert) returned into the result.
func (w *instance) complete(m *message.Message, export string, status abi.Status) ([]byte, error, bool) {
	name := w.v.spec.Name
	request := m.Kind == abi.KindRequest
	var err *message.Error
	switch status {
	case abi.StatusOK:
		if !request {
			return nil, nil, false
		}
		if w.tooLarge > 0 {
			err = message.Errorf(abi.StatusTooLarge, "plugin %q: %s: reply of %d bytes exceeds max_reply (%d bytes)", name, m.Subject, w.tooLarge, w.v.spec.MaxReply)
			break
		}
		// The reply buffer goes to the caller: one copy out of guest
		// memory (in hostReply), none here; the next reply allocates.
		r := w.reply
		w.reply = nil
		if w.replyHdr != nil && m.ReplyHeaders != nil {
			*m.ReplyHeaders = w.replyHdr
		}
		if r == nil {
			r = []byte{}
		}
		return r, nil, false
	case abi.StatusHandlerError:
		text := string(w.reply)
		if text == "" {
			text = "handler failed without a message"
		}
		err = w.handlerError(m, status, text)
	case abi.StatusNoMethod:
		err = message.Errorf(abi.StatusNoMethod, "plugin %q does not implement %q", name, m.Subject)
	default:
		if status < abi.StatusOK || status > abi.MaxStatus {
			return nil, message.Errorf(abi.StatusTrap, "plugin %q: %s: ABI violation: %s returned unknown status %d",
				name, m.Subject, export, int32(status)), true
		}
		text := string(w.reply)
		if text == "" {
			text = status.String()
		}
		err = w.handlerError(m, status, text)
	}
	if w.denied != "" {
		err.Msg += fmt.Sprintf(" (capability %q not granted to plugin %q)", w.denied, name)
	}
	return nil, err, false
}

// handlerError is the error a handler failed with, named by plugin and
// subject. A handler that was itself called by a handler (on this host or
// another) and fails with the very text of a call it made is passing that
// error up: it already names where it arose, so it goes up unchanged, and
// only the chain's first handler adds its name (otherwise a loop's error
// repeated the prefix once per level).
func (w *instance) handlerError(m *message.Message, status abi.Status, text string) *message.Error {
	if m.Hops > 0 && w.callErr != "" && text == w.callErr {
		return &message.Error{Status: status, Msg: text}
	}
	return message.Errorf(status, "plugin %q: %s: %s", w.v.spec.Name, m.Subject, text)
}

// violate ends the call: the guest broke the ABI, so its state can no
// longer be trusted. The panic unwinds through wazero to invoke.
func (w *instance) violate(format string, args ...any) {
	w.fatal = message.Errorf(abi.StatusTrap, "ABI violation: "+format, args...)
	panic(w.fatal)
}

// read returns a view of guest memory or ends the call when the guest
// passed an out-of-bounds range.
func (w *instance) read(what string, ptr, n uint32) []byte {
	b, ok := w.mem.Read(ptr, n)
	if !ok {
		w.violate("%s: range [%#x, +%d) is outside linear memory (%d bytes)", what, ptr, n, w.mem.Size())
	}
	return b
}

// lineLogger forwards a plugin's WASI stdout/stderr to the host log, one
// record per line, tagged with the plugin's name.
type lineLogger struct {
	mu     sync.Mutex
	logger *slog.Logger
	plugin string
	stream string
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.logger.Info(string(l.buf[:i]), "plugin", l.plugin, "stream", l.stream)
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 { // a guest that never writes a newline still gets logged
		l.logger.Info(string(l.buf), "plugin", l.plugin, "stream", l.stream)
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

// firstLine drops wazero's multi-line wasm stack trace from err: callers get
// the cause, the log gets the rest.
func firstLine(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return errors.New(strings.TrimSpace(s[:i]))
	}
	return err
}
