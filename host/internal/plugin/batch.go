package plugin

import (
	"context"
	"encoding/binary"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// A batch is the sends and events a delivering goroutine found queued for
// a plugin that exports abi.ExportHandleBatch, encoded as SPEC section
// 3.1's records. It is built in Go memory and copied into the guest in one
// piece, after pycomms_alloc said where: the size must be known first.
type batch struct {
	msgs []*message.Message
	recs []byte
	hdr  []byte // scratch for one message's encoded headers
	// due is the earliest deadline of the batch's messages (nanotime);
	// hops the most hops any of them made.
	due  int64
	hops int
}

// add encodes m as the next record, unless that would take the batch past
// abi.BatchMaxBytes; a record that alone is larger is never added (it goes
// through pycomms_handle).
func (b *batch) add(v *Version, m *message.Message) bool {
	b.hdr = b.hdr[:0]
	if len(m.Headers) > 0 {
		b.hdr, _ = headerEnc.Marshal(m.Headers) // map[string]string always encodes
	}
	n := abi.BatchRecordHeader + len(m.Subject) + len(m.Payload) + len(b.hdr)
	if len(b.recs)+n > abi.BatchMaxBytes || len(b.msgs) == abi.BatchMaxCount {
		return false
	}
	b.recs = binary.LittleEndian.AppendUint32(b.recs, uint32(m.Kind))
	b.recs = binary.LittleEndian.AppendUint32(b.recs, uint32(len(m.Subject)))
	b.recs = binary.LittleEndian.AppendUint32(b.recs, uint32(len(m.Payload)))
	b.recs = binary.LittleEndian.AppendUint32(b.recs, uint32(len(b.hdr)))
	b.recs = append(b.recs, m.Subject...)
	b.recs = append(b.recs, m.Payload...)
	b.recs = append(b.recs, b.hdr...)
	// Events carry no sender deadline: their deadline is the plugin's
	// timeout from now, the same for the whole batch, read once.
	if len(b.msgs) == 0 || !m.Deadline.IsZero() {
		b.due = min(b.due, v.deadline(m))
	}
	b.hops = max(b.hops, m.Hops)
	b.msgs = append(b.msgs, m)
	return true
}

func (b *batch) reset() {
	clear(b.msgs)
	b.msgs, b.recs = b.msgs[:0], b.recs[:0]
	b.due, b.hops = 1<<63-1, 0
}

// deliverBatches is deliverPosts for a plugin that takes batches: it waits
// for a message and takes whatever else is queued with it, up to a batch's
// count, and hands it to one instance in one call; what does not fit the
// batch's bytes goes in the next. A message too large for any batch goes
// through pycomms_handle.
func (v *Version) deliverBatches() {
	defer v.wg.Done()
	b := &batch{}
	var taken []*message.Message
	for {
		clear(taken)
		var ok bool
		if taken, ok = v.posts.take(taken[:0], abi.BatchMaxCount); !ok {
			return
		}
		b.reset()
		for _, m := range taken {
			if b.add(v, m) {
				continue
			}
			if len(b.msgs) > 0 {
				v.deliverBatch(b)
				b.reset()
				if b.add(v, m) {
					continue
				}
			}
			v.deliverOne(m)
		}
		if len(b.msgs) > 0 {
			v.deliverBatch(b)
		}
	}
}

// deliverBatch runs b on an instance and releases its messages' queue
// references.
func (v *Version) deliverBatch(b *batch) {
	n := len(b.msgs)
	defer v.releaseN(n)
	v.calls.Add(uint64(n))
	v.batches.Add(1)
	w, err := v.checkout(context.Background(), b.msgs[0], b.due)
	if err != nil {
		v.errors.Add(uint64(n))
		v.engine.logger.Warn("plugin failed to handle a batch", "plugin", v.spec.Name, "messages", n, "err", err)
		return
	}
	failed, text, err, broken := w.invokeBatch(b)
	if err != nil {
		failed = n
		v.engine.logger.Warn("plugin failed to handle a batch", "plugin", v.spec.Name, "messages", n, "err", err)
	} else if failed > 0 {
		v.engine.logger.Warn("plugin failed to handle messages of a batch", "plugin", v.spec.Name,
			"failed", failed, "messages", n, "last_error", text)
	}
	v.errors.Add(uint64(failed))
	if broken {
		v.replace(w, err)
	}
	if w.mod != nil {
		v.put(w)
	}
}

// batchSubject names a batch where errors name a message's subject.
const batchSubject = "a batch of sends and events"

// invokeBatch delivers b to the guest through pycomms_handle_batch. It
// returns how many records the guest says failed and the text it last set
// with reply; err (with broken when the instance must go) when the whole
// batch failed.
func (w *instance) invokeBatch(b *batch) (failed int, text string, err error, broken bool) {
	// The batch stands for "the message being handled" (SPEC 3.1): no
	// headers, the deepest hop count, the earliest deadline.
	w.batchMsg = message.Message{Kind: abi.KindEvent, Subject: batchSubject, Hops: b.hops}
	w.msg, w.due = &w.batchMsg, b.due
	defer w.clear()
	w.growFailed = false
	defer func() {
		w.reply, w.tooLarge, w.denied, w.callErr = w.reply[:0], 0, "", ""
		w.replyHdr, w.callHdr = nil, nil
	}()

	m := &w.batchMsg
	total := uint64(len(b.recs))
	w.stack[0] = total
	if cerr := w.alloc.CallWithStack(w.ctx, w.stack[:1]); cerr != nil {
		limit := uint64(memoryPages(w.v.spec.Memory)) * 65536
		return 0, "", w.allocFailure(m, cerr, total, limit), true
	}
	ptr := uint32(w.stack[0])
	if ptr == 0 {
		return 0, "", message.Errorf(abi.StatusTooLarge, "plugin %q: batch of %d messages (%d bytes) does not fit in the plugin's memory: %s(%d) could not allocate it (memory %d of limits.memory %d bytes)",
			w.v.spec.Name, len(b.msgs), total, abi.ExportAlloc, total, w.mem.Size(), w.v.spec.Memory), false
	}
	if !w.mem.Write(ptr, b.recs) {
		return 0, "", message.Errorf(abi.StatusTrap, "plugin %q: ABI violation: %s(%d) returned out-of-bounds pointer %#x (memory is %d bytes)",
			w.v.spec.Name, abi.ExportAlloc, total, ptr, w.mem.Size()), true
	}
	w.stack[0], w.stack[1], w.stack[2] = uint64(ptr), total, uint64(len(b.msgs))
	if cerr := w.handleBatch.CallWithStack(w.ctx, w.stack[:3]); cerr != nil {
		return 0, "", w.failure(m, cerr), true
	}
	r := int32(w.stack[0])
	if r < 0 || int(r) > len(b.msgs) {
		return 0, "", message.Errorf(abi.StatusTrap, "plugin %q: ABI violation: %s returned %d for a batch of %d messages (want 0 to %d failed)",
			w.v.spec.Name, abi.ExportHandleBatch, r, len(b.msgs), len(b.msgs)), true
	}
	if r > 0 {
		text = string(w.reply)
	}
	return int(r), text, nil, false
}
