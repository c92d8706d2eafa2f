// Package abi is the single source of truth for the contract between a
// pycomms host and its Wasm plugins (ABI v1): the import module name, the
// names of every export and import, the signature and grant of every
// import (Imports), the status codes, the message kinds, the capabilities a
// config may grant, the subject rules (subject.go) and the host-to-host
// protocol version range. SPEC.md in this directory is the
// normative, language-neutral description; a test keeps the two in step.
//
// Both the host (host/internal/plugin) and the Go guest SDK (sdk/go) import this
// package, so a renamed export or a new code changes in exactly one place.
package abi

import (
	"fmt"
	"slices"
	"strings"
)

// Version is the ABI version this package describes.
const Version = 1

// ProtocolMinVersion and ProtocolMaxVersion bound the host-to-host protocol
// versions (PROTOCOL.md section 1) this build speaks; host/internal/wire negotiates
// within them. They are here, beside the plugin ABI's range, because they are
// the other half of what a build promises to be compatible with, and a CLI or
// embedder reports both without importing the wire package.
const (
	ProtocolMinVersion = 1
	ProtocolMaxVersion = 2
)

// MinVersion and MaxVersion bound the plugin ABI versions a host built from
// this package accepts. A plugin reports its version through ExportABIVersion;
// the host refuses any version outside [MinVersion, MaxVersion] and names both.
const (
	MinVersion = 1
	MaxVersion = 1
)

// ImportModule is the Wasm import module under which the host provides every
// pycomms host function. It carries owner and major version so that a
// missing import is diagnosable at a glance.
const ImportModule = "pycomms:host/v1"

// Guest exports. A plugin must export ExportABIVersion, ExportAlloc and
// ExportHandle, and a linear memory named ExportMemory.
const (
	// ExportABIVersion: () -> i32. Returns the ABI version the plugin was
	// built against. Called once, after _initialize, when a version loads.
	ExportABIVersion = "pycomms_abi_version"
	// ExportAlloc: (size i32) -> i32. Returns a pointer to at least size
	// writable bytes where the host copies the next message. The buffer
	// belongs to the guest; the host writes it once, before ExportHandle.
	// 0 for a non-zero size means the guest cannot allocate it: the message
	// fails with StatusTooLarge and the instance is kept.
	ExportAlloc = "pycomms_alloc"
	// ExportHandle: (kind, ptr, subject_len, payload_len, headers_len i32) -> i32.
	// Delivers one message laid out at ptr as subject, payload, headers.
	// Returns a Status.
	ExportHandle = "pycomms_handle"
	// ExportMemory is the plugin's linear memory.
	ExportMemory = "memory"
	// ExportInitialize is the WASI reactor initializer, called once per
	// instance before anything else when the plugin exports it.
	ExportInitialize = "_initialize"
	// ExportHandleBatch: (ptr, len, count i32) -> i32. Optional. When a
	// plugin exports it, the sends and events queued for it arrive in
	// batches: count records of BatchRecordHeader bytes each followed by
	// its subject, payload and headers, len bytes in all at ptr (see
	// SPEC.md section 3). Returns how many of the records failed (0 to
	// count); any other value breaks the ABI.
	ExportHandleBatch = "pycomms_handle_batch"
)

// Batch limits: what one ExportHandleBatch call carries at most. A message
// whose record alone exceeds BatchMaxBytes is delivered through
// ExportHandle instead.
const (
	// BatchRecordHeader is the size of a record's fixed part: kind,
	// subject_len, payload_len, headers_len, each a little-endian u32.
	BatchRecordHeader = 16
	// BatchMaxCount is the most records in one batch.
	BatchMaxCount = 256
	// BatchMaxBytes is the most bytes (len) of one batch.
	BatchMaxBytes = 64 << 10
)

