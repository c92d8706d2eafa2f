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

// job is one message on its way through a version's queue.
type job struct {
	m     *message.Message
	hdr   []byte // CBOR headers, encoded by the sender's goroutine
	post  bool   // send or event: nobody waits
	done  chan struct{}
	reply []byte
	err   error
}

var jobPool = sync.Pool{New: func() any { return &job{done: make(chan struct{}, 1)} }}

var headerEnc, _ = cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()

func getJob(m *message.Message) *job {
	j := jobPool.Get().(*job)
	j.m = m
	if len(m.Headers) > 0 {
		j.hdr, _ = headerEnc.Marshal(m.Headers) // map[string]string always encodes
	}
	return j
}

func putJob(j *job) {
	j.m, j.hdr, j.reply, j.err = nil, nil, nil, nil
	jobPool.Put(j)
}

type workerKey struct{}

// Exit codes the watchdog and the ABI checks close a trampoline with; they
// show up in wazero's error and are mapped back to causes by killed.
const (
	killNone = iota
	killTimeout
)

// worker owns one instance (plugin module + trampoline) and the goroutine
// that runs the trampoline's message loop.
type worker struct {
	v    *Version
	slot int
	ctx  context.Context

	mod   api.Module
	tramp api.Module
	serve api.Function
	mem   api.Memory
	gKind api.MutableGlobal
	gSub  api.MutableGlobal
	gPay  api.MutableGlobal
	gHdr  api.MutableGlobal

	// mu orders job switches against the watchdog, so that a kill meant for
	// one message can never hit the next one.
	mu       sync.Mutex
	job      *job
	started  time.Time
	deadline int64 // unix nanos; 0 while idle
	killed   atomic.Int32

	// Per-message state, touched only by the worker goroutine.
	reply    []byte
	tooLarge uint64
	denied   abi.Capability
	callRes  []byte
	fatal    *message.Error
}

func (w *worker) instantiate(ctx context.Context) error {
	v := w.v
	name := fmt.Sprintf("pycomms.instance.%d", w.slot)
	ictx, cancel := context.WithTimeout(ctx, max(v.spec.Timeout, 10*time.Second))
	defer cancel()
	out := &lineLogger{logger: v.engine.logger, plugin: v.spec.Name, stream: "stdout"}
	errOut := &lineLogger{logger: v.engine.logger, plugin: v.spec.Name, stream: "stderr"}
	cfg := wazero.NewModuleConfig().
		WithName(name).
		WithStartFunctions(abi.ExportInitialize).
		WithStdout(out).WithStderr(errOut).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader)
	mod, err := v.rt.InstantiateModule(ictx, v.module, cfg)
	if err != nil {
		return fmt.Errorf("instantiate: %w", firstLine(err))
	}
	ok := false
	defer func() {
		if !ok {
			mod.Close(context.Background())
		}
	}()
	res, err := mod.ExportedFunction(abi.ExportABIVersion).Call(ictx)
	if err != nil {
		return fmt.Errorf("call %s: %w", abi.ExportABIVersion, firstLine(err))
	}
	if ver := int32(res[0]); ver < abi.MinVersion || ver > abi.MaxVersion {
		return fmt.Errorf("plugin ABI version %d is not supported: this host accepts %d..%d", ver, abi.MinVersion, abi.MaxVersion)
	}
	tc, err := v.rt.CompileModule(ctx, trampolineWasm(name))
	if err != nil {
		return fmt.Errorf("compile trampoline: %w", err)
	}
	tramp, err := v.rt.InstantiateModule(ctx, tc, wazero.NewModuleConfig().WithName(fmt.Sprintf("pycomms.loop.%d", w.slot)).WithStartFunctions())
	if err != nil {
		return fmt.Errorf("instantiate trampoline: %w", err)
	}
	w.mu.Lock()
	w.mod, w.tramp, w.mem = mod, tramp, mod.Memory()
	w.serve = tramp.ExportedFunction(fnServe)
	w.gKind = tramp.ExportedGlobal(globalKind).(api.MutableGlobal)
	w.gSub = tramp.ExportedGlobal(globalSubject).(api.MutableGlobal)
	w.gPay = tramp.ExportedGlobal(globalPayload).(api.MutableGlobal)
	w.gHdr = tramp.ExportedGlobal(globalHeaders).(api.MutableGlobal)
	w.killed.Store(killNone)
	w.mu.Unlock()
	w.ctx = context.WithValue(context.Background(), workerKey{}, w)
	ok = true
	return nil
}

