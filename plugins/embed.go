// Package plugins holds pycomms-host's first-party plugins, one directory
// each with its source and build recipe, and embeds their committed Wasm
// builds so that a config can load them by name (path: builtin:echo)
// without any file on disk.
//
// The .wasm files are committed build outputs. Rebuild them with
//
//	go generate ./plugins/...
//
// and commit the result; a test fails when a committed file is stale for
// the Go version that built it.
package plugins

import (
	_ "embed"
	"slices"
)

//go:generate go run ./mkwasm.go echo
//go:generate go run ./mkwasm.go linejson
//go:generate go run ./mkwasm.go redis

//go:embed echo/echo.wasm
var echoWasm []byte

// linejsonWasm is the linejson transport (kind: transport).
//
//go:embed linejson/linejson.wasm
var linejsonWasm []byte

// redisWasm is the redis transport (kind: transport).
//
//go:embed redis/redis.wasm
var redisWasm []byte

// builtins maps a builtin plugin name to its embedded Wasm module. Plugins
// kept in other files of this package add themselves with registerBuiltin
// from an init function.
var builtins = map[string][]byte{}

func init() {
	registerBuiltin("echo", echoWasm)
	registerBuiltin("linejson", linejsonWasm)
	registerBuiltin("redis", redisWasm)
}

// registerBuiltin makes wasm loadable as builtin:name. It panics on a
// duplicate name, which could only be a programming error in this package.
func registerBuiltin(name string, wasm []byte) {
	if _, dup := builtins[name]; dup {
		panic("plugins: builtin " + name + " registered twice")
	}
	builtins[name] = wasm
}

// Builtin returns the Wasm module of the builtin plugin name (as in
// "builtin:echo", without the prefix) and whether there is one. The bytes
// are shared and must not be modified.
func Builtin(name string) ([]byte, bool) {
	b, ok := builtins[name]
	return b, ok
}

// BuiltinNames returns the names of all builtin plugins, sorted.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtins))
	for name := range builtins {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
