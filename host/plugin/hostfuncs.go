package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/tetratelabs/wazero/api"
)

type funcType struct{ params, results []api.ValueType }

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = api.ValueTypeI32
	}
	return t
}

// hostFuncTypes is the signature of every ABI v1 import (SPEC.md section 4).
var hostFuncTypes = map[string]funcType{
	abi.ImportReply:     {i32s(2), i32s(1)},
	abi.ImportLog:       {i32s(3), i32s(1)},
	abi.ImportPublish:   {i32s(4), i32s(1)},
	abi.ImportSend:      {i32s(4), i32s(1)},
	abi.ImportCall:      {i32s(5), i32s(1)},
	abi.ImportResult:    {i32s(2), i32s(1)},
	abi.ImportConfig:    {i32s(2), i32s(1)},
	abi.ImportConfigGet: {i32s(4), i32s(1)},
	abi.ImportHeader:    {i32s(4), i32s(1)},
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

func workerOf(ctx context.Context) *worker { return ctx.Value(workerKey{}).(*worker) }

// instantiateHostModules provides pycomms:host/v1 (the ABI) and
// pycomms:internal (the trampoline's next and fill) in this version's runtime.
func (v *Version) instantiateHostModules(ctx context.Context) error {
	b := v.rt.NewHostModuleBuilder(abi.ImportModule)
	add := func(name string, fn api.GoModuleFunction) {
		t := hostFuncTypes[name]
		b.NewFunctionBuilder().WithGoModuleFunction(fn, t.params, t.results).Export(name)
	}
	add(abi.ImportReply, hostReply)
	add(abi.ImportLog, hostLog)
	add(abi.ImportPublish, hostPublish)
	add(abi.ImportSend, hostSend)
	add(abi.ImportCall, hostCall)
	add(abi.ImportResult, hostResult)
	add(abi.ImportConfig, hostConfig)
	add(abi.ImportConfigGet, hostConfigGet)
	add(abi.ImportHeader, hostHeader)
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate %s: %w", abi.ImportModule, err)
	}
	ib := v.rt.NewHostModuleBuilder(internalModule)
	ib.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(trampNext), i32s(1), i32s(1)).Export(fnNext)
	ib.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(trampFill), i32s(1), nil).Export(fnFill)
	if _, err := ib.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate %s: %w", internalModule, err)
	}
	return nil
}

// trampNext finishes the message in hand with the status pycomms_handle
// returned, then blocks for the next one. It returns 0 when the version
// is closing, which ends the trampoline's loop.
var trampNext = func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	if w.killed.Load() != killNone {
		panic("instance stopped by the watchdog")
	}
	if j := w.job; j != nil {
		w.complete(j, abi.Status(int32(stack[0])))
	}
	for j := range w.v.jobs {
		if d := j.m.Deadline; !d.IsZero() && time.Now().After(d) {
			w.endJob(j, nil, message.Errorf(abi.StatusTimeout, "plugin %q: %s: deadline passed while queued", w.v.spec.Name, j.m.Subject))
			continue
		}
		w.begin(j)
		w.v.calls.Add(1)
		stack[0] = 1
		return
	}
	stack[0] = 0
}

// trampFill copies the message in hand to the buffer pycomms_alloc returned.
var trampFill = func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	j := w.job
	s, p, h := len(j.m.Subject), len(j.m.Payload), len(j.hdr)
	buf := w.read(abi.ExportAlloc+" result", uint32(stack[0]), uint32(s+p+h))
	copy(buf, j.m.Subject)
	copy(buf[s:], j.m.Payload)
	copy(buf[s+p:], j.hdr)
}

func (w *worker) granted(c abi.Capability, stack []uint64) bool {
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
	w := workerOf(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	data := w.read("reply", ptr, n)
	if uint64(n) > w.v.spec.MaxReply {
		w.tooLarge = uint64(n)
		stack[0] = neg(abi.StatusTooLarge)
		return
	}
	w.tooLarge = 0
	w.reply = append(w.reply[:0], data...)
	stack[0] = 0
})

