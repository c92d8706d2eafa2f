package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// RESP2 (https://redis.io/docs/reference/protocol-spec/), the part a
// pub/sub client reads: simple strings, errors, integers, bulk strings and
// arrays. The bytes come from the broker, so every length is checked
// against what arrived and against the limits below before anything is
// allocated.

// Limits on what the broker may send: a pub/sub client receives arrays of
// 3 or 4 items (message, pmessage, subscribe acks), never nested.
const (
	maxArray = 16
	maxDepth = 2
	maxLine  = 64 // a type byte, a decimal length or a short status line
)

// errMalformed: the bytes are not RESP2 as a client expects it.
var errMalformed = errors.New("malformed RESP")

// value is one parsed RESP2 value. Bulk and simple strings alias the input.
type value struct {
	typ   byte // '+', '-', ':', '$', '*'
	str   []byte
	num   int64
	null  bool
	items []value
}

// parse reads one value from b: the value and the bytes it took, n == 0
// when b holds only part of one (more must arrive), or an error when b
// cannot be RESP2.
func parse(b []byte) (v value, n int, err error) { return parseDepth(b, 0) }

func parseDepth(b []byte, depth int) (value, int, error) {
	if len(b) == 0 {
		return value{}, 0, nil
	}
	line, n, err := readLine(b)
	if n == 0 || err != nil {
		return value{}, 0, err
	}
	v := value{typ: line[0]}
	body := line[1:]
	switch v.typ {
	case '+', '-':
		v.str = body
		return v, n, nil
	case ':':
		if v.num, err = atoi(body); err != nil {
			return value{}, 0, err
		}
		return v, n, nil
	case '$':
		size, err := atoi(body)
		if err != nil {
			return value{}, 0, err
		}
		if size == -1 {
			v.null = true
			return v, n, nil
		}
		if size < 0 {
			return value{}, 0, fmt.Errorf("%w: bulk length %d", errMalformed, size)
		}
		if int64(len(b)-n) < size+2 {
			return value{}, 0, nil // the host keeps the bytes until the rest arrives
		}
		end := n + int(size)
		if b[end] != '\r' || b[end+1] != '\n' {
			return value{}, 0, fmt.Errorf("%w: bulk string of %d bytes not followed by CRLF", errMalformed, size)
		}
		v.str = b[n:end]
		return v, end + 2, nil
	case '*':
		count, err := atoi(body)
		if err != nil {
			return value{}, 0, err
		}
		if count == -1 {
			v.null = true
			return v, n, nil
		}
		if count < 0 || count > maxArray {
			return value{}, 0, fmt.Errorf("%w: array of %d items (at most %d expected)", errMalformed, count, maxArray)
		}
		if depth >= maxDepth {
			return value{}, 0, fmt.Errorf("%w: arrays nested deeper than %d", errMalformed, maxDepth)
		}
		v.items = make([]value, 0, count)
		for range count {
			item, m, err := parseDepth(b[n:], depth+1)
			if m == 0 || err != nil {
				return value{}, 0, err
			}
			v.items = append(v.items, item)
			n += m
		}
		return v, n, nil
	}
	return value{}, 0, fmt.Errorf("%w: type byte %q", errMalformed, v.typ)
}

// readLine returns the line at the start of b without its CRLF, and the
// bytes it took (0 while incomplete).
func readLine(b []byte) ([]byte, int, error) {
	i := bytes.IndexByte(b[:min(len(b), maxLine+2)], '\n')
	if i < 0 {
		if len(b) > maxLine+1 {
			return nil, 0, fmt.Errorf("%w: no line end within %d bytes", errMalformed, maxLine)
		}
		return nil, 0, nil
	}
	if i < 2 || b[i-1] != '\r' {
		return nil, 0, fmt.Errorf("%w: line without CRLF or type", errMalformed)
	}
	return b[:i-1], i + 1, nil
}

func atoi(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad number %q", errMalformed, b)
	}
	return n, nil
}

