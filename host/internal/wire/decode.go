package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// DecodeEnvelope decodes the body of a FrameMsg frame into e.
//
// It accepts any valid CBOR encoding of the envelope map: keys in any
// order, integers and lengths in any width. It refuses, with a
// *[ProtocolError] naming the key and the problem, indefinite lengths,
// duplicate keys, keys that are not unsigned integers, values of the wrong
// type or out of range for their field, text that is not UTF-8, a missing
// version or kind, and bytes after the map. Keys this version does not
// know are skipped when they hold plain items (integers, strings, booleans,
// null, floats, and arrays or maps of those at most 4 deep), so that a
// later version can add fields without breaking older hosts; semantic
// checks (subject syntax, which fields a kind needs) are the caller's.
//
// Nothing in e refers to body afterwards, since a Reader reuses its buffer.
// The payload gets a fresh slice of its own, capped at its length. The
// strings (from, to, subject, headers, error) are cut from one fresh copy
// of the part of the body that holds them, which saves an allocation per
// string; keeping any one of them keeps that copy, and a payload of at
// most 1 KiB that shares its allocation (one allocation per envelope
// instead of two), but never a larger payload. e.Headers is cleared
// and reused when it is not nil, so it must not be shared with anyone who
// still needs the previous message. After an error e is left partly
// decoded.
func DecodeEnvelope(body []byte, e *Envelope) error { return decodeEnvelope(body, e, nil) }

// DecodeEnvelopeSlab is DecodeEnvelope, except that the payload and texts
// of a small send or event (payload at most 1 KiB) are carved from slab
// instead of allocated: a link's reader decodes a stream of them, and one
// allocation per slab instead of one per event is the difference. Anything
// else decodes as with DecodeEnvelope. See [Slab] for what that costs.
func DecodeEnvelopeSlab(body []byte, e *Envelope, slab *Slab) error {
	return decodeEnvelope(body, e, slab)
}

func decodeEnvelope(body []byte, e *Envelope, slab *Slab) error {
	h := e.Headers
	if len(h) <= 8 {
		// clear wipes every slot of the map's table; deleting the few
		// entries a message has touches only theirs, which is cheaper.
		for k := range h {
			delete(h, k)
		}
	} else {
		clear(h)
	}
	*e = Envelope{Headers: h}

	d := decoder{b: body, slab: slab}
	major, n, p := d.head()
	if p != "" {
		return d.fail(noKey, "%s", p)
	}
	if major != majorMap {
		return d.fail(noKey, "want a map, got %s", itemName(body[0]))
	}
	// Every pair takes at least two bytes; checking up front keeps a huge
	// declared count from driving the loop.
	if n > uint64(len(body)-d.pos)/2 {
		return d.fail(noKey, "map of %d pairs does not fit in the %d bytes that follow", n, len(body)-d.pos)
	}
	var (
		seen  uint64 // bit k set: key k (< 64) was present
		high  [8]uint64
		nHigh int
	)
	for range n {
		at := d.pos
		major, key, p := d.head()
		if p != "" {
			return d.fail(noKey, "%s", p)
		}
		if major != majorUint {
			return d.fail(noKey, "key at byte %d: want unsigned integer, got %s", at, itemName(body[at]))
		}
		if key < 64 {
			if seen&(1<<key) != 0 {
				return d.fail(noKey, "duplicate %s", keyLabel(key))
			}
			seen |= 1 << key
		} else {
			// Keys this high are unknown to every version so far: a few
			// are tolerated for the future, but not so many that checking
			// them for duplicates would cost more than the envelope.
			for _, k := range high[:nHigh] {
				if k == key {
					return d.fail(noKey, "duplicate %s", keyLabel(key))
				}
			}
			if nHigh == len(high) {
				return d.fail(noKey, "more than %d keys above 63", len(high))
			}
			high[nHigh] = key
			nHigh++
		}
		var err error
		switch key {
		case keyVersion:
			var v uint64
			v, err = d.uint(key, math.MaxUint16)
			e.Version = uint16(v)
		case keyID:
			e.ID, err = d.uint(key, math.MaxUint64)
		case keyKind:
			var v uint64
			if v, err = d.uint(key, math.MaxUint64); err == nil && (v < uint64(KindRequest) || v > uint64(KindCancel)) {
				err = d.fail(key, "%d is not a kind (%d..%d)", v, KindRequest, KindCancel)
			}
			e.Kind = MsgKind(v)
		case keyFrom:
			d.from, err = d.text(key)
		case keyTo:
			d.to, err = d.text(key)
		case keySubject:
			d.subject, err = d.text(key)
		case keyReplyTo:
			e.ReplyTo, err = d.uint(key, math.MaxUint64)
		case keyHeaders:
			err = d.headers(key, e)
		case keyDeadline:
			e.Deadline, err = d.uint(key, math.MaxUint64)
		case keyPayload:
			var b []byte
			if b, err = d.str(key, majorBytes); err == nil {
				// Copied by strings, together with the texts when small.
				d.payload = span{d.pos - len(b), d.pos}
			}
		case keyHops:
			var v uint64
			v, err = d.uint(key, math.MaxUint32)
			e.Hops = uint32(v)
		case keyStatus:
			var v uint64
			v, err = d.uint(key, math.MaxUint16)
			e.Status = uint16(v)
		case keyError:
			d.errText, err = d.text(key)
		case keyRelays:
			var v uint64
			v, err = d.uint(key, math.MaxUint8)
			e.Relays = uint8(v)
		default:
			err = d.skip(key, 1)
		}
		if err != nil {
			return err
		}
	}
	if d.pos != len(body) {
		return d.fail(noKey, "trailing data after the map (%d bytes)", len(body)-d.pos)
	}
	if seen&(1<<keyVersion) == 0 {
		return d.fail(noKey, "missing %s", keyLabel(keyVersion))
	}
	if seen&(1<<keyKind) == 0 {
		return d.fail(noKey, "missing %s", keyLabel(keyKind))
	}
	return d.strings(e)
}

