//go:build wasip1

package codec

import (
	"math"
	"unsafe"

	"github.com/pycomms/pycomms-host/abi"
)

// inbuf is what pycomms_alloc hands out: grow-only and reused, and
// referenced by a global so the GC keeps it where the host writes.
var inbuf []byte

//go:wasmexport pycomms_abi_version
func exportABIVersion() int32 { return abi.Version }

//go:wasmexport pycomms_alloc
func exportAlloc(size int32) uint32 {
	if size <= 0 {
		return 0
	}
	if int(size) > len(inbuf) {
		inbuf = make([]byte, max(int(size), 4096))
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inbuf))))
}

//go:wasmexport pycomms_codec_pairs
func exportPairs() int32 {
	if regConvert == nil {
		return fail(abi.StatusInternal, "codec: the plugin called no codec.Register from an init function")
	}
	text, err := PairsText(regPairs)
	if err != nil {
		return fail(abi.StatusInvalid, err.Error())
	}
	b := []byte(text)
	if r := hostReply(ptr(b), int32(len(b))); r < 0 {
		return -r
	}
	return int32(abi.StatusOK)
}

//go:wasmexport pycomms_codec_convert
func exportConvert(p uint32, fromLen, toLen, dataLen int32) int32 {
	total := int(fromLen) + int(toLen) + int(dataLen)
	if fromLen < 0 || toLen < 0 || dataLen < 0 || total > len(inbuf) ||
		(total > 0 && p != uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inbuf))))) {
		// Only the buffer pycomms_alloc returned may be read as input.
		return fail(abi.StatusInvalid, "codec: the host passed a buffer pycomms_alloc did not return")
	}
	if regConvert == nil {
		return fail(abi.StatusInternal, "codec: the plugin called no codec.Register from an init function")
	}
	buf := inbuf[:total:total]
	f, t := int(fromLen), int(fromLen)+int(toLen)
	out, err := regConvert(string(buf[:f]), string(buf[f:t]), buf[t:])
	if err != nil {
		return fail(StatusOf(err), err.Error())
	}
	if len(out) > math.MaxInt32 {
		return fail(abi.StatusTooLarge, "codec: output over 2 GiB")
	}
	if r := hostReply(ptr(out), int32(len(out))); r < 0 {
		// -too_large: over the plugin's limits.max_reply.
		return -r
	}
	return int32(abi.StatusOK)
}

// fail sets msg as the error text and returns st.
func fail(st abi.Status, msg string) int32 {
	b := []byte(msg)
	hostReply(ptr(b), int32(len(b)))
	return int32(st)
}

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

//go:wasmimport pycomms:host/v1 reply
//go:noescape
func hostReply(ptr unsafe.Pointer, n int32) int32

//go:wasmimport pycomms:host/v1 log
//go:noescape
func hostLog(level int32, ptr unsafe.Pointer, n int32) int32

//go:wasmimport pycomms:host/v1 config_get
//go:noescape
func hostConfigGet(keyPtr unsafe.Pointer, keyLen int32, ptr unsafe.Pointer, capacity int32) int32

// Log writes a line to the host log at level (needs the log grant).
func Log(level abi.Level, msg string) {
	b := []byte(msg)
	hostLog(int32(level), ptr(b), int32(len(b)))
}

// ConfigString returns the string form of one value of the plugin's
// config, found by its key path with "." between levels (a list is its
// items joined by ","), and whether it exists. Needs no grant.
func ConfigString(key string) (string, bool) {
	k := []byte(key)
	n := hostConfigGet(ptr(k), int32(len(k)), nil, 0)
	if n < 0 {
		return "", false
	}
	if n == 0 {
		return "", true
	}
	buf := make([]byte, n)
	if hostConfigGet(ptr(k), int32(len(k)), ptr(buf), n) != n {
		return "", false
	}
	return string(buf), true
}