// Host imports, all in ImportModule. Every function that returns i32 returns
// a non-negative value on success and the negated Status on failure.
const (
	// ImportReply: (ptr, len i32) -> i32. Sets the reply to the message being
	// handled (or, when pycomms_handle returns StatusHandlerError, the error
	// message). The host copies the bytes before returning. No grant needed.
	ImportReply = "reply"
	// ImportLog: (level, ptr, len i32) -> i32. Writes a log line at a Level.
	// Grant: log.
	ImportLog = "log"
	// ImportPublish: (topic_ptr, topic_len, data_ptr, data_len i32) -> i32.
	// Publishes an event. Grant: publish.
	ImportPublish = "publish"
	// ImportSend: (subject_ptr, subject_len, data_ptr, data_len i32) -> i32.
	// Sends a one-way message to a service. Grant: send.
	ImportSend = "send"
	// ImportCall: (subject_ptr, subject_len, data_ptr, data_len, timeout_ms i32) -> i32.
	// Calls a service and waits for its reply. Returns the reply length;
	// the reply (or the error message when negative) is read with
	// ImportResult. Grant: call.
	ImportCall = "call"
	// ImportResult: (ptr, cap i32) -> i32. Copies the result of the last
	// ImportCall (reply or error text) into ptr when it fits in cap, and
	// returns its full length either way. No grant needed.
	ImportResult = "result"
	// ImportConfig: (ptr, cap i32) -> i32. Copies the plugin's config as a
	// CBOR map into ptr when it fits in cap and returns its full length.
	// No grant needed.
	ImportConfig = "config"
	// ImportConfigGet: (key_ptr, key_len, ptr, cap i32) -> i32. Copies the
	// string form of one config value (dotted key path) into ptr when it fits
	// and returns its full length, or -StatusNotFound. No grant needed.
	ImportConfigGet = "config_get"
	// ImportHeader: (key_ptr, key_len, ptr, cap i32) -> i32. Copies the value
	// of one header of the message being handled, as ImportConfigGet does.
	// No grant needed.
	ImportHeader = "header"
	// ImportPublishH: (topic_ptr, topic_len, data_ptr, data_len,
	// headers_ptr, headers_len i32) -> i32. ImportPublish with headers: a
	// CBOR Headers map at headers_ptr (headers_len 0: none), checked by
	// the host (SPEC.md section 10). Grant: publish.
	ImportPublishH = "publish_h"
	// ImportSendH: ImportSend with headers, as ImportPublishH. Grant: send.
	ImportSendH = "send_h"
	// ImportCallH: (subject_ptr, subject_len, data_ptr, data_len,
	// headers_ptr, headers_len, timeout_ms i32) -> i32. ImportCall with
	// headers, as ImportPublishH; the reply's headers are read with
	// ImportResultHeader and ImportResultHeaders. Grant: call.
	ImportCallH = "call_h"
	// ImportResultHeader: (key_ptr, key_len, ptr, cap i32) -> i32. Copies
	// one header of the last call's reply, as ImportHeader does for the
	// message being handled. No grant needed.
	ImportResultHeader = "result_header"
	// ImportResultHeaders: (ptr, cap i32) -> i32. Copies every header of
	// the last call's reply as a CBOR Headers map when it fits in cap and
	// returns its full length (0: none). No grant needed.
	ImportResultHeaders = "result_headers"
	// ImportReplyH: (ptr, len, headers_ptr, headers_len i32) -> i32.
	// ImportReply that also sets the reply's headers (a CBOR Headers map,
	// checked as for ImportPublishH); ImportReply clears them. No grant
	// needed.
	ImportReplyH = "reply_h"
)

// Kind says how a message was sent and whether a reply is expected.
type Kind int32

// Message kinds passed as the first argument of ExportHandle.
const (
	KindRequest Kind = 1 // request/reply: the caller waits for ImportReply
	KindSend    Kind = 2 // one-way send to a service: any reply is dropped
	KindEvent   Kind = 3 // pub/sub event on a topic: any reply is dropped
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindSend:
		return "send"
	case KindEvent:
		return "event"
	}
	return fmt.Sprintf("kind(%d)", int32(k))
}

// Status is the result of a handler and of every host function, and the
// error class the host reports to callers (control API, CLI exit codes).
// Host functions return it negated; ExportHandle returns it as is.
type Status int32

// Status codes. Their numbers are part of ABI v1 and never change.
const (
	StatusOK           Status = 0  // success
	StatusDenied       Status = 1  // the capability is not granted to this plugin
	StatusInvalid      Status = 2  // bad argument: bad subject, bad headers, unknown log level, call chain too deep, call loop
	StatusTooLarge     Status = 3  // a size limit was exceeded (reply, payload)
	StatusNoHandler    Status = 4  // nobody serves the subject
	StatusTimeout      Status = 5  // the deadline passed
	StatusBusy         Status = 6  // a bounded queue is full
	StatusHandlerError Status = 7  // the handler returned an application error
	StatusTrap         Status = 8  // the plugin trapped, was killed or broke the ABI (out-of-bounds pointer, unknown status)
	StatusNoMethod     Status = 9  // the plugin serves the service but not this method
	StatusNotFound     Status = 10 // a config key or header does not exist
	StatusUnreachable  Status = 11 // the node that serves the subject cannot be reached
	StatusInternal     Status = 12 // a host-side failure
	// StatusUnsupportedType: a message's content-type (or
	// content-encoding) is not one the receiving endpoint accepts and no
	// codec plugin converts it (SPEC.md section 14).
	StatusUnsupportedType Status = 13
)

// MaxStatus is the highest status of ABI v1: a status above it (or below
// StatusOK) returned by a plugin breaks the ABI.
const MaxStatus = StatusUnsupportedType

var statusNames = map[Status]string{
	StatusOK:           "ok",
	StatusDenied:       "denied",
	StatusInvalid:      "invalid",
	StatusTooLarge:     "too_large",
	StatusNoHandler:    "no_handler",
	StatusTimeout:      "timeout",
	StatusBusy:         "busy",
	StatusHandlerError: "handler_error",
	StatusTrap:         "trap",
	StatusNoMethod:     "no_method",
	StatusNotFound:     "not_found",
	StatusUnreachable:  "unreachable",
	StatusInternal:     "internal",

	StatusUnsupportedType: "unsupported_type",
}