var hostLog = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
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
// budget and the hop count of the message in hand.
func (w *worker) outgoing(kind abi.Kind, stack []uint64, what string) (*message.Message, bool) {
	subject := string(w.read(what+" subject", uint32(stack[0]), uint32(stack[1])))
	data := w.read(what+" data", uint32(stack[2]), uint32(stack[3]))
	if w.v.host == nil {
		stack[0] = neg(abi.StatusInternal)
		return nil, false
	}
	m := &message.Message{Kind: kind, Subject: subject, Payload: append([]byte(nil), data...), From: w.v.spec.Name}
	if j := w.job; j != nil {
		m.Hops = j.m.Hops + 1
		m.Deadline = time.Unix(0, w.deadline)
	}
	return m, true
}

var hostPublish = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	if !w.granted(abi.CapPublish, stack) {
		return
	}
	m, ok := w.outgoing(abi.KindEvent, stack, "publish")
	if !ok {
		return
	}
	m.Deadline = time.Time{}
	if _, err := w.v.host.Publish(context.Background(), m); err != nil {
		stack[0] = neg(message.StatusOf(err))
		return
	}
	stack[0] = 0
})

var hostSend = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	if !w.granted(abi.CapSend, stack) {
		return
	}
	m, ok := w.outgoing(abi.KindSend, stack, "send")
	if !ok {
		return
	}
	m.Deadline = time.Time{}
	if err := w.v.host.Send(context.Background(), m); err != nil {
		stack[0] = neg(message.StatusOf(err))
		return
	}
	stack[0] = 0
})

var hostCall = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	if !w.granted(abi.CapCall, stack) {
		return
	}
	m, ok := w.outgoing(abi.KindRequest, stack, "call")
	if !ok {
		return
	}
	if ms := int32(stack[4]); ms > 0 {
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
	reply, err := w.v.host.Call(cctx, m)
	if err != nil {
		w.callRes = append(w.callRes[:0], err.Error()...)
		stack[0] = neg(message.StatusOf(err))
		return
	}
	w.callRes = append(w.callRes[:0], reply...)
	stack[0] = uint64(len(reply))
})

// copyOut implements the "copy when it fits, return the full length"
// convention of result, config, config_get and header.
func (w *worker) copyOut(what string, data []byte, ptr, capacity uint32, stack []uint64) {
	if uint32(len(data)) <= capacity && len(data) > 0 {
		if !w.mem.Write(ptr, data) {
			w.violate("%s: range [%#x, +%d) is outside linear memory (%d bytes)", what, ptr, len(data), w.mem.Size())
		}
	}
	stack[0] = uint64(len(data))
}

var hostResult = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	w.copyOut("result", w.callRes, uint32(stack[0]), uint32(stack[1]), stack)
})

var hostConfig = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	w.copyOut("config", w.v.cfgCBOR, uint32(stack[0]), uint32(stack[1]), stack)
})

var hostConfigGet = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	key := w.read("config_get key", uint32(stack[0]), uint32(stack[1]))
	val, ok := w.v.cfgFlat[string(key)]
	if !ok {
		stack[0] = neg(abi.StatusNotFound)
		return
	}
	w.copyOut("config_get", []byte(val), uint32(stack[2]), uint32(stack[3]), stack)
})

var hostHeader = api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
	w := workerOf(ctx)
	key := w.read("header key", uint32(stack[0]), uint32(stack[1]))
	var val string
	ok := false
	if j := w.job; j != nil {
		val, ok = j.m.Headers[string(key)]
	}
	if !ok {
		stack[0] = neg(abi.StatusNotFound)
		return
	}
	w.copyOut("header", []byte(val), uint32(stack[2]), uint32(stack[3]), stack)
})