func (w *worker) closeInstance() {
	ctx := context.Background()
	w.mu.Lock()
	tramp, mod := w.tramp, w.mod
	w.tramp, w.mod = nil, nil
	w.mu.Unlock()
	if tramp != nil {
		tramp.Close(ctx)
	}
	if mod != nil {
		mod.Close(ctx)
	}
}

// run drives the instance until the version closes. Every return of the
// trampoline other than a clean stop means the instance is no longer
// trustworthy: the message in hand fails and the instance is replaced.
func (w *worker) run() {
	defer w.v.wg.Done()
	logger := w.v.engine.logger
	for {
		err := w.serve.CallWithStack(w.ctx, nil)
		if err == nil && w.fatal == nil && w.killed.Load() == killNone {
			w.closeInstance()
			return
		}
		cause := w.failure(err)
		if j := w.current(); j != nil {
			w.endJob(j, nil, cause)
		}
		w.v.restarts.Add(1)
		logger.Warn("plugin instance replaced", "plugin", w.v.spec.Name, "instance", w.slot, "cause", cause.Msg)
		w.closeInstance()
		if ierr := w.instantiate(context.Background()); ierr != nil {
			logger.Error("plugin instance could not be restarted", "plugin", w.v.spec.Name, "instance", w.slot, "err", ierr)
			w.failAll(message.Errorf(abi.StatusTrap, "plugin %q: instance could not be restarted: %v", w.v.spec.Name, ierr))
			return
		}
	}
}

// failure turns the way the trampoline ended into the caller's error.
func (w *worker) failure(err error) *message.Error {
	defer func() { w.fatal = nil }()
	subject := ""
	if j := w.job; j != nil {
		subject = j.m.Subject + ": "
	}
	name := w.v.spec.Name
	switch {
	case w.fatal != nil:
		return message.Errorf(w.fatal.Status, "plugin %q: %s%s", name, subject, w.fatal.Msg)
	case w.killed.Load() == killTimeout:
		took := time.Since(w.started).Round(time.Millisecond)
		return message.Errorf(abi.StatusTimeout, "plugin %q: %sdid not finish within its deadline (stopped after %v; instance replaced)", name, subject, took)
	}
	msg := firstLine(err).Error()
	if w.mem != nil && uint64(w.mem.Size())+65536 > w.v.spec.Memory {
		return message.Errorf(abi.StatusTrap, "plugin %q: %strapped after reaching its memory limit (%d bytes): %s", name, subject, w.v.spec.Memory, msg)
	}
	return message.Errorf(abi.StatusTrap, "plugin %q: %strapped: %s", name, subject, msg)
}

func (w *worker) current() *job {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.job
}

// failAll answers every message that reaches this worker with err until
// the version closes; the other workers keep serving.
func (w *worker) failAll(err error) {
	for j := range w.v.jobs {
		w.endJob(j, nil, err)
	}
}

// checkDeadline is the watchdog's half of deadline enforcement: closing the
// trampoline makes the guest stop at its next loop header.
func (w *worker) checkDeadline(now int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.deadline != 0 && now > w.deadline && w.killed.Load() == killNone && w.tramp != nil {
		w.killed.Store(killTimeout)
		_ = w.tramp.CloseWithExitCode(context.Background(), killTimeout)
	}
}

