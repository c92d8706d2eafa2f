package plugin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Actions is what the action imports of a transport plugin (abi/SPEC.md
// section 13.3) act on: the runtime that owns the plugin's sockets
// (host/internal/transport). slot names the instance that acted. The
// byte slices are views of guest memory, valid only during the call:
// an implementation copies what it keeps. Each method returns the status
// the import reports (abi.StatusOK for success).
type Actions interface {
	Write(slot int, conn uint32, b []byte) abi.Status
	Open(slot int, dialIndex int32) (uint32, abi.Status)
	CloseConn(slot int, conn uint32) abi.Status
	SetTimer(slot int, timer uint32, ms int32) abi.Status
	// Deliver takes m (which it may keep) into the host; for a request
	// the reply comes back later as an EventReply with corr, and
	// m.ReplyHeaders (never nil then) is where the reply's headers land,
	// for that event's len_b.
	Deliver(slot int, corr uint32, m *message.Message) abi.Status
	// Respond answers the request handed over with corr; h are the
	// reply's headers (nil: none), already checked, which it may keep.
	Respond(slot int, corr uint32, status abi.Status, b []byte, h abi.Headers) abi.Status
}

// LoadTransport loads a transport plugin (abi/SPEC.md section 13): the same
// compiled module, instance pool, deadlines and limits as Load, but the
// module must export pycomms_transport_event, and its instances are driven
// one by one through Event instead of taking requests and posts.
func (e *Engine) LoadTransport(ctx context.Context, spec Spec, actions Actions) (*Version, error) {
	if actions == nil {
		return nil, fmt.Errorf("load transport %q: no actions", spec.Name)
	}
	return e.load(ctx, spec, nil, actions, abi.PluginTransport)
}

// CheckTransport is Check for a transport plugin.
func (e *Engine) CheckTransport(ctx context.Context, spec Spec) error {
	spec.Instances = 1
	v, err := e.load(ctx, spec, nil, noActions{}, abi.PluginTransport)
	if err != nil {
		return err
	}
	v.Close()
	return nil
}

// KindOf compiles wasm just far enough to read its exports and tells its
// kind (abi.KindOf): what a tool needs to tell a transport from a handler
// without its config.
func KindOf(ctx context.Context, wasm []byte) (abi.PluginKind, error) {
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return "", fmt.Errorf("compile: %w", err)
	}
	return abi.KindOf(exportNames(mod.ExportedFunctions()))
}

func exportNames(m map[string]api.FunctionDefinition) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	return names
}

// kind is the kind of plugin v was loaded as.
func (v *Version) kind() abi.PluginKind { return v.pluginKind }

// kindMismatch refuses a module whose exports say it is of another kind
// than the one it is loaded as, naming both.
func kindMismatch(exports map[string]api.FunctionDefinition, want abi.PluginKind) error {
	got, err := abi.KindOf(exportNames(exports))
	if err != nil {
		_, h := exports[abi.ExportHandle]
		_, t := exports[abi.ExportTransportEvent]
		_, c := exports[abi.ExportCodecConvert]
		if h || t || c {
			// More than one kind's export: refused whatever it is
			// configured as, naming them.
			return fmt.Errorf("not a pycomms ABI v%d plugin: %w", abi.Version, err)
		}
		return nil // none: checkModule names the missing export
	}
	if got == want {
		return nil
	}
	return fmt.Errorf("not a pycomms ABI v%d %s plugin: the module is a %s plugin (it exports %q): configure it with kind: %s",
		abi.Version, want, got, map[abi.PluginKind]string{abi.PluginHandler: abi.ExportHandle, abi.PluginTransport: abi.ExportTransportEvent, abi.PluginCodec: abi.ExportCodecConvert}[got], got)
}

// importForKind says why a module of kind may not import the host
// function name ("" when it may).
func importForKind(name string, kind abi.PluginKind) string {
	transportOnly := abi.IsTransportImport(name)
	switch {
	case kind == abi.PluginCodec && !slices.Contains(abi.CodecMayImport(), name):
		return fmt.Sprintf("imports %s.%s, which a codec plugin cannot use: a codec may import only %s (SPEC section 14.3)", abi.ImportModule, name, strings.Join(abi.CodecMayImport(), ", "))
	case kind == abi.PluginHandler && transportOnly:
		return fmt.Sprintf("imports %s.%s, an action of transport plugins (SPEC section 13.3), which a handler cannot use", abi.ImportModule, name)
	case kind == abi.PluginTransport && !transportOnly && !slices.Contains(abi.TransportMayImport(), name):
		return fmt.Sprintf("imports %s.%s, which acts on a message being handled: a transport plugin uses deliver and respond instead (SPEC section 13.3)", abi.ImportModule, name)
	}
	return ""
}

// Slots is the number of instances of a transport version; Event takes a
// slot in [0, Slots).
func (v *Version) Slots() int { return len(v.all) }

