package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/fuel"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/tetratelabs/wazero/api"
)

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = api.ValueTypeI32
	}
	return t
}

// hostImport is one import of abi.ImportModule as wazero needs it: the
// signature comes from abi.Imports (every parameter and the result an i32),
// the implementation from hostImpls.
type hostImport struct {
	params, results []api.ValueType
	fn              api.GoModuleFunction
}

// hostImports is every ABI import keyed by name, built once from the abi
// package's table so that the signatures exist in one place.
var hostImports = buildHostImports()

// hostImpls implements each import of abi.Imports. TestHostImplementsEveryImport
// fails when one is missing or a name is not an abi import.
var hostImpls = map[string]api.GoModuleFunction{
	abi.ImportReply:     hostReply,
	abi.ImportLog:       hostLog,
	abi.ImportPublish:   hostPublish,
	abi.ImportSend:      hostSend,
	abi.ImportCall:      hostCall,
	abi.ImportResult:    hostResult,
	abi.ImportConfig:    hostConfig,
	abi.ImportConfigGet: hostConfigGet,
	abi.ImportHeader:    hostHeader,

	abi.ImportPublishH:      hostPublishH,
	abi.ImportSendH:         hostSendH,
	abi.ImportCallH:         hostCallH,
	abi.ImportResultHeader:  hostResultHeader,
	abi.ImportResultHeaders: hostResultHeaders,
	abi.ImportReplyH:        hostReplyH,
}

func buildHostImports() map[string]hostImport {
	m := make(map[string]hostImport, len(hostImpls))
	for _, im := range abi.Imports() {
		m[im.Name] = hostImport{params: i32s(len(im.Params)), results: i32s(1), fn: hostImpls[im.Name]}
	}
	for _, im := range abi.TransportImports() {
		m[im.Name] = hostImport{params: i32s(len(im.Params)), results: i32s(1), fn: transportImpls[im.Name]}
	}
	return m
}

func capBit(c abi.Capability) (int, bool) {
	for i, k := range abi.Capabilities() {
		if k == c {
			return i, true
		}
	}
	return 0, false
}

func capNames() string {
	var s []string
	for _, c := range abi.Capabilities() {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

func neg(s abi.Status) uint64 { return uint64(uint32(-int32(s))) }

// instanceCtx is the context an instance's guest code runs with: it
// carries the instance for host functions, which find it with a type
// assertion instead of a ctx.Value lookup (they run on every reply and
// every fuel tick).
type instanceCtx struct {
	context.Context
	w *instance
}

func (c *instanceCtx) Value(key any) any {
	if key == (instanceKey{}) {
		return c.w
	}
	return c.Context.Value(key)
}

func instanceOf(ctx context.Context) *instance {
	if c, ok := ctx.(*instanceCtx); ok {
		return c.w
	}
	return ctx.Value(instanceKey{}).(*instance)
}

// instantiateHostModules provides pycomms:host/v1 (the ABI) and
// pycomms:internal (the fuel tick) in this version's runtime.
func (v *Version) instantiateHostModules(ctx context.Context) error {
	b := v.rt.NewHostModuleBuilder(abi.ImportModule)
	for name, hi := range hostImports {
		if hi.fn == nil {
			return fmt.Errorf("instantiate %s: import %q has no host implementation", abi.ImportModule, name)
		}
		b.NewFunctionBuilder().WithGoModuleFunction(hi.fn, hi.params, hi.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate %s: %w", abi.ImportModule, err)
	}
	tb := v.rt.NewHostModuleBuilder(fuel.ImportModule)
	tb.NewFunctionBuilder().WithGoModuleFunction(hostTick, nil, i32s(1)).Export(fuel.ImportTick)
	tb.NewFunctionBuilder().WithGoModuleFunction(hostGrow, i32s(1), i32s(1)).Export(fuel.ImportGrow)
	if _, err := tb.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate %s: %w", fuel.ImportModule, err)
	}
	return nil
}

// hostTick is where an instrumented guest lands every fuel.Period loop
// iterations and function entries: the host's chance to stop it.
var hostTick = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	if w.killed() {
		panic(errStopped)
	}
	stack[0] = fuel.Period
})

// hostGrow is every memory.grow of the guest (see fuel.ImportGrow): the
// same result, and a failed grow is remembered for the rest of the
// message, so that a trap after it names the memory cap even when memory
// ended far below it (one large grow refused).
var hostGrow = api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
	prev, ok := mod.Memory().Grow(uint32(stack[0]))
	if !ok {
		instanceOf(ctx).growFailed = true
		stack[0] = uint64(uint32(0xffffffff)) // -1
		return
	}
	stack[0] = uint64(prev)
})

func (w *instance) granted(c abi.Capability, stack []uint64) bool {
	bit, _ := capBit(c)
	if w.v.grants[bit] {
		return true
	}
	w.denied = c
	w.v.engine.logger.Warn("plugin called a host function without its grant",
		"plugin", w.v.spec.Name, "capability", string(c))
	stack[0] = neg(abi.StatusDenied)
	return false
}

