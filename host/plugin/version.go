package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Version is one loaded, immutable version of a plugin: its compiled module
// and a pool of instances, each owned by one worker goroutine. Messages
// reach the workers through a bounded queue.
type Version struct {
	spec    Spec
	hash    string
	engine  *Engine
	host    Host
	rt      wazero.Runtime
	module  wazero.CompiledModule
	loaded  time.Time
	grants  [8]bool // indexed by capability bit
	cfgCBOR []byte
	cfgFlat map[string]string

	jobs    chan *job
	workers []*worker
	wg      sync.WaitGroup

	refs     atomic.Int64
	closing  atomic.Bool
	drained  chan struct{}
	drainOne sync.Once
	stopDog  chan struct{}

	restarts atomic.Uint64
	calls    atomic.Uint64
	errors   atomic.Uint64
	busy     atomic.Int64
}

// Hash is the sha256 of the module bytes, hex encoded.
func (v *Version) Hash() string { return v.hash }

// Restarts counts instances replaced after a trap, timeout or ABI violation.
func (v *Version) Restarts() uint64 { return v.restarts.Load() }

// Busy is the number of instances handling a message right now.
func (v *Version) Busy() int { return int(v.busy.Load()) }

// Spec returns the spec this version was loaded from (without the bytes).
func (v *Version) Spec() Spec { s := v.spec; s.Wasm = nil; return s }

// LoadedAt is when the version finished loading.
func (v *Version) LoadedAt() time.Time { return v.loaded }

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
	spec.defaults()
	sum := sha256.Sum256(spec.Wasm)
	v := &Version{
		spec:    spec,
		hash:    hex.EncodeToString(sum[:]),
		engine:  e,
		host:    host,
		jobs:    make(chan *job, spec.Queue),
		drained: make(chan struct{}),
		stopDog: make(chan struct{}),
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

	pages := uint32(min(spec.Memory/65536, 65536))
	if pages == 0 {
		pages = 1
	}
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pages).
		WithCompilationCache(e.cache)
	v.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	ok := false
	defer func() {
		if !ok {
			v.rt.Close(context.Background())
		}
	}()

	if len(spec.Wasm) < 8 || string(spec.Wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module (no \\0asm header)")
	}
	mod, err := v.rt.CompileModule(ctx, spec.Wasm)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	v.module = mod
	if err := checkModule(mod); err != nil {
		return nil, err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, v.rt); err != nil {
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	if err := v.instantiateHostModules(ctx); err != nil {
		return nil, err
	}

	v.workers = make([]*worker, spec.Instances)
	for i := range v.workers {
		w := &worker{v: v, slot: i}
		if err := w.instantiate(ctx); err != nil {
			for _, o := range v.workers[:i] {
				o.closeInstance()
			}
			return nil, err
		}
		v.workers[i] = w
	}
	v.loaded = time.Now()
	for _, w := range v.workers {
		v.wg.Add(1)
		go w.run()
	}
	go v.watchdog()
	ok = true
	return v, nil
}