// SlotAlive reports whether the instance in slot exists: a restart that
// failed loses it for good (the log says why). Safe from any goroutine.
func (v *Version) SlotAlive(slot int) bool { return !v.all[slot].lost.Load() }

// Event is one transport event (abi/SPEC.md section 13.2). A, B and C are
// the byte regions it carries (len_a, len_b, len_c), copied contiguously
// into the guest.
type Event struct {
	Type    abi.TransportEvent
	ID      uint32
	Arg     int32
	A, B, C []byte
}

// Event runs one event on the instance in slot under the plugin's timeout
// and memory cap, and returns the guest's result (>= 0, or a negated
// status). The caller must not run two events on one slot at once (the
// transport runtime gives each slot one goroutine). A non-nil error means
// the instance broke (a trap, a deadline overrun, an ABI violation) and
// was replaced by a fresh one, or was lost when that failed (SlotAlive):
// every connection pinned to it is to be closed.
func (v *Version) Event(slot int, ev *Event) (int32, error) {
	w := v.all[slot]
	if w.mod == nil {
		return 0, message.Errorf(abi.StatusTrap, "plugin %q: instance %d is lost: its restart failed (see the log)", v.spec.Name, slot)
	}
	dl := nanotime() + int64(v.spec.Timeout)
	if !w.deadline.CompareAndSwap(idle, dl) {
		return 0, message.Errorf(abi.StatusInternal, "plugin %q: instance %d is in use (transport events of one slot must not overlap)", v.spec.Name, slot)
	}
	v.wakeDog()
	v.calls.Add(1)
	w.due = dl
	res, err := w.runEvent(ev)
	if err != nil {
		v.errors.Add(1)
		v.replace(w, err)
	}
	if w.mod != nil {
		w.deadline.Store(idle)
	}
	return res, err
}

// runEvent copies ev's bytes into the guest and calls
// pycomms_transport_event; a non-nil error means the instance is broken.
func (w *instance) runEvent(ev *Event) (int32, error) {
	name := w.v.spec.Name
	what := fmt.Sprintf("%s event", ev.Type)
	la, lb, lc := len(ev.A), len(ev.B), len(ev.C)
	total := uint64(la + lb + lc)
	var ptr uint32
	if total > 0 {
		if limit := uint64(memoryPages(w.v.spec.Memory)) * 65536; total > limit {
			// Never more than read_buffer or a routed message, which the
			// runtime bounds below limits.memory: this is a misconfiguration.
			return 0, message.Errorf(abi.StatusTooLarge, "plugin %q: %s of %d bytes exceeds limits.memory (%d bytes)", name, what, total, limit)
		}
		w.estack[0] = total
		if err := w.alloc.CallWithStack(w.ctx, w.estack[:1]); err != nil {
			return 0, w.eventFailure(what, err)
		}
		ptr = uint32(w.estack[0])
		buf, ok := w.mem.Read(ptr, uint32(total))
		if !ok || ptr == 0 {
			return 0, message.Errorf(abi.StatusTrap, "plugin %q: %s: ABI violation: %s(%d) returned pointer %#x, not a buffer in linear memory (%d bytes)",
				name, what, abi.ExportAlloc, total, ptr, w.mem.Size())
		}
		copy(buf, ev.A)
		copy(buf[la:], ev.B)
		copy(buf[la+lb:], ev.C)
	}
	w.estack = [7]uint64{uint64(ev.Type), uint64(ev.ID), uint64(uint32(ev.Arg)), uint64(ptr), uint64(la), uint64(lb), uint64(lc)}
	if err := w.event.CallWithStack(w.ctx, w.estack[:7]); err != nil {
		return 0, w.eventFailure(what, err)
	}
	res := int32(w.estack[0])
	switch {
	case ev.Type == abi.EventData && res > int32(la):
		return 0, message.Errorf(abi.StatusTrap, "plugin %q: %s: ABI violation: consumed %d bytes of %d", name, what, res, la)
	case res < 0 && abi.Status(-res) > abi.MaxStatus:
		return 0, message.Errorf(abi.StatusTrap, "plugin %q: %s: ABI violation: %s returned %d, neither a count nor a negated status",
			name, what, abi.ExportTransportEvent, res)
	}
	return res, nil
}

// eventFailure is failure for a transport event.
func (w *instance) eventFailure(what string, err error) *message.Error {
	return w.failure(&message.Message{Subject: what}, err)
}

// noActions is the Actions of a transport version that is only checked:
// it is never run.
type noActions struct{}

func (noActions) Write(int, uint32, []byte) abi.Status             { return abi.StatusInternal }
func (noActions) Open(int, int32) (uint32, abi.Status)             { return 0, abi.StatusInternal }
func (noActions) CloseConn(int, uint32) abi.Status                 { return abi.StatusInternal }
func (noActions) SetTimer(int, uint32, int32) abi.Status           { return abi.StatusInternal }
func (noActions) Deliver(int, uint32, *message.Message) abi.Status { return abi.StatusInternal }
func (noActions) Respond(int, uint32, abi.Status, []byte, abi.Headers) abi.Status {
	return abi.StatusInternal
}

