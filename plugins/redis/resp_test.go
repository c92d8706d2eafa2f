package main

import (
	"bytes"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	push := "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"
	v, n, err := parse([]byte(push + "+OK\r\n"))
	if err != nil || n != len(push) || len(v.items) != 3 || string(v.items[2].str) != "hello" {
		t.Fatalf("push: %+v, %d, %v", v, n, err)
	}
	for i := range len(push) { // every proper prefix is incomplete, not an error
		if _, n, err := parse([]byte(push[:i])); n != 0 || err != nil {
			t.Fatalf("prefix of %d bytes: %d, %v", i, n, err)
		}
	}
	if v, _, err := parse([]byte(":42\r\n")); err != nil || v.num != 42 {
		t.Errorf("integer: %+v, %v", v, err)
	}
	if v, _, err := parse([]byte("$-1\r\n")); err != nil || !v.null {
		t.Errorf("null bulk: %+v, %v", v, err)
	}
	for _, bad := range []string{
		"HTTP/1.1 200 OK\r\n", "*99999\r\n", "$-5\r\n", "$3\r\nabcXY", ":x\r\n",
		"*1\r\n*1\r\n*1\r\n:1\r\n", "+" + string(bytes.Repeat([]byte("a"), 100)), "\n",
	} {
		if _, _, err := parse([]byte(bad)); !errors.Is(err, errMalformed) {
			t.Errorf("parse(%q): %v, want errMalformed", bad, err)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []frame{
		{typ: frameEvent, headers: []byte{0xa0}, payload: []byte("p")},
		{typ: frameSend, payload: []byte("p")},
		{typ: frameRequest, id: 1 << 40, inbox: []byte("x:inbox:1"), headers: []byte("h"), payload: []byte("p")},
		{typ: frameReply, id: 7, status: 4, payload: []byte("no")},
		{typ: frameReplyH, id: 8, headers: []byte{0xa1, 0x61, 'k', 0x61, 'v'}, payload: []byte("yes")},
		{typ: frameReplyH, id: 9, payload: []byte("none")},
	} {
		got, err := decodeFrame(appendFrame(nil, &f))
		if err != nil || got.typ != f.typ || got.id != f.id || got.status != f.status ||
			!bytes.Equal(got.inbox, f.inbox) || !bytes.Equal(got.headers, f.headers) || !bytes.Equal(got.payload, f.payload) {
			t.Errorf("%+v came back as %+v, %v", f, got, err)
		}
	}
	for _, bad := range []string{"", "\xb7", "x\x01", "\xb7\x09", "\xb7\x03\x01\x50ab", "\xb7\x04\x01", "\xb7\x05\x01\x00", "\xb7\x05\x01\x00\x05ab"} {
		if _, err := decodeFrame([]byte(bad)); !errors.Is(err, errFrame) {
			t.Errorf("decodeFrame(%q): %v", bad, err)
		}
	}
}

func TestGlobFor(t *testing.T) {
	for pattern, want := range map[string]string{
		"orders.>":      "orders.*",
		"metrics.*":     "metrics.*",
		"*.created":     "*",
		"a.*.c":         "a.*",
		"exact.subject": "exact.subject",
		"odd?[x]\\.>":   "odd\\?\\[x\\]\\\\.*",
		"has*star.>":    "has\\*star.*",
	} {
		if got := globFor(pattern); got != want {
			t.Errorf("globFor(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// FuzzParse: any bytes from the broker parse, wait for more, or fail with
// errMalformed; never panic, never claim more than they hold.
func FuzzParse(f *testing.F) {
	f.Add([]byte("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"))
	f.Add([]byte("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$0\r\n\r\n"))
	f.Add([]byte(":1\r\n-ERR x\r\n+OK\r\n$-1\r\n*-1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := parse(b)
		if err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("error %v is not errMalformed", err)
		}
		if n < 0 || n > len(b) || (err != nil && n != 0) {
			t.Fatalf("took %d of %d bytes (err %v)", n, len(b), err)
		}
		_ = v
	})
}

// FuzzDecodeFrame: any PUBLISHed bytes decode or fail with errFrame.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, &frame{typ: frameRequest, id: 3, inbox: []byte("i"), headers: []byte("h"), payload: []byte("p")}))
	f.Add(appendFrame(nil, &frame{typ: frameReply, id: 3, status: 0, payload: []byte("p")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeFrame(b); err != nil && !errors.Is(err, errFrame) {
			t.Fatalf("error %v is not errFrame", err)
		}
	})
}
