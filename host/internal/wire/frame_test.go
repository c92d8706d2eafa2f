package wire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

type frame struct {
	t    FrameType
	body string
}

func frames(fs ...frame) []byte {
	var b []byte
	for _, f := range fs {
		b = AppendFrame(b, f.t, []byte(f.body))
	}
	return b
}

// readAll reads frames until an error and returns them with the error.
func readAll(r *Reader) ([]frame, error) {
	var got []frame
	for {
		t, body, err := r.Next()
		if err != nil {
			return got, err
		}
		got = append(got, frame{t, string(body)})
	}
}

func TestReaderFrames(t *testing.T) {
	want := []frame{
		{FrameHello, "hello body"},
		{FramePing, ""},
		{FrameMsg, strings.Repeat("m", 70_000)},
		{FrameGoAway, "bye"},
	}
	stream := frames(want...)
	readers := []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(stream) }},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }},
		{"EOF with the last data", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) }},
	}
	for _, tt := range readers {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(NewReader(tt.r(), 100_000))
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want io.EOF", err)
			}
			if len(got) != len(want) {
				t.Fatalf("read %d frames, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("frame %d: type %v, %d bytes; want type %v, %d bytes", i, got[i].t, len(got[i].body), want[i].t, len(want[i].body))
				}
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	ping := frames(frame{FramePing, "abc"})
	tests := []struct {
		name   string
		stream []byte
		limit  int
		frames int // read successfully before the error
		want   error
		code   ErrorCode
		msg    string
	}{
		{"empty stream", nil, 100, 0, io.EOF, 0, ""},
		{"clean end after a frame", ping, 100, 1, io.EOF, 0, ""},
		{"end inside the length", ping[:2], 100, 0, io.ErrUnexpectedEOF, 0, ""},
		{"end after the length", ping[:4], 100, 0, io.ErrUnexpectedEOF, 0, ""},
		{"end after the type", ping[:5], 100, 0, io.ErrUnexpectedEOF, 0, ""},
		{"end inside the body", ping[:7], 100, 0, io.ErrUnexpectedEOF, 0, ""},
		{"end inside the second frame", append(ping, ping[:6]...), 100, 1, io.ErrUnexpectedEOF, 0, ""},
		{"zero length", []byte{0, 0, 0, 0}, 100, 0, nil, ErrProtocol, "frame of length 0: a frame has at least its type byte"},
		{"zero length after a frame", append(ping, 0, 0, 0, 0, 1), 100, 1, nil, ErrProtocol, "frame of length 0"},
		{"one past the limit", frames(frame{FrameMsg, strings.Repeat("x", 100)}), 100, 0, nil, ErrTooLarge, "frame of 101 bytes exceeds the limit of 100"},
		{"at the limit", frames(frame{FrameMsg, strings.Repeat("x", 99)}), 100, 1, io.EOF, 0, ""},
		{"largest length", []byte{0xff, 0xff, 0xff, 0xff, 16}, FrameLimit(1 << 20), 0, nil, ErrTooLarge, "frame of 4294967295 bytes exceeds the limit of 1118213"},
		{"limit below one", frames(frame{FramePing, ""}, frame{FramePing, "x"}), -5, 1, nil, ErrTooLarge, "frame of 2 bytes exceeds the limit of 1"},
		{"unknown type 0", []byte{0, 0, 0, 1, 0}, 100, 0, nil, ErrProtocol, "unknown frame type 0"},
		{"unknown type 9", []byte{0, 0, 0, 1, 9}, 100, 0, nil, ErrProtocol, "unknown frame type 9"},
		{"unknown type 17", []byte{0, 0, 0, 1, 17}, 100, 0, nil, ErrProtocol, "unknown frame type 17"},
		{"unknown type 255", []byte{0, 0, 0, 1, 255}, 100, 0, nil, ErrProtocol, "unknown frame type 255"},
		{"unknown type before its body arrives", []byte{0, 0, 0, 50, 10}, 100, 0, nil, ErrProtocol, "unknown frame type 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(iotest.OneByteReader(bytes.NewReader(tt.stream)), tt.limit)
			got, err := readAll(r)
			if len(got) != tt.frames {
				t.Errorf("read %d frames before the error, want %d", len(got), tt.frames)
			}
			if tt.want != nil {
				if err != tt.want {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
			} else {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v (%T), want a *ProtocolError", err, err)
				}
				if pe.Code != tt.code || !strings.Contains(pe.Msg, tt.msg) {
					t.Fatalf("error %v %q, want %v containing %q", pe.Code, pe.Msg, tt.code, tt.msg)
				}
			}
			// The stream is out of step after an error: it stays failed.
			if _, _, again := r.Next(); again != err {
				t.Fatalf("Next after %v returned %v", err, again)
			}
		})
	}
}