// span is where a text value lies in the body. The decoder records spans
// while it checks the map, and makes strings only at the end, all from one
// copy.
type span struct{ lo, hi int }

// Slab hands out small byte regions carved from one larger allocation,
// for DecodeEnvelopeSlab. A region is never handed out twice nor written
// by the slab afterwards, so strings cut from it stay immutable and a
// payload (capped at its length) is its owner's. The price is retention:
// whoever keeps one payload or text keeps its whole slab (16 KiB) alive,
// which is why only small sends and events use it. A Slab is used by one
// goroutine at a time.
type Slab struct{ free []byte }

// slabSize is the size of one slab's allocation; slabTake the most one
// envelope takes from it (payload and texts).
const (
	slabSize = 16 << 10
	slabTake = 2 << 10
)

// take returns n fresh bytes (n at most slabSize).
func (s *Slab) take(n int) []byte {
	if n > len(s.free) {
		s.free = make([]byte, slabSize)
	}
	b := s.free[:n:n]
	s.free = s.free[n:]
	return b
}

// sharedPayload is the largest payload that shares its allocation with the
// envelope's strings: a string kept (a subject in a log or a map) keeps
// that allocation alive, which must not be a large payload.
const sharedPayload = 1 << 10

// spanHeaders is how many headers the decoder keeps as spans; a message
// with more gets one allocation per string, as a plain decoder would.
const spanHeaders = 16

// strings sets e's text fields from the spans recorded, and fills
// e.Headers from the header spans, refusing duplicate header names.
func (d *decoder) strings(e *Envelope) error {
	// The bounds of every text, without gathering the spans in an array
	// first: zeroing one big enough for 16 headers cost more than the loop.
	lo, hi, total := len(d.b), 0, 0
	for _, s := range [...]span{d.from, d.to, d.subject, d.errText} {
		if s.hi > s.lo {
			lo, hi, total = min(lo, s.lo), max(hi, s.hi), total+s.hi-s.lo
		}
	}
	for _, kv := range d.hdrs[:d.nHdrs] {
		for _, s := range kv {
			if s.hi > s.lo {
				lo, hi, total = min(lo, s.lo), max(hi, s.hi), total+s.hi-s.lo
			}
		}
	}
	// The region between the first and last string holds little else when
	// the map is in the usual key order: item heads and a few integers. In
	// another order it could hold the payload, and copying that twice is
	// worse than an allocation per string.
	t := texts{b: d.b, base: lo, each: hi-lo > 2*total+64}
	region := total > 0 && !t.each
	e.Payload = nil
	switch pl := d.payload.hi - d.payload.lo; {
	case d.slab != nil && (e.Kind == KindEvent || e.Kind == KindSend) && (pl > 0 || region) && pl+max(hi-lo, 0) <= slabTake:
		// As below, carved from the slab. The texts' region, when there
		// is one, follows the payload.
		n := pl
		if region {
			n += hi - lo
		}
		buf := d.slab.take(n)
		copy(buf, d.b[d.payload.lo:d.payload.hi])
		if pl > 0 {
			e.Payload = buf[:pl:pl]
		}
		if region {
			copy(buf[pl:], d.b[lo:hi])
			t.region = unsafe.String(&buf[pl], hi-lo)
			region = false
		}
	case pl > 0 && pl <= sharedPayload && region:
		// One allocation for the payload and the texts: the payload
		// first, capped so that appending to it reallocates, then the
		// region the strings are cut from, which nothing can write to
		// afterwards. (append to a full slice copies without zeroing.)
		buf := append(d.b[d.payload.lo:d.payload.hi:d.payload.hi], d.b[lo:hi]...)
		e.Payload = buf[:pl:pl]
		t.region = unsafe.String(&buf[pl], hi-lo)
		region = false
	case pl > 0:
		// append to nil, unlike make and copy, does not zero the bytes it
		// is about to overwrite.
		e.Payload = append([]byte(nil), d.b[d.payload.lo:d.payload.hi]...)
	}
	if region {
		t.region = string(d.b[lo:hi])
	}
	e.From, e.To, e.Subject, e.Error = t.get(d.from), t.get(d.to), t.get(d.subject), t.get(d.errText)
	if d.nHdrs > 0 && e.Headers == nil {
		e.Headers = make(map[string]string, d.nHdrs)
	}
	for _, kv := range d.hdrs[:d.nHdrs] {
		// Looking up string(bytes) does not allocate.
		if _, dup := e.Headers[string(d.b[kv[0].lo:kv[0].hi])]; dup {
			return d.fail(keyHeaders, "duplicate header %q", d.b[kv[0].lo:kv[0].hi])
		}
		e.Headers[t.get(kv[0])] = t.get(kv[1])
	}
	return nil
}

