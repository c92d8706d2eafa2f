// Package pycomms is the Go guest SDK for pycomms plugins: it implements the
// plugin side of ABI v1 (see abi/SPEC.md in the pycomms-host repository) so
// that a handler plugin is a few lines of ordinary Go.
//
// A plugin is a main package, built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// Importing this package provides the exports the host looks for
// (pycomms_abi_version, pycomms_alloc, pycomms_handle, and
// pycomms_handle_batch for queued sends and events); the plugin only
// registers its handlers:
//
//	package main
//
//	import pycomms "github.com/pycomms/pycomms-host/sdk/go"
//
//	func init() {
//		pycomms.Handle("hello.greet", func(m *pycomms.Msg) ([]byte, error) {
//			return append([]byte("hello, "), m.Payload()...), nil
//		})
//	}
//
//	func main() {}
//
// # Register in init, not in main
//
// With -buildmode=c-shared the host starts the Go runtime through the
// exported _initialize function, which runs every package's init functions
// but never calls main.main. Handlers registered in main are therefore never
// seen: register them in init (main must exist, and is best left empty).
// Host functions (Publish, Call, Log, ...) work only while a message is
// being handled; do not call them from init.
//
// # Messages and memory
//
// The host copies each message into one input buffer that the SDK reuses
// for every message, and an instance handles one message at a time. A *Msg
// and the slices it returns are therefore valid only until the handler
// returns: copy (bytes.Clone) whatever must outlive it. Replies are handed to
// the host straight from the returned slice, which the host copies.
//
// # Errors and statuses
//
// A handler error becomes status handler_error with err.Error() as the text
// the caller sees, unless an *Error anywhere in its chain carries another
// status: an error returned by Call (say, timeout) can be returned as is,
// or wrapped with %w, and the caller gets the same status. Errorf builds
// such errors directly. Host functions return *Error values; a refused
// capability reads `pycomms: capability "publish" not granted to this plugin`.
// A panic is not recovered: it aborts the instance (status trap), which the
// host replaces, and the panic text reaches the host log through stderr.
//
// The exported API that touches the host exists only when building for
// GOOS=wasip1; the rest (errors, subject rules) also builds on the host so
// that it can be unit-tested there.
package pycomms