func TestReaderPassesIOErrors(t *testing.T) {
	boom := errors.New("connection reset")
	for _, prefix := range [][]byte{nil, {0, 0}, frames(frame{FrameMsg, "abc"})[:6]} {
		r := NewReader(io.MultiReader(bytes.NewReader(prefix), iotest.ErrReader(boom)), 100)
		if _, _, err := r.Next(); !errors.Is(err, boom) {
			t.Errorf("after %d bytes: error %v, want %v", len(prefix), err, boom)
		}
	}
}

func TestReaderShrinks(t *testing.T) {
	big := 3 << 20
	stream := frames(frame{FrameMsg, strings.Repeat("b", big)}, frame{FramePing, "small"}, frame{FrameMsg, strings.Repeat("c", shrinkAbove-1)})
	r := NewReader(bytes.NewReader(stream), FrameLimit(4<<20))
	if _, body, err := r.Next(); err != nil || len(body) != big {
		t.Fatalf("big frame: %d bytes, %v", len(body), err)
	}
	if cap(r.buf) < big {
		t.Fatalf("buffer of %d bytes after a %d-byte frame", cap(r.buf), big)
	}
	if _, body, err := r.Next(); err != nil || string(body) != "small" {
		t.Fatalf("small frame: %q, %v", body, err)
	}
	if cap(r.buf) > shrinkAbove {
		t.Fatalf("buffer still %d bytes after a small frame, want at most %d", cap(r.buf), shrinkAbove)
	}
	if _, body, err := r.Next(); err != nil || len(body) != shrinkAbove-1 {
		t.Fatalf("frame below the shrink size: %d bytes, %v", len(body), err)
	}
	if cap(r.buf) > shrinkAbove {
		t.Fatalf("buffer grew to %d bytes for a frame below the shrink size", cap(r.buf))
	}
}

// TestReaderStalledFrame checks that a peer announcing a frame of the full
// limit but sending little of it does not make the reader allocate the limit.
func TestReaderStalledFrame(t *testing.T) {
	const limit = 64 << 20
	stream := append([]byte{0x04, 0, 0, 0, byte(FrameMsg)}, make([]byte, 100_000)...)
	r := NewReader(bytes.NewReader(stream), limit)
	if _, _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("error %v, want io.ErrUnexpectedEOF", err)
	}
	if cap(r.buf) > 1<<20 {
		t.Fatalf("buffer of %d bytes for 100000 bytes received", cap(r.buf))
	}
}

func TestAppendFrame(t *testing.T) {
	got := AppendFrame([]byte("x"), FramePong, []byte("ab"))
	if want := []byte{'x', 0, 0, 0, 3, 5, 'a', 'b'}; !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x, want %x", got, want)
	}
}

func TestFrameLimit(t *testing.T) {
	tests := []struct{ payload, want int }{
		{-1, Overhead + HeaderLen},
		{0, Overhead + HeaderLen},
		{1 << 20, 1<<20 + Overhead + HeaderLen},
		{64 << 20, 64<<20 + Overhead + HeaderLen},
		{math.MaxInt32, int(min(uint64(math.MaxInt32)+Overhead+HeaderLen, math.MaxUint32, uint64(math.MaxInt)))},
		{math.MaxInt, int(min(uint64(math.MaxUint32), uint64(math.MaxInt)))},
	}
	for _, tt := range tests {
		if got := FrameLimit(tt.payload); got != tt.want {
			t.Errorf("FrameLimit(%d) = %d, want %d", tt.payload, got, tt.want)
		}
	}
	// A message with the largest headers the ABI allows, a subject of the
	// longest length and two node ids fits the limit for its payload.
	e := Envelope{Version: 1, ID: math.MaxUint64, Kind: KindRequest, From: nodeA, To: nodeB,
		Subject: strings.Repeat("s", 1024), Deadline: math.MaxUint64, Hops: math.MaxUint32, Relays: 255,
		Headers: map[string]string{"h": strings.Repeat("v", 64<<10-8)}, Payload: make([]byte, 1000)}
	if n := len(AppendEnvelope(nil, &e)) - 4; n > FrameLimit(len(e.Payload)) {
		t.Fatalf("a legal message needs a frame of %d bytes, FrameLimit gives %d", n, FrameLimit(len(e.Payload)))
	}
}

func TestFrameTypeString(t *testing.T) {
	for ft, want := range map[FrameType]string{FrameHello: "hello", FrameGoAway: "goaway", FrameMsg: "msg", FrameMembers: "members", FrameAck: "ack", 0: "frame(0)", 9: "frame(9)", 200: "frame(200)"} {
		if got := ft.String(); got != want {
			t.Errorf("FrameType(%d).String() = %q, want %q", uint8(ft), got, want)
		}
	}
}