// appendCommand appends a RESP2 command (an array of bulk strings).
func appendCommand(dst []byte, args ...[]byte) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// Frames: what one PUBLISH carries. The channel names the subject; the
// frame carries the rest. It starts with frameMagic and the frame type:
//
//	event, send: magic type uvarint(len headers) headers payload
//	request:     magic type uvarint(id) uvarint(len inbox) inbox uvarint(len headers) headers payload
//	reply:       magic type uvarint(id) status(1 byte) body
//	reply_h:     magic type uvarint(id) status(1 byte) uvarint(len headers) headers body
//
// reply_h is a reply with headers. It came after the others: it goes only
// to a caller whose inbox says it reads it (inboxH), so that a plugin
// built before it, which ignores a frame type it does not know, still
// gets every reply (without their headers).
const frameMagic = 0xB7

const (
	frameEvent   = 1
	frameSend    = 2
	frameRequest = 3
	frameReply   = 4
	frameReplyH  = 5
)

// frame is one decoded frame; slices alias the input.
type frame struct {
	typ     byte
	id      uint64
	inbox   []byte
	headers []byte
	payload []byte // the reply's body for a reply
	status  byte
}

var errFrame = errors.New("malformed frame")

func decodeFrame(b []byte) (frame, error) {
	var f frame
	if len(b) < 2 || b[0] != frameMagic {
		return f, fmt.Errorf("%w: no frame header", errFrame)
	}
	f.typ = b[1]
	b = b[2:]
	uv := func() (uint64, bool) {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return x, true
	}
	field := func() ([]byte, bool) {
		l, ok := uv()
		if !ok || l > uint64(len(b)) {
			return nil, false
		}
		out := b[:l:l]
		b = b[l:]
		return out, true
	}
	ok := true
	switch f.typ {
	case frameEvent, frameSend:
		f.headers, ok = field()
	case frameRequest:
		if f.id, ok = uv(); ok {
			if f.inbox, ok = field(); ok {
				f.headers, ok = field()
			}
		}
	case frameReply, frameReplyH:
		if f.id, ok = uv(); ok {
			if ok = len(b) >= 1; ok {
				f.status, b = b[0], b[1:]
				if f.typ == frameReplyH {
					f.headers, ok = field()
				}
			}
		}
	default:
		return f, fmt.Errorf("%w: type %d", errFrame, f.typ)
	}
	if !ok {
		return f, fmt.Errorf("%w: type %d truncated", errFrame, f.typ)
	}
	f.payload = b
	return f, nil
}

func appendFrame(dst []byte, f *frame) []byte {
	dst = append(dst, frameMagic, f.typ)
	switch f.typ {
	case frameEvent, frameSend:
		dst = binary.AppendUvarint(dst, uint64(len(f.headers)))
		dst = append(dst, f.headers...)
	case frameRequest:
		dst = binary.AppendUvarint(dst, f.id)
		dst = binary.AppendUvarint(dst, uint64(len(f.inbox)))
		dst = append(dst, f.inbox...)
		dst = binary.AppendUvarint(dst, uint64(len(f.headers)))
		dst = append(dst, f.headers...)
	case frameReply:
		dst = binary.AppendUvarint(dst, f.id)
		dst = append(dst, f.status)
	case frameReplyH:
		dst = binary.AppendUvarint(dst, f.id)
		dst = append(dst, f.status)
		dst = binary.AppendUvarint(dst, uint64(len(f.headers)))
		dst = append(dst, f.headers...)
	}
	return append(dst, f.payload...)
}

// globFor returns the Redis PSUBSCRIBE glob that covers every subject the
// pattern matches: the pattern's tokens before its first wildcard token,
// with Redis's glob characters escaped, then "*" (a pattern without
// wildcards is itself). It may cover more, since Redis's "*" crosses dots:
// the plugin filters what arrives with abi.Match.
func globFor(pattern string) string {
	lit, wild := pattern, false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if (c == '*' || c == '>') && (i == 0 || pattern[i-1] == '.') && (i+1 == len(pattern) || pattern[i+1] == '.') {
			lit, wild = pattern[:i], true
			break
		}
	}
	return globEscape(lit, wild)
}

// globEscape escapes Redis's glob characters in lit, and appends "*" when
// star is set.
func globEscape(lit string, star bool) string {
	b := make([]byte, 0, len(lit)+2)
	for i := 0; i < len(lit); i++ {
		switch c := lit[i]; c {
		case '*', '?', '[', ']', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	if star {
		b = append(b, '*')
	}
	return string(b)
}
