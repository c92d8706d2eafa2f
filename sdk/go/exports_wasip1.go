//go:build wasip1

package pycomms

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/pycomms/pycomms-host/abi"
)

// Guest exports. The directives need literal names; sdk_directives_test.go
// checks them against the abi package's constants.

// inbuf is the input buffer pycomms_alloc hands out. It is grow-only and
// reused for every message: a fresh allocation per message (kept alive in a
// map until handled) measured 4-7x slower per round trip and grew linear
// memory. Being a global keeps it referenced, so the GC neither frees nor
// (being non-moving) relocates it while the host writes into it.
var inbuf []byte

// cur is the single Msg handed to handlers: an instance handles one
// message at a time, so reusing it saves an allocation per message.
var cur = new(Msg)

//go:wasmexport pycomms_abi_version
func exportABIVersion() int32 { return abi.Version }

//go:wasmexport pycomms_alloc
func exportAlloc(size int32) uint32 {
	if size <= 0 {
		return 0
	}
	if int(size) > len(inbuf) {
		inbuf = make([]byte, growSize(len(inbuf), int(size)))
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inbuf))))
}

// growSize picks the new input buffer size: double the old one (so a
// stream of slowly growing messages reallocates rarely) but never more than
// 1 MiB beyond what is needed, since the memory stays with the instance.
func growSize(old, need int) int {
	const minSize, maxSlack = 4 << 10, 1 << 20
	n := max(old*2, minSize)
	if n < need || n-need > maxSlack {
		n = need
	}
	return n
}

// exportHandle is the per-message hot path. Error texts are built in
// separate functions so that it stays short: Go compiled to Wasm pays for
// every instruction on this path.
//
//go:wasmexport pycomms_handle
func exportHandle(kind int32, ptr uint32, subjectLen, payloadLen, headersLen int32) int32 {
	s, p, total := int(subjectLen), int(payloadLen), int(subjectLen)+int(payloadLen)+int(headersLen)
	if subjectLen < 0 || payloadLen < 0 || headersLen < 0 || total > len(inbuf) ||
		(total > 0 && ptr != uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inbuf))))) {
		// Only the buffer pycomms_alloc returned is Go memory the SDK may
		// read as a message; anything else is a host bug, reported as such.
		return fail(abi.StatusInvalid, badMessageText(ptr, subjectLen, payloadLen, headersLen))
	}
	buf := inbuf[:total:total]
	m := cur
	m.kind = abi.Kind(kind)
	m.subjectRaw = buf[:s:s]
	m.payload = buf[s : s+p : s+p]
	m.rawHeaders = buf[s+p:]
	reply, st, text := reg.dispatch(m)
	rh := m.replyHeaders
	// Drop the handler's data (headers map, subject) and make a Msg kept
	// past its handler read as empty instead of as the next message.
	*m = Msg{}
	if st != abi.StatusOK {
		return fail(st, text)
	}
	if len(rh) > 0 && kind == int32(abi.KindRequest) {
		return replyHook(reply, rh)
	}
	if len(reply) == 0 || kind != int32(abi.KindRequest) {
		// Replies to sends and events are dropped, so they are not sent.
		return int32(abi.StatusOK)
	}
	if len(reply) > math.MaxInt32 {
		return fail(abi.StatusTooLarge, fmt.Sprintf("pycomms: reply of %d bytes is too large", len(reply)))
	}
	if r := hostReply(bytesPtr(reply), int32(len(reply))); r < 0 {
		return fail(replyError(abi.Status(-r), len(reply)))
	}
	return int32(abi.StatusOK)
}

// replyHook is replyWithHeaders once a handler called SetReplyHeader. Only
// SetReplyHeader refers to replyWithHeaders, so a plugin that never sets a
// reply header does not link it, nor import reply_h: it loads on hosts
// older than that import.
var replyHook func(reply []byte, headers map[string]string) int32