// texts makes strings from spans: slices of one shared copy of the body,
// or one copy each.
type texts struct {
	b      []byte
	region string
	base   int
	each   bool
}

func (t *texts) get(s span) string {
	switch {
	case s.hi == s.lo:
		return ""
	case t.each:
		return string(t.b[s.lo:s.hi])
	}
	return t.region[s.lo-t.base : s.hi-t.base]
}

// noKey marks an error that is about the map itself, not one key's value.
const noKey = math.MaxUint64

// maxSkipDepth is how deeply arrays and maps may nest in the value of an
// unknown key. Enough for any field a later version is likely to add, and
// small enough that skipping recurses only a few frames deep.
const maxSkipDepth = 4

type decoder struct {
	b    []byte
	pos  int
	slab *Slab // nil: allocate

	from, to, subject, errText span
	payload                    span
	hdrs                       [spanHeaders][2]span
	nHdrs                      int
}

// head reads one item head and returns its major type and argument, or
// what is wrong with it. It refuses indefinite lengths and reserved
// encodings for every major type, since the protocol uses neither.
func (d *decoder) head() (major byte, arg uint64, problem string) {
	if d.pos >= len(d.b) {
		return 0, 0, fmt.Sprintf("truncated at byte %d", d.pos)
	}
	ib := d.b[d.pos]
	major, ai := ib>>5, ib&0x1f
	rest := d.b[d.pos+1:]
	switch {
	case ai < 24:
		d.pos++
		return major, uint64(ai), ""
	case ai == 24 && len(rest) >= 1:
		d.pos += 2
		return major, uint64(rest[0]), ""
	case ai == 25 && len(rest) >= 2:
		d.pos += 3
		return major, uint64(binary.BigEndian.Uint16(rest)), ""
	case ai == 26 && len(rest) >= 4:
		d.pos += 5
		return major, uint64(binary.BigEndian.Uint32(rest)), ""
	case ai == 27 && len(rest) >= 8:
		d.pos += 9
		return major, binary.BigEndian.Uint64(rest), ""
	case ai <= 27:
		return 0, 0, fmt.Sprintf("truncated at byte %d", d.pos)
	case ai == 31 && major >= majorBytes && major <= majorMap:
		return 0, 0, fmt.Sprintf("indefinite-length %s at byte %d", itemName(ib), d.pos)
	}
	return 0, 0, fmt.Sprintf("malformed item head %#02x at byte %d", ib, d.pos)
}

// uint reads an unsigned integer no larger than limit.
func (d *decoder) uint(key, limit uint64) (uint64, error) {
	at := d.pos
	major, v, p := d.head()
	if p != "" {
		return 0, d.fail(key, "%s", p)
	}
	if major != majorUint {
		return 0, d.fail(key, "want unsigned integer, got %s", itemName(d.b[at]))
	}
	if v > limit {
		return 0, d.fail(key, "%d does not fit in %d bits", v, bits.Len64(limit))
	}
	return v, nil
}

// rawStr reads a byte or text string of major type want and returns its
// content, still pointing into the body, or what is wrong with it.
func (d *decoder) rawStr(want byte) ([]byte, string) {
	at := d.pos
	major, n, p := d.head()
	if p != "" {
		return nil, p
	}
	if major != want {
		return nil, fmt.Sprintf("want %s, got %s", majorNames[want], itemName(d.b[at]))
	}
	if n > uint64(len(d.b)-d.pos) {
		return nil, fmt.Sprintf("%s of %d bytes runs past the end (%d bytes left)", majorNames[want], n, len(d.b)-d.pos)
	}
	s := d.b[d.pos : d.pos+int(n)]
	d.pos += int(n)
	if want == majorText && !validUTF8(s) {
		return nil, fmt.Sprintf("text at byte %d is not valid UTF-8", at)
	}
	return s, ""
}

