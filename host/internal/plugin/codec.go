package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// codecState is what a codec version (LoadCodec) knows beyond a handler:
// its pairs, read once at load.
type codecState struct {
	pairs []abi.CodecPair
	// set holds "from\x00to" of every pair: media types contain a '/',
	// coding tokens never do, so the two kinds cannot collide.
	set map[string]abi.CodecPair
}

// LoadCodec loads a codec plugin (abi/SPEC.md section 14): the module must
// export pycomms_codec_convert and pycomms_codec_pairs; its pairs are read
// once, on one instance, before it serves, and the load fails (naming the
// line) when they are not valid.
func (e *Engine) LoadCodec(ctx context.Context, spec Spec) (*Version, error) {
	return e.load(ctx, spec, nil, nil, abi.PluginCodec)
}

// CheckCodec is Check for a codec plugin: its pairs are read and checked
// too.
func (e *Engine) CheckCodec(ctx context.Context, spec Spec) error {
	spec.Instances = 1
	v, err := e.LoadCodec(ctx, spec)
	if err != nil {
		return err
	}
	v.Close()
	return nil
}

// Pairs returns the pairs of a codec version (nil for another kind).
func (v *Version) Pairs() []abi.CodecPair {
	if v.codec == nil {
		return nil
	}
	return append([]abi.CodecPair(nil), v.codec.pairs...)
}

// Kind is what the version was loaded as.
func (v *Version) Kind() abi.PluginKind { return v.pluginKind }

// loadPairs calls pycomms_codec_pairs on the first instance, under the
// plugin's timeout, and parses what it replied.
func (v *Version) loadPairs() error {
	w := v.all[0]
	name := v.spec.Name
	m := &message.Message{Kind: abi.KindRequest, Subject: abi.ExportCodecPairs}
	dl := nanotime() + int64(v.spec.Timeout)
	w.msg, w.due = m, dl
	w.arm(dl)
	defer func() {
		w.deadline.Store(idle)
		w.msg = nil
		w.reply, w.tooLarge = w.reply[:0], 0
	}()
	fn := w.mod.ExportedFunction(abi.ExportCodecPairs)
	if err := fn.CallWithStack(w.ctx, w.stack[:1]); err != nil {
		return fmt.Errorf("codec %q: %s: %w", name, abi.ExportCodecPairs, w.failure(m, err))
	}
	if st := abi.Status(int32(w.stack[0])); st != abi.StatusOK {
		return fmt.Errorf("codec %q: %s returned %s, want ok: %s", name, abi.ExportCodecPairs, st, w.reply)
	}
	if w.tooLarge > 0 {
		return fmt.Errorf("codec %q: %s: pairs text of %d bytes exceeds max_reply (%d bytes)", name, abi.ExportCodecPairs, w.tooLarge, v.spec.MaxReply)
	}
	pairs, err := abi.ParseCodecPairs(w.reply)
	if err != nil {
		return fmt.Errorf("codec %q: pairs (%s): %w", name, abi.ExportCodecPairs, err)
	}
	c := &codecState{pairs: pairs, set: make(map[string]abi.CodecPair, len(pairs))}
	for _, p := range pairs {
		c.set[p.From+"\x00"+p.To] = p
	}
	v.codec = c
	return nil
}

