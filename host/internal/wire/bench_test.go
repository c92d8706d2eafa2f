package wire

import (
	"bytes"
	"testing"
	"time"
)

// typicalRequest is what most envelopes look like: a request between two
// nodes with a short subject, one trace header and a small payload.
func typicalRequest() Envelope {
	return Envelope{
		Version:  1,
		ID:       48_213,
		Kind:     KindRequest,
		From:     nodeA,
		To:       nodeB,
		Subject:  "orders.create",
		Headers:  map[string]string{"trace-id": "4bf92f3577b34da6a3ce929d0e0e4736"},
		Deadline: 2_000_000,
		Payload:  bytes.Repeat([]byte("x"), 64),
		Hops:     1,
	}
}

// BenchmarkEnvelope measures one encode and one decode of a typical
// request. After the measured loop it times fxamacker's reflection-based
// Marshal and Unmarshal of the same map, the baseline the hand-written
// codec exists to beat, and reports it with the speed-up ("x-fxamacker":
// how many times faster). testing.Benchmark cannot run inside a benchmark,
// so the baseline is timed by hand.
func BenchmarkEnvelope(b *testing.B) {
	e := typicalRequest()
	buf := make([]byte, 0, 1024)
	var got Envelope
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEnvelope(buf[:0], &e)
		if err := DecodeEnvelope(buf[HeaderLen:], &got); err != nil {
			b.Fatal(err)
		}
	}
	ours := float64(b.Elapsed().Nanoseconds()) / float64(b.N)

	fxIn := toFx(&e)
	var fxOut fxEnvelope
	fxamacker := func() {
		data, err := fxDeterministic.Marshal(fxIn)
		if err != nil {
			b.Fatal(err)
		}
		fxOut = fxEnvelope{}
		if err := fxStrict.Unmarshal(data, &fxOut); err != nil {
			b.Fatal(err)
		}
	}
	n, start := 0, time.Now()
	for ; n < b.N && (n < 1000 || time.Since(start) < 500*time.Millisecond); n++ {
		fxamacker()
	}
	fx := float64(time.Since(start).Nanoseconds()) / float64(n)
	b.ReportMetric(fx, "fxamacker-ns/op")
	b.ReportMetric(testing.AllocsPerRun(100, fxamacker), "fxamacker-allocs/op")
	b.ReportMetric(fx/ours, "x-fxamacker")
}

func BenchmarkAppendEnvelope(b *testing.B) {
	e := typicalRequest()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEnvelope(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	e := typicalRequest()
	body := AppendEnvelope(nil, &e)[HeaderLen:]
	var got Envelope
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := DecodeEnvelope(body, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// loop replays one stream forever.
type loop struct {
	data []byte
	off  int
}

func (l *loop) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// BenchmarkReader reads typical request frames from a stream, to show the
// framing cost next to the envelope's.
func BenchmarkReader(b *testing.B) {
	e := typicalRequest()
	frame := AppendEnvelope(nil, &e)
	r := NewReader(&loop{data: frame}, FrameLimit(1<<20))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