// String returns the stable snake_case name of a status, as used in SPEC.md
// and in the control API's JSON errors.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", int32(s))
}

// Statuses returns every defined status in numeric order.
func Statuses() []Status {
	out := make([]Status, 0, len(statusNames))
	for s := StatusOK; s <= MaxStatus; s++ {
		out = append(out, s)
	}
	return out
}

// ParseStatus returns the status with the given String name.
func ParseStatus(name string) (Status, bool) {
	for s, n := range statusNames {
		if n == name {
			return s, true
		}
	}
	return 0, false
}

// Level is a log level for ImportLog.
type Level int32

// Log levels.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// Capability names a group of host functions a config may grant.
type Capability string

// Capabilities. ImportReply, ImportResult, ImportConfig, ImportConfigGet and
// ImportHeader need no grant.
const (
	CapLog     Capability = "log"
	CapPublish Capability = "publish"
	CapCall    Capability = "call"
	CapSend    Capability = "send"
)

// Capabilities lists every capability a config may grant.
func Capabilities() []Capability {
	return []Capability{CapLog, CapPublish, CapCall, CapSend}
}

// DefaultGrants are granted when a plugin's config lists none.
func DefaultGrants() []Capability { return []Capability{CapLog} }

// Import describes one host import of ImportModule: its name, its
// parameters and the capability it needs. Every parameter is an i32 and
// every import returns one i32 (SPEC.md section 4). The host builds its
// import module from Imports, so a new import is declared here once.
type Import struct {
	Name string
	// Params names the parameters in order, as SPEC.md writes them.
	Params []string
	// Capability is the grant the import needs, "" for none.
	Capability Capability
}

// Signature returns the import's signature as SPEC.md writes it, for
// example "(ptr i32, len i32) -> i32".
func (im Import) Signature() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, p := range im.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p + " i32")
	}
	b.WriteString(") -> i32")
	return b.String()
}

// imports is every host import, in SPEC.md order. It is unexported so that
// no importer can change the ABI at run time; Imports hands out copies.
var imports = [...]Import{
	{ImportReply, []string{"ptr", "len"}, ""},
	{ImportLog, []string{"level", "ptr", "len"}, CapLog},
	{ImportPublish, []string{"topic_ptr", "topic_len", "data_ptr", "data_len"}, CapPublish},
	{ImportSend, []string{"subject_ptr", "subject_len", "data_ptr", "data_len"}, CapSend},
	{ImportCall, []string{"subject_ptr", "subject_len", "data_ptr", "data_len", "timeout_ms"}, CapCall},
	{ImportResult, []string{"ptr", "cap"}, ""},
	{ImportConfig, []string{"ptr", "cap"}, ""},
	{ImportConfigGet, []string{"key_ptr", "key_len", "ptr", "cap"}, ""},
	{ImportHeader, []string{"key_ptr", "key_len", "ptr", "cap"}, ""},
	{ImportPublishH, []string{"topic_ptr", "topic_len", "data_ptr", "data_len", "headers_ptr", "headers_len"}, CapPublish},
	{ImportSendH, []string{"subject_ptr", "subject_len", "data_ptr", "data_len", "headers_ptr", "headers_len"}, CapSend},
	{ImportCallH, []string{"subject_ptr", "subject_len", "data_ptr", "data_len", "headers_ptr", "headers_len", "timeout_ms"}, CapCall},
	{ImportResultHeader, []string{"key_ptr", "key_len", "ptr", "cap"}, ""},
	{ImportResultHeaders, []string{"ptr", "cap"}, ""},
	{ImportReplyH, []string{"ptr", "len", "headers_ptr", "headers_len"}, ""},
}

// Imports returns every host import in ImportModule, in SPEC.md order. The
// result is a fresh copy the caller may keep or change.
func Imports() []Import {
	out := make([]Import, len(imports))
	for i, im := range imports {
		im.Params = slices.Clone(im.Params)
		out[i] = im
	}
	return out
}

// ImportCapability returns the capability the host import name needs ("" for
// none) and whether name is a host import at all.
func ImportCapability(name string) (Capability, bool) {
	for _, im := range imports {
		if im.Name == name {
			return im.Capability, true
		}
	}
	return "", false
}

// Limits of ABI v1 that do not depend on configuration.
const (
	// MaxSubjectLen is the longest subject or topic, in bytes.
	MaxSubjectLen = 1024
	// MaxHeadersLen is the largest encoded headers map, in bytes.
	MaxHeadersLen = 64 << 10
	// MaxHeaders is the most headers a plugin may put on one message it
	// sends or replies with (SPEC.md section 10).
	MaxHeaders = 256
	// ReservedHeaderPrefix starts the names of the headers the host sets
	// itself (HeaderOrigin, HeaderSeq); a handler may not set them.
	ReservedHeaderPrefix = "pycomms-"
)

// Headers is the CBOR type of the headers region of a message: a map of
// text strings to text strings, encoded with definite lengths. An empty
// headers map is sent as zero bytes (headers_len = 0), not as an empty map.
type Headers map[string]string