// transportImpls implements each import of abi.TransportImports.
var transportImpls = map[string]api.GoModuleFunction{
	abi.ImportConnWrite: api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
		w := instanceOf(ctx)
		b := w.read("conn_write", uint32(stack[1]), uint32(stack[2]))
		st := w.v.actions.Write(w.slot, uint32(stack[0]), b)
		result(stack, st, uint64(len(b)))
	}),
	abi.ImportConnOpen: api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
		w := instanceOf(ctx)
		id, st := w.v.actions.Open(w.slot, int32(stack[0]))
		result(stack, st, uint64(id))
	}),
	abi.ImportConnClose: api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
		w := instanceOf(ctx)
		result(stack, w.v.actions.CloseConn(w.slot, uint32(stack[0])), 0)
	}),
	abi.ImportTimerSet: api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
		w := instanceOf(ctx)
		result(stack, w.v.actions.SetTimer(w.slot, uint32(stack[0]), int32(stack[1])), 0)
	}),
	abi.ImportDeliver:  api.GoModuleFunc(hostDeliver),
	abi.ImportRespond:  api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) { hostRespond(ctx, stack, false) }),
	abi.ImportRespondH: api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) { hostRespond(ctx, stack, true) }),
}

// hostRespond is the respond action, (corr, status, ptr, len), and with
// headers respond_h, which adds (headers_ptr, headers_len). Headers that
// SPEC.md section 10 refuses are answered with -invalid, like a bad
// status, and the request stays unanswered: the plugin may respond again.
func hostRespond(ctx context.Context, stack []uint64, headers bool) {
	w := instanceOf(ctx)
	what := abi.ImportRespond
	if headers {
		what = abi.ImportRespondH
	}
	b := w.read(what, uint32(stack[2]), uint32(stack[3]))
	st := abi.Status(int32(stack[1]))
	if st < abi.StatusOK || st > abi.MaxStatus {
		stack[0] = neg(abi.StatusInvalid)
		return
	}
	var h abi.Headers
	if headers {
		var ok bool
		if h, ok = w.headersAt(what, uint32(stack[4]), uint32(stack[5]), stack); !ok {
			return
		}
	}
	result(stack, w.v.actions.Respond(w.slot, uint32(stack[0]), st, b, h), 0)
}

// result sets an import's result: ok on success, else the negated status.
func result(stack []uint64, st abi.Status, ok uint64) {
	if st != abi.StatusOK {
		stack[0] = neg(st)
		return
	}
	stack[0] = ok
}

// delivered is a request a transport plugin delivers, with the slot its
// reply's headers land in (message.Message.ReplyHeaders), for the reply
// event. One allocation for both, of the size class the message alone
// takes (160 bytes), so a reply without headers costs nothing more.
type delivered struct {
	msg message.Message
	hdr abi.Headers
}

// newDelivered returns the message for a deliver of kind: a request's
// ReplyHeaders point into the same allocation.
func newDelivered(kind abi.Kind) *message.Message {
	if kind != abi.KindRequest {
		return new(message.Message)
	}
	d := new(delivered)
	d.msg.ReplyHeaders = &d.hdr
	return &d.msg
}

// hostDeliver is the deliver action: (kind, corr, ptr, subject_len,
// payload_len, headers_len).
func hostDeliver(ctx context.Context, _ api.Module, stack []uint64) {
	w := instanceOf(ctx)
	kind := abi.Kind(int32(stack[0]))
	corr := uint32(stack[1])
	ptr, sl, pl, hl := uint32(stack[2]), uint32(stack[3]), uint32(stack[4]), uint32(stack[5])
	if total := uint64(sl) + uint64(pl) + uint64(hl); total > uint64(w.mem.Size()) {
		w.violate("deliver: %d+%d+%d bytes at %#x are outside linear memory (%d bytes)", sl, pl, hl, ptr, w.mem.Size())
	}
	region := w.read("deliver", ptr, sl+pl+hl)
	c, ok := abi.DeliverCapability(kind)
	if !ok {
		stack[0] = neg(abi.StatusInvalid)
		return
	}
	if !w.granted(c, stack) {
		return
	}
	m := newDelivered(kind)
	m.Kind = kind
	m.Subject = string(region[:sl])
	m.Payload = append([]byte(nil), region[sl:sl+pl]...)
	m.From = w.v.spec.Name
	if hl > 0 {
		if hl > abi.MaxHeadersLen {
			stack[0] = neg(abi.StatusTooLarge)
			return
		}
		var h abi.Headers
		if err := cbor.Unmarshal(region[sl+pl:], &h); err != nil {
			stack[0] = neg(abi.StatusInvalid)
			return
		}
		m.Headers = h
	}
	if kind == abi.KindRequest {
		m.Deadline = time.Now().Add(w.v.spec.Timeout)
	}
	result(stack, w.v.actions.Deliver(w.slot, corr, m), 0)
}