// replyWithHeaders sets a reply that has headers (Msg.SetReplyHeader),
// away from the hot path.
func replyWithHeaders(reply []byte, headers map[string]string) int32 {
	h, err := encodeHeaders(abi.ImportReplyH, "", headers)
	if err != nil {
		return fail(abi.StatusInvalid, err.Error())
	}
	if len(reply) > math.MaxInt32 {
		return fail(abi.StatusTooLarge, fmt.Sprintf("pycomms: reply of %d bytes is too large", len(reply)))
	}
	if r := hostReplyH(bytesPtr(reply), int32(len(reply)), bytesPtr(h), int32(len(h))); r < 0 {
		return fail(replyError(abi.Status(-r), len(reply)))
	}
	return int32(abi.StatusOK)
}

// exportHandleBatch takes a batch of sends and events (SPEC section 3.1)
// and dispatches each record as exportHandle would a message, through the
// same Msg. It returns how many records failed; the error text of the last
// failure is what the host logs.
//
//go:wasmexport pycomms_handle_batch
func exportHandleBatch(ptr uint32, n, count int32) int32 {
	if n < 0 || count < 0 || int(n) > len(inbuf) ||
		(n > 0 && ptr != uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inbuf))))) {
		fail(abi.StatusInvalid, badBatchText(ptr, n, count))
		return max(count, 0)
	}
	buf := inbuf[:n:n]
	failed := int32(0)
	for i := range count {
		if len(buf) < abi.BatchRecordHeader {
			fail(abi.StatusInvalid, badRecordText(i, count))
			return failed + count - i
		}
		kind := binary.LittleEndian.Uint32(buf)
		s := uint64(binary.LittleEndian.Uint32(buf[4:]))
		p := uint64(binary.LittleEndian.Uint32(buf[8:]))
		h := uint64(binary.LittleEndian.Uint32(buf[12:]))
		rec := buf[abi.BatchRecordHeader:]
		if s+p+h > uint64(len(rec)) {
			fail(abi.StatusInvalid, badRecordText(i, count))
			return failed + count - i
		}
		end := s + p + h
		m := cur
		m.kind = abi.Kind(kind)
		m.subjectRaw = rec[:s:s]
		m.payload = rec[s : s+p : s+p]
		m.rawHeaders = rec[s+p : end : end]
		_, st, text := reg.dispatch(m)
		*m = Msg{}
		if st != abi.StatusOK {
			failed++
			fail(st, text)
		}
		buf = rec[end:]
	}
	return failed
}

func badBatchText(ptr uint32, n, count int32) string {
	return fmt.Sprintf("pycomms: batch of %d records (%d bytes) at %#x is not within the %d-byte buffer pycomms_alloc returned",
		count, n, ptr, len(inbuf))
}

func badRecordText(i, count int32) string {
	return fmt.Sprintf("pycomms: record %d of a batch of %d runs past the batch's end", i, count)
}

// fail sets text as the error text of the message being handled (ABI: "the
// text set with reply is the error message"; for sends and events the host
// logs it) and returns st for pycomms_handle to return.
func fail(st abi.Status, text string) int32 {
	if text != "" {
		hostReply(strPtr(text), int32(min(len(text), math.MaxInt32)))
	}
	return int32(st)
}

func badMessageText(ptr uint32, subjectLen, payloadLen, headersLen int32) string {
	return fmt.Sprintf("pycomms: message (subject %d, payload %d, headers %d bytes) at %#x is not within the %d-byte buffer pycomms_alloc returned",
		subjectLen, payloadLen, headersLen, ptr, len(inbuf))
}

func replyError(st abi.Status, n int) (abi.Status, string) {
	if st == abi.StatusTooLarge {
		return st, fmt.Sprintf("pycomms: reply of %d bytes is larger than this plugin's max_reply", n)
	}
	return st, fmt.Sprintf("pycomms: reply of %d bytes refused: %s", n, st)
}

func setReplyHook() { replyHook = replyWithHeaders }
