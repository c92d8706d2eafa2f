package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/wapc/wapc-go"
	wapcwazero "github.com/wapc/wapc-go/engines/wazero"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
	"github.com/pycomms/pycomms-host/host/message"
)

// Caller is one in-process plugin-call contender: Call runs the guest's
// echo on payload and returns the reply (valid until the next Call).
type Caller interface {
	Call(payload []byte) ([]byte, error)
	Close()
}

// ours is the host's plugin runtime as the router reaches it: a
// plugin.Plugin over a loaded Version (fuel-instrumented module, instance
// pool of one, per-message deadline enforced by the watchdog).
type ours struct {
	eng *plugin.Engine
	p   *plugin.Plugin
}

// NewOurs loads the pycomms-ABI echo module (testdata/wat/echo.wasm) with
// one instance and a 10 s time limit.
func NewOurs(echoWasm []byte) (Caller, error) {
	eng, err := plugin.NewEngine(plugin.EngineOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("compare: plugin engine: %w", err)
	}
	v, err := eng.Load(context.Background(), plugin.Spec{
		Name: "echo", Wasm: echoWasm, Instances: 1, Queue: 64, Timeout: callTimeout, MaxReply: 1 << 20,
	}, nil)
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("compare: loading the echo plugin: %w", err)
	}
	return &ours{eng: eng, p: plugin.New("echo", v)}, nil
}

func (o *ours) Call(payload []byte) ([]byte, error) {
	return o.p.Request(context.Background(), &message.Message{
		Kind: abi.KindRequest, Subject: echoSubject, Payload: payload, Deadline: time.Now().Add(callTimeout),
	})
}

func (o *ours) Close() {
	o.p.Close()
	o.eng.Close()
}

// wapcCaller is waPC (wapc-go's wazero engine, its default runtime) with
// one instance: no deadline, no pool.
type wapcCaller struct {
	mod  wapc.Module
	inst wapc.Instance
}

// NewWAPC loads the waPC echo module (testdata/wapc_echo.wasm).
func NewWAPC(wasm []byte) (Caller, error) {
	ctx := context.Background()
	mod, err := wapcwazero.Engine().New(ctx, wapc.NoOpHostCallHandler, wasm, &wapc.ModuleConfig{})
	if err != nil {
		return nil, fmt.Errorf("compare: waPC module: %w", err)
	}
	inst, err := mod.Instantiate(ctx)
	if err != nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("compare: waPC instance: %w", err)
	}
	return &wapcCaller{mod: mod, inst: inst}, nil
}

func (w *wapcCaller) Call(payload []byte) ([]byte, error) {
	return w.inst.Invoke(context.Background(), "echo", payload)
}

func (w *wapcCaller) Close() {
	ctx := context.Background()
	w.inst.Close(ctx)
	w.mod.Close(ctx)
}

// floor is bare wazero running the same echo.wasm as ours, uninstrumented:
// write the subject and payload into guest memory, CallWithStack on a
// cached function (pycomms_alloc only when the size changes), read a view of the reply. No pool, no deadline, no
// copy: the least any host can do for this guest.
type floor struct {
	rt         wazero.Runtime
	mem        api.Memory
	alloc      api.Function
	handle     api.Function
	stack      []uint64
	rptr, rlen uint32
	ptr        uint32 // the guest buffer for messages of size bytes
	size       int    // -1 until the first call
}

// NewFloor instantiates echoWasm (the pycomms-ABI echo) in a plain wazero
// compiler runtime with a reply import that only records the reply.
func NewFloor(echoWasm []byte) (Caller, error) {
	ctx := context.Background()
	f := &floor{rt: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler()), stack: make([]uint64, 5), size: -1}
	i32 := api.ValueTypeI32
	_, err := f.rt.NewHostModuleBuilder(abi.ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			f.rptr, f.rlen = uint32(s[0]), uint32(s[1])
			s[0] = 0
		}), []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.ImportReply).Instantiate(ctx)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("compare: floor host module: %w", err)
	}
	mod, err := f.rt.Instantiate(ctx, echoWasm)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("compare: floor instance: %w", err)
	}
	f.mem, f.alloc, f.handle = mod.Memory(), mod.ExportedFunction(abi.ExportAlloc), mod.ExportedFunction(abi.ExportHandle)
	if f.alloc == nil || f.handle == nil {
		f.Close()
		return nil, errors.New("compare: floor: echo module lacks pycomms_alloc or pycomms_handle")
	}
	return f, nil
}

func (f *floor) Call(payload []byte) ([]byte, error) {
	ctx := context.Background()
	// The echo's allocator always answers the same address, so like
	// host/internal/plugin's floorNs the floor asks only when the size
	// changes.
	if n := len(echoSubject) + len(payload); n != f.size {
		f.stack[0] = uint64(n)
		if err := f.alloc.CallWithStack(ctx, f.stack); err != nil {
			return nil, err
		}
		f.ptr, f.size = uint32(f.stack[0]), n
	}
	ptr := f.ptr
	f.mem.WriteString(ptr, echoSubject)
	f.mem.Write(ptr+uint32(len(echoSubject)), payload)
	f.stack[0], f.stack[1], f.stack[2], f.stack[3], f.stack[4] = uint64(abi.KindRequest), uint64(ptr), uint64(len(echoSubject)), uint64(len(payload)), 0
	if err := f.handle.CallWithStack(ctx, f.stack); err != nil {
		return nil, err
	}
	if f.stack[0] != 0 {
		return nil, fmt.Errorf("compare: floor: status %d", f.stack[0])
	}
	out, ok := f.mem.Read(f.rptr, f.rlen)
	if !ok {
		return nil, errors.New("compare: floor: reply out of range")
	}
	return out, nil
}

func (f *floor) Close() { f.rt.Close(context.Background()) }

// checkEcho makes one call and checks that the reply is the payload
// upper-cased, so that no contender is timed doing less than the others.
func checkEcho(name string, call func([]byte) ([]byte, error), payload []byte) error {
	out, err := call(payload)
	if err != nil {
		return fmt.Errorf("compare: %s: %w", name, err)
	}
	if !bytes.Equal(out, bytes.ToUpper(payload)) {
		return fmt.Errorf("compare: %s replied %d bytes that are not the payload upper-cased", name, len(out))
	}
	return nil
}