// begin makes j the message in hand and publishes its layout to the
// trampoline's globals.
func (w *worker) begin(j *job) {
	now := time.Now()
	dl := now.Add(w.v.spec.Timeout)
	if d := j.m.Deadline; !d.IsZero() && d.Before(dl) {
		dl = d
	}
	w.mu.Lock()
	w.job, w.started, w.deadline = j, now, dl.UnixNano()
	w.mu.Unlock()
	w.v.busy.Add(1)
	w.gKind.Set(uint64(j.m.Kind))
	w.gSub.Set(uint64(len(j.m.Subject)))
	w.gPay.Set(uint64(len(j.m.Payload)))
	w.gHdr.Set(uint64(len(j.hdr)))
}

// endJob hands the result to whoever waits and resets per-message state.
func (w *worker) endJob(j *job, reply []byte, err error) {
	w.mu.Lock()
	if w.job == j {
		w.job, w.deadline = nil, 0
		w.v.busy.Add(-1)
	}
	w.mu.Unlock()
	w.reply, w.tooLarge, w.denied = w.reply[:0], 0, ""
	v := w.v
	if err != nil {
		v.errors.Add(1)
	}
	if j.post {
		if err != nil {
			v.engine.logger.Warn("plugin failed to handle message", "plugin", v.spec.Name, "kind", j.m.Kind.String(), "subject", j.m.Subject, "err", err)
		}
	} else {
		j.reply, j.err = reply, err
		j.done <- struct{}{}
	}
	v.release()
}

// complete turns the status pycomms_handle returned into the result.
func (w *worker) complete(j *job, status abi.Status) {
	name := w.v.spec.Name
	var reply []byte
	var err *message.Error
	switch status {
	case abi.StatusOK:
		if w.tooLarge > 0 && !j.post {
			err = message.Errorf(abi.StatusTooLarge, "plugin %q: %s: reply of %d bytes exceeds max_reply (%d bytes)", name, j.m.Subject, w.tooLarge, w.v.spec.MaxReply)
		} else if !j.post {
			reply = bytes.Clone(w.reply)
		}
	case abi.StatusHandlerError:
		text := string(w.reply)
		if text == "" {
			text = "handler failed without a message"
		}
		err = message.Errorf(abi.StatusHandlerError, "plugin %q: %s: %s", name, j.m.Subject, text)
	case abi.StatusNoMethod:
		err = message.Errorf(abi.StatusNoMethod, "plugin %q does not implement %q", name, j.m.Subject)
	default:
		if _, known := statusKnown(status); !known {
			w.violate("%s returned unknown status %d", abi.ExportHandle, int32(status))
		}
		text := string(w.reply)
		if text == "" {
			text = status.String()
		}
		err = message.Errorf(status, "plugin %q: %s: %s", name, j.m.Subject, text)
	}
	if err != nil && w.denied != "" {
		err.Msg += fmt.Sprintf(" (capability %q not granted to plugin %q)", w.denied, name)
	}
	if err != nil {
		w.endJob(j, nil, err)
		return
	}
	w.endJob(j, reply, nil)
}

func statusKnown(s abi.Status) (abi.Status, bool) {
	return s, s >= abi.StatusOK && s <= abi.StatusInternal
}

// violate ends the instance: the guest broke the ABI, so its state can no
// longer be trusted. The panic unwinds through wazero to run.
func (w *worker) violate(format string, args ...any) {
	w.fatal = message.Errorf(abi.StatusTrap, "ABI violation: "+format, args...)
	panic(w.fatal)
}

// read returns a view of guest memory or ends the instance when the guest
// passed an out-of-bounds range.
func (w *worker) read(what string, ptr, n uint32) []byte {
	b, ok := w.mem.Read(ptr, n)
	if !ok {
		w.violate("%s: range [%#x, +%d) is outside linear memory (%d bytes)", what, ptr, n, w.mem.Size())
	}
	return b
}

// lineLogger forwards a plugin's WASI stdout/stderr to the host log, one
// record per line, tagged with the plugin's name.
type lineLogger struct {
	logger *slog.Logger
	plugin string
	stream string
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
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