var hostReply = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	w.setReply(w.read("reply", uint32(stack[0]), uint32(stack[1])), nil, stack)
})

// hostReplyH is reply with headers. Bad headers leave the reply as it was:
// the handler gets -invalid and may still reply without them.
var hostReplyH = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	data := w.read("reply_h", uint32(stack[0]), uint32(stack[1]))
	h, ok := w.headersAt(abi.ImportReplyH, uint32(stack[2]), uint32(stack[3]), stack)
	if !ok {
		return
	}
	w.setReply(data, h, stack)
})

// setReply replaces the reply and its headers (nil: none).
func (w *instance) setReply(data []byte, h abi.Headers, stack []uint64) {
	if n := uint64(len(data)); n > w.v.spec.MaxReply {
		w.tooLarge = n
		stack[0] = neg(abi.StatusTooLarge)
		return
	}
	w.tooLarge = 0
	w.reply = append(w.reply[:0], data...)
	w.replyHdr = h
	stack[0] = 0
}

// headersAt reads and checks the headers a guest hands to import what
// (n = 0: none). Headers that section 10 of SPEC.md refuses are logged
// with the reason and answered with -invalid (ok false); the instance is
// fine, only an out-of-bounds range is an ABI violation.
func (w *instance) headersAt(what string, ptr, n uint32, stack []uint64) (abi.Headers, bool) {
	if n == 0 {
		return nil, true
	}
	h, err := message.DecodeHeaders(w.read(what+" headers", ptr, n))
	if err != nil {
		w.v.engine.logger.Warn("plugin handed invalid headers to a host function",
			"plugin", w.v.spec.Name, "import", what, "err", err)
		if what == abi.ImportCallH {
			// A refused call is the last call: result tells why.
			w.callRes = fmt.Appendf(w.callRes[:0], "%s: %v", what, err)
			w.callHdr = nil
		}
		stack[0] = neg(abi.StatusInvalid)
		return nil, false
	}
	return h, true
}

var hostLog = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	if !w.granted(abi.CapLog, stack) {
		return
	}
	level := abi.Level(int32(stack[0]))
	msg := string(w.read("log", uint32(stack[1]), uint32(stack[2])))
	var l slog.Level
	switch level {
	case abi.LevelDebug:
		l = slog.LevelDebug
	case abi.LevelInfo:
		l = slog.LevelInfo
	case abi.LevelWarn:
		l = slog.LevelWarn
	case abi.LevelError:
		l = slog.LevelError
	default:
		stack[0] = neg(abi.StatusInvalid)
		return
	}
	w.v.engine.logger.Log(ctx, l, msg, "plugin", w.v.spec.Name)
	stack[0] = 0
})

// outgoing builds a message a handler sends; it inherits the remaining
// budget and the hop count of the message in hand. With headers, the
// import's parameters 4 and 5 point at them (the _h imports).
func (w *instance) outgoing(kind abi.Kind, stack []uint64, what string, headers bool) (*message.Message, bool) {
	subject := string(w.read(what+" subject", uint32(stack[0]), uint32(stack[1])))
	data := w.read(what+" data", uint32(stack[2]), uint32(stack[3]))
	var h abi.Headers
	if headers {
		var ok bool
		if h, ok = w.headersAt(what, uint32(stack[4]), uint32(stack[5]), stack); !ok {
			return nil, false
		}
	}
	if w.v.host == nil {
		stack[0] = neg(abi.StatusInternal)
		return nil, false
	}
	m := &message.Message{Kind: kind, Subject: subject, Payload: append([]byte(nil), data...), Headers: h, From: w.v.spec.Name}
	if in := w.msg; in != nil {
		m.Hops = in.Hops + 1
		m.Deadline = deadlineTime(w.due)
	}
	return m, true
}

var (
	hostPublish  = publishImport(abi.ImportPublish, false)
	hostPublishH = publishImport(abi.ImportPublishH, true)
	hostSend     = sendImport(abi.ImportSend, false)
	hostSendH    = sendImport(abi.ImportSendH, true)
	hostCall     = callImport(abi.ImportCall, false)
	hostCallH    = callImport(abi.ImportCallH, true)
)

func publishImport(name string, headers bool) api.GoModuleFunc {
	return func(ctx context.Context, _ api.Module, stack []uint64) {
		w := instanceOf(ctx)
		if !w.granted(abi.CapPublish, stack) {
			return
		}
		m, ok := w.outgoing(abi.KindEvent, stack, name, headers)
		if !ok {
			return
		}
		m.Deadline = time.Time{}
		if _, err := w.v.host.Publish(context.Background(), m); err != nil {
			stack[0] = neg(message.StatusOf(err))
			return
		}
		stack[0] = 0
	}
}