// checkModule verifies exports and imports against ABI v1 so that a plugin
// that cannot work is refused at load, with every problem named.
func checkModule(mod wazero.CompiledModule) error {
	var problems []string
	exports := mod.ExportedFunctions()
	want := []struct {
		name    string
		params  []api.ValueType
		results []api.ValueType
	}{
		{abi.ExportABIVersion, nil, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportAlloc, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportHandle, slices.Repeat([]api.ValueType{api.ValueTypeI32}, 5), []api.ValueType{api.ValueTypeI32}},
	}
	for _, w := range want {
		def, ok := exports[w.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %q", w.name))
			continue
		}
		if !slices.Equal(def.ParamTypes(), w.params) || !slices.Equal(def.ResultTypes(), w.results) {
			problems = append(problems, fmt.Sprintf("export %q has signature %s, want %s",
				w.name, sig(def.ParamTypes(), def.ResultTypes()), sig(w.params, w.results)))
		}
	}
	if _, ok := mod.ExportedMemories()[abi.ExportMemory]; !ok {
		problems = append(problems, fmt.Sprintf("missing export %q (memory)", abi.ExportMemory))
	}
	for _, def := range mod.ImportedFunctions() {
		modName, name, _ := def.Import()
		switch modName {
		case wasi_snapshot_preview1.ModuleName:
		case abi.ImportModule:
			hf, ok := hostFuncTypes[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports unknown host function %s.%s", modName, name))
				continue
			}
			if !slices.Equal(def.ParamTypes(), hf.params) || !slices.Equal(def.ResultTypes(), hf.results) {
				problems = append(problems, fmt.Sprintf("import %s.%s has signature %s, want %s", modName, name,
					sig(def.ParamTypes(), def.ResultTypes()), sig(hf.params, hf.results)))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s from unknown module %q (only %q and %q exist)",
				modName, name, modName, abi.ImportModule, wasi_snapshot_preview1.ModuleName))
		}
	}
	for _, def := range mod.ImportedMemories() {
		modName, name, _ := def.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s: a plugin must define its own memory", modName, name))
	}
	if len(problems) > 0 {
		return fmt.Errorf("not a pycomms ABI v%d plugin: %s", abi.Version, strings.Join(problems, "; "))
	}
	return nil
}

func sig(params, results []api.ValueType) string {
	n := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ",")
	}
	return "(" + n(params) + ")->(" + n(results) + ")"
}

// acquire takes a reference that keeps the version from draining; it fails
// once Close has begun, and the caller then retries on the current version.
func (v *Version) acquire() bool {
	v.refs.Add(1)
	if v.closing.Load() {
		v.release()
		return false
	}
	return true
}

func (v *Version) release() {
	if v.refs.Add(-1) == 0 && v.closing.Load() {
		v.drainOne.Do(func() { close(v.drained) })
	}
}

// Close stops accepting messages, lets every accepted message finish, then
// stops the workers and frees the runtime. It is what "drain the old pool"
// means on a swap. Safe to call more than once.
func (v *Version) Close() {
	if v.closing.Swap(true) {
		<-v.drained
		v.wg.Wait()
		return
	}
	if v.refs.Load() == 0 {
		v.drainOne.Do(func() { close(v.drained) })
	}
	<-v.drained
	close(v.jobs)
	v.wg.Wait()
	close(v.stopDog)
	v.rt.Close(context.Background())
}

// Request queues a request and waits for its reply, ctx or m.Deadline.
func (v *Version) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	if !v.acquire() {
		return nil, errRetired
	}
	j := getJob(m)
	select {
	case v.jobs <- j:
	default:
		v.release()
		putJob(j)
		return nil, message.Errorf(abi.StatusBusy, "plugin %q is busy: %d messages queued", v.spec.Name, v.spec.Queue)
	}
	select {
	case <-j.done:
		reply, err := j.reply, j.err
		putJob(j)
		return reply, err
	case <-ctx.Done():
		// The worker still owns j and will complete it into its buffered
		// channel; j is simply not recycled.
		return nil, message.Errorf(abi.StatusTimeout, "%s: %s: %v", v.spec.Name, m.Subject, ctx.Err())
	}
}

// Post queues a send or event without waiting for it to be handled.
func (v *Version) Post(m *message.Message) error {
	if !v.acquire() {
		return errRetired
	}
	j := &job{m: m, post: true}
	select {
	case v.jobs <- j:
		return nil
	default:
		v.release()
		return message.Errorf(abi.StatusBusy, "plugin %q is busy: %d messages queued", v.spec.Name, v.spec.Queue)
	}
}

var errRetired = errors.New("plugin version retired")

func (v *Version) watchdog() {
	t := time.NewTicker(v.engine.watchdogTick(v.spec.Timeout))
	defer t.Stop()
	for {
		select {
		case <-v.stopDog:
			return
		case <-t.C:
			if v.busy.Load() == 0 {
				continue
			}
			now := time.Now().UnixNano()
			for _, w := range v.workers {
				w.checkDeadline(now)
			}
		}
	}
}

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