// Convert converts data from one name of a declared pair to the other
// (media types or content codings) on an idle instance, waiting for one as
// a request does, under the plugin's timeout (or ctx's deadline when
// sooner), memory and max_reply. A trap or an overrun replaces the
// instance; output that is not valid for a type the host knows
// (application/json, application/cbor) fails with internal and keeps it.
// A pair the codec does not declare is unsupported_type.
func (v *Version) Convert(ctx context.Context, from, to string, data []byte) ([]byte, error) {
	if v.codec == nil {
		return nil, message.Errorf(abi.StatusInternal, "plugin %q is a %s plugin, not a codec", v.spec.Name, v.pluginKind)
	}
	if _, ok := v.codec.set[from+"\x00"+to]; !ok {
		err := message.Errorf(abi.StatusUnsupportedType, "codec %q does not convert %s to %s (its pairs: %s)", v.spec.Name, from, to, pairsText(v.codec.pairs))
		v.calls.Add(1)
		v.fail(err)
		return nil, err
	}
	m := &message.Message{Kind: abi.KindRequest, Subject: "convert " + from + " -> " + to}
	if d, ok := ctx.Deadline(); ok {
		m.Deadline = d
	}
	dl := v.deadline(m)
	w := v.take(dl)
	switch {
	case w == nil:
		if !v.acquire() {
			return nil, errRetired
		}
		defer v.release()
		var err error
		if w, err = v.checkout(ctx, m, dl); err != nil {
			v.calls.Add(1)
			v.fail(err)
			return nil, err
		}
	case v.closing.Load():
		v.put(w)
		return nil, errRetired
	}
	v.calls.Add(1)
	out, err, broken := w.invokeConvert(m, dl, from, to, data)
	if err == nil {
		err = v.checkOutput(to, out)
	}
	if err != nil {
		v.fail(err)
	}
	if broken {
		v.replace(w, err)
	}
	if w.mod != nil {
		v.put(w)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fail counts a failed conversion by its status.
func (v *Version) fail(err error) {
	v.errors.Add(1)
	v.failures[message.StatusOf(err)].Add(1)
}

// cborOutput checks a codec's CBOR output for well-formedness only:
// fxamacker's defaults (32 levels, 131,072 elements) would refuse valid
// output such as 256 nested arrays or a long array, which json-cbor
// writes; the output is already bounded by max_reply.
var cborOutput = func() cbor.DecMode {
	dm, err := cbor.DecOptions{MaxNestedLevels: 65535, MaxArrayElements: math.MaxInt32, MaxMapPairs: math.MaxInt32}.DecMode()
	if err != nil {
		panic("plugin: cbor output check options: " + err.Error())
	}
	return dm
}()

// checkOutput refuses output that is not valid data of a type the host
// knows: a hostile or broken codec must not hand garbage on as JSON or
// CBOR.
func (v *Version) checkOutput(to string, out []byte) error {
	var err error
	switch to {
	case "application/json":
		if !json.Valid(out) {
			err = errors.New("not valid JSON")
		}
	case "application/cbor":
		err = cborOutput.Wellformed(out)
	default:
		return nil
	}
	if err != nil {
		return message.Errorf(abi.StatusInternal, "codec %q produced invalid %s output (%d bytes): %v", v.spec.Name, to, len(out), err)
	}
	return nil
}

// invokeConvert runs pycomms_codec_convert on w, armed with deadline,
// with from | to | data copied contiguously into the guest. broken
// reports that the instance must be replaced.
func (w *instance) invokeConvert(m *message.Message, deadline int64, from, to string, data []byte) (out []byte, err error, broken bool) {
	w.msg, w.due = m, deadline
	defer w.clear()
	w.growFailed = false
	defer func() {
		w.reply, w.tooLarge, w.denied, w.callErr = w.reply[:0], 0, "", ""
		w.replyHdr = nil
	}()
	f, t, d := len(from), len(to), len(data)
	total := uint64(f + t + d)
	limit := uint64(memoryPages(w.v.spec.Memory)) * 65536
	if total > limit {
		return nil, message.Errorf(abi.StatusTooLarge, "codec %q: %s: input of %d bytes exceeds limits.memory (%d bytes): it cannot fit in the plugin's memory",
			w.v.spec.Name, m.Subject, total, limit), false
	}
	w.stack[0] = total
	if cerr := w.alloc.CallWithStack(w.ctx, w.stack[:1]); cerr != nil {
		return nil, w.allocFailure(m, cerr, total, limit), true
	}
	ptr := uint32(w.stack[0])
	if ptr == 0 && total > 0 {
		return nil, message.Errorf(abi.StatusTooLarge, "codec %q: %s: input of %d bytes does not fit in the plugin's memory: %s(%d) could not allocate it (memory %d of limits.memory %d bytes)",
			w.v.spec.Name, m.Subject, total, abi.ExportAlloc, total, w.mem.Size(), limit), false
	}
	buf, ok := w.mem.Read(ptr, uint32(total))
	if !ok {
		return nil, message.Errorf(abi.StatusTrap, "codec %q: %s: ABI violation: %s(%d) returned out-of-bounds pointer %#x (memory is %d bytes)",
			w.v.spec.Name, m.Subject, abi.ExportAlloc, total, ptr, w.mem.Size()), true
	}
	copy(buf, from)
	copy(buf[f:], to)
	copy(buf[f+t:], data)
	w.stack = [5]uint64{uint64(ptr), uint64(f), uint64(t), uint64(d)}
	if cerr := w.convert.CallWithStack(w.ctx, w.stack[:4]); cerr != nil {
		return nil, w.failure(m, cerr), true
	}
	if w.tooLarge > 0 {
		// Whatever the codec returned after reply refused its output.
		return nil, message.Errorf(abi.StatusTooLarge, "codec %q: %s: output of %d bytes exceeds max_reply (%d bytes)", w.v.spec.Name, m.Subject, w.tooLarge, w.v.spec.MaxReply), false
	}
	return w.complete(m, abi.ExportCodecConvert, abi.Status(int32(w.stack[0])))
}

// Convert runs a conversion on the current version (Version.Convert);
// router.ErrGone after Close.
func (p *Plugin) Convert(ctx context.Context, from, to string, data []byte) ([]byte, error) {
	for range 8 {
		out, err := p.cur.Load().Convert(ctx, from, to, data)
		if !errors.Is(err, errRetired) {
			return out, err
		}
		if p.closed.Load() {
			return nil, message.Errorf(abi.StatusUnsupportedType, "codec %q was removed", p.name)
		}
	}
	return nil, message.Errorf(abi.StatusBusy, "codec %q is being replaced", p.name)
}

// pairsText is the pairs of a version as the SPEC writes them, for errors
// and logs.
func pairsText(pairs []abi.CodecPair) string {
	s := make([]string, len(pairs))
	for i, p := range pairs {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}
