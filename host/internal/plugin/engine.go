package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/config"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/tetratelabs/wazero"
)

// Host is what plugins reach through their granted host functions: the
// router of the node they run in.
type Host interface {
	Call(ctx context.Context, m *message.Message) ([]byte, error)
	Send(ctx context.Context, m *message.Message) error
	Publish(ctx context.Context, m *message.Message) (int, error)
}

// EngineOptions configures an Engine.
type EngineOptions struct {
	// CacheDir holds compiled modules across restarts; "" keeps them in
	// memory only.
	CacheDir string
	// Logger receives runtime logs and plugin output. Default slog.Default().
	Logger *slog.Logger
	// WatchdogTick bounds how late a per-message deadline is enforced.
	// Default: a twentieth of the plugin's timeout, within [1ms, 50ms].
	WatchdogTick time.Duration
}

// Engine compiles and runs plugin versions. It owns the compilation cache
// shared by every version, so a module compiled once (in this process or,
// with CacheDir, in an earlier one) is not compiled again.
type Engine struct {
	cache  wazero.CompilationCache
	logger *slog.Logger
	tick   time.Duration
}

// NewEngine returns an Engine; Close releases its cache.
func NewEngine(opts EngineOptions) (*Engine, error) {
	e := &Engine{logger: opts.Logger, tick: opts.WatchdogTick}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("create cache dir: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("open compilation cache %s: %w", opts.CacheDir, err)
		}
		e.cache = c
	} else {
		e.cache = wazero.NewCompilationCache()
	}
	return e, nil
}

// Close releases the compilation cache. Versions must be closed first.
func (e *Engine) Close() error {
	return e.cache.Close(context.Background())
}

// Spec describes one plugin version to load. A field left zero takes the
// default of its config key (config.DefaultInstances and the others,
// documented in host/config/KEYS.md).
type Spec struct {
	Name      string // plugin name, unique in the node
	Wasm      []byte
	Instances int    // pool size
	Queue     int    // waiting messages before "busy"
	Memory    uint64 // bytes of linear memory per instance
	Timeout   time.Duration
	MaxReply  uint64
	MaxModule uint64 // largest module in bytes
	Grants    []abi.Capability
	Config    map[string]any
}

func (s *Spec) defaults() {
	if s.Instances <= 0 {
		s.Instances = config.DefaultInstances
	}
	if s.Queue <= 0 {
		s.Queue = config.DefaultQueue
	}
	if s.Memory == 0 {
		s.Memory = config.DefaultMemory
	}
	if s.Timeout <= 0 {
		s.Timeout = config.DefaultTimeout
	}
	if s.MaxReply == 0 {
		s.MaxReply = config.DefaultMaxReply
	}
	if s.MaxModule == 0 {
		s.MaxModule = config.DefaultMaxModule
	}
	if s.Grants == nil {
		s.Grants = abi.DefaultGrants()
	}
}

func (e *Engine) watchdogTick(timeout time.Duration) time.Duration {
	if e.tick > 0 {
		return e.tick
	}
	return min(max(timeout/20, time.Millisecond), 50*time.Millisecond)
}