func (d *decoder) str(key uint64, want byte) ([]byte, error) {
	s, p := d.rawStr(want)
	if p != "" {
		return nil, d.fail(key, "%s", p)
	}
	return s, nil
}

// text reads a text string and returns where it lies in the body.
func (d *decoder) text(key uint64) (span, error) {
	b, err := d.str(key, majorText)
	return span{d.pos - len(b), d.pos}, err
}

// headers reads the headers map: as spans for the usual few headers, and
// straight into e.Headers, one allocation per string, for more.
func (d *decoder) headers(key uint64, e *Envelope) error {
	at := d.pos
	major, n, p := d.head()
	if p != "" {
		return d.fail(key, "%s", p)
	}
	if major != majorMap {
		return d.fail(key, "want map, got %s", itemName(d.b[at]))
	}
	if n > uint64(len(d.b)-d.pos)/2 {
		return d.fail(key, "map of %d pairs does not fit in the %d bytes that follow", n, len(d.b)-d.pos)
	}
	if n > spanHeaders && e.Headers == nil {
		e.Headers = make(map[string]string, n)
	}
	for range n {
		k, p := d.rawStr(majorText)
		if p != "" {
			return d.fail(key, "header key: %s", p)
		}
		kEnd := d.pos
		v, p := d.rawStr(majorText)
		if p != "" {
			return d.fail(key, "header %q: %s", k, p)
		}
		if n <= spanHeaders {
			d.hdrs[d.nHdrs] = [2]span{{kEnd - len(k), kEnd}, {d.pos - len(v), d.pos}}
			d.nHdrs++
			continue
		}
		if _, dup := e.Headers[string(k)]; dup {
			return d.fail(key, "duplicate header %q", k)
		}
		e.Headers[string(k)] = string(v)
	}
	return nil
}

// skip steps over the value of an unknown key, checking that it is well
// formed and plain (see DecodeEnvelope). depth is 1 for the value itself.
func (d *decoder) skip(key uint64, depth int) error {
	at := d.pos
	major, n, p := d.head()
	if p != "" {
		return d.fail(key, "%s", p)
	}
	switch major {
	case majorUint, majorNint:
		return nil
	case majorBytes, majorText:
		d.pos = at
		_, err := d.str(key, major)
		return err
	case majorArray, majorMap:
		if depth > maxSkipDepth {
			return d.fail(key, "arrays and maps nested more than %d deep", maxSkipDepth)
		}
		items := n
		if major == majorMap {
			if n > math.MaxUint64/2 {
				return d.fail(key, "map of %d pairs does not fit in the %d bytes that follow", n, len(d.b)-d.pos)
			}
			items = 2 * n
		}
		if items > uint64(len(d.b)-d.pos) {
			return d.fail(key, "%s of %d items does not fit in the %d bytes that follow", majorNames[major], n, len(d.b)-d.pos)
		}
		for range items {
			if err := d.skip(key, depth+1); err != nil {
				return err
			}
		}
		return nil
	case majorTag:
		return d.fail(key, "tags are not allowed (byte %d)", at)
	}
	switch ai := d.b[at] & 0x1f; ai {
	case 20, 21, 22, 23, 25, 26, 27:
		return nil // false, true, null, undefined, floats
	}
	return d.fail(key, "%s is not allowed (byte %d)", itemName(d.b[at]), at)
}

func (d *decoder) fail(key uint64, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if key != noKey {
		msg = keyLabel(key) + ": " + msg
	}
	return &ProtocolError{Code: ErrProtocol, Msg: "envelope: " + msg}
}

func keyLabel(key uint64) string {
	if key < numKeys {
		return fmt.Sprintf("key %d (%s)", key, keyNames[key])
	}
	return fmt.Sprintf("key %d", key)
}

var majorNames = [8]string{
	majorUint:  "unsigned integer",
	majorNint:  "negative integer",
	majorBytes: "byte string",
	majorText:  "text string",
	majorArray: "array",
	majorMap:   "map",
	majorTag:   "tag",
	majorOther: "simple value",
}

// itemName names the kind of item whose head starts with ib, for errors.
func itemName(ib byte) string {
	if ib>>5 != majorOther {
		return majorNames[ib>>5]
	}
	switch ib & 0x1f {
	case 20, 21:
		return "boolean"
	case 22:
		return "null"
	case 23:
		return "undefined"
	case 25, 26, 27:
		return "float"
	case 31:
		return "break"
	}
	return "simple value"
}