func sendImport(name string, headers bool) api.GoModuleFunc {
	return func(ctx context.Context, _ api.Module, stack []uint64) {
		w := instanceOf(ctx)
		if !w.granted(abi.CapSend, stack) {
			return
		}
		m, ok := w.outgoing(abi.KindSend, stack, name, headers)
		if !ok {
			return
		}
		m.Deadline = time.Time{}
		if err := w.v.host.Send(context.Background(), m); err != nil {
			stack[0] = neg(message.StatusOf(err))
			return
		}
		stack[0] = 0
	}
}

// callImport is call, or call_h whose timeout_ms comes after the headers.
func callImport(name string, headers bool) api.GoModuleFunc {
	timeoutAt := 4
	if headers {
		timeoutAt = 6
	}
	return func(ctx context.Context, _ api.Module, stack []uint64) {
		w := instanceOf(ctx)
		if !w.granted(abi.CapCall, stack) {
			return
		}
		ms := int32(stack[timeoutAt])
		m, ok := w.outgoing(abi.KindRequest, stack, name, headers)
		if !ok {
			return
		}
		w.call(m, ms, stack)
	}
}

func (w *instance) call(m *message.Message, ms int32, stack []uint64) {
	// The nested request belongs to this handler's chain; the chain gets
	// its id here, on its first call, so that a message that calls nothing
	// costs nothing.
	m.Chain = w.chain.Load()
	if m.Chain == 0 {
		m.Chain = nextChain.Add(1)
		w.held.Store(w.msg)
		w.chain.Store(m.Chain)
	}
	if ms > 0 {
		if d := time.Now().Add(time.Duration(ms) * time.Millisecond); m.Deadline.IsZero() || d.Before(m.Deadline) {
			m.Deadline = d
		}
	}
	cctx := context.Background()
	if !m.Deadline.IsZero() {
		var cancel context.CancelFunc
		cctx, cancel = context.WithDeadline(cctx, m.Deadline)
		defer cancel()
	}
	// A local handler answers on this goroutine, before Call returns, so
	// the reply's headers land in callHdr without a copy or an allocation
	// (message.Message.ReplyHeaders).
	w.callHdr = nil
	m.ReplyHeaders = &w.callHdr
	reply, err := w.v.host.Call(cctx, m)
	if err != nil {
		w.callHdr = nil
		w.callErr = err.Error()
		w.callRes = append(w.callRes[:0], w.callErr...)
		stack[0] = neg(message.StatusOf(err))
		return
	}
	w.callRes = append(w.callRes[:0], reply...)
	stack[0] = uint64(len(reply))
}

// nextChain numbers call chains, from 1 (0 is "no chain yet").
var nextChain atomic.Uint64

// copyOut implements the "copy when it fits, return the full length"
// convention of result, config, config_get and header.
func (w *instance) copyOut(what string, data []byte, ptr, capacity uint32, stack []uint64) {
	if uint32(len(data)) <= capacity && len(data) > 0 {
		if !w.mem.Write(ptr, data) {
			w.violate("%s: range [%#x, +%d) is outside linear memory (%d bytes)", what, ptr, len(data), w.mem.Size())
		}
	}
	stack[0] = uint64(len(data))
}

var hostResult = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	w.copyOut("result", w.callRes, uint32(stack[0]), uint32(stack[1]), stack)
})

var hostConfig = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	w.copyOut("config", w.v.cfgCBOR, uint32(stack[0]), uint32(stack[1]), stack)
})

var hostConfigGet = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	key := w.read("config_get key", uint32(stack[0]), uint32(stack[1]))
	val, ok := w.v.cfgFlat[string(key)]
	if !ok {
		stack[0] = neg(abi.StatusNotFound)
		return
	}
	w.copyOut("config_get", []byte(val), uint32(stack[2]), uint32(stack[3]), stack)
})

var hostHeader = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	key := w.read("header key", uint32(stack[0]), uint32(stack[1]))
	var val string
	ok := false
	if in := w.msg; in != nil {
		val, ok = in.Headers[string(key)]
	}
	if !ok {
		stack[0] = neg(abi.StatusNotFound)
		return
	}
	w.copyOut("header", []byte(val), uint32(stack[2]), uint32(stack[3]), stack)
})

var hostResultHeader = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	key := w.read("result_header key", uint32(stack[0]), uint32(stack[1]))
	val, ok := w.callHdr[string(key)]
	if !ok {
		stack[0] = neg(abi.StatusNotFound)
		return
	}
	w.copyOut("result_header", []byte(val), uint32(stack[2]), uint32(stack[3]), stack)
})

var hostResultHeaders = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	var b []byte
	if len(w.callHdr) > 0 {
		b, _ = headerEnc.Marshal(w.callHdr) // map[string]string always encodes
	}
	w.copyOut("result_headers", b, uint32(stack[0]), uint32(stack[1]), stack)
})
