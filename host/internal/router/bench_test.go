package router

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// benchRouter is a router with 100 owners, each serving two services (one
// nested in the other) and two topic patterns, so lookups run against tables
// of a realistic size rather than a single entry.
func benchRouter(b *testing.B) *Router {
	r := newRouter(b, Options{})
	for i := 0; i < 100; i++ {
		mustSetRoutes(b, r, fmt.Sprintf("o%d", i), nopEndpoint{},
			[]string{fmt.Sprintf("svc%d", i), fmt.Sprintf("svc%d.v2", i)},
			[]string{fmt.Sprintf("ev%d.>", i), fmt.Sprintf("ev.*.%d", i)})
	}
	return r
}

var sink []byte

// BenchmarkCall measures routing a request to a trivial endpoint and reports
// x-direct: its cost relative to calling that endpoint directly through the
// Endpoint interface in the same process, i.e. what the router adds.
func BenchmarkCall(b *testing.B) {
	r := benchRouter(b)
	ctx := context.Background()
	m := &message.Message{Kind: abi.KindRequest, Subject: "svc42.v2.method", Payload: []byte("ping"),
		Deadline: time.Now().Add(time.Hour)}
	var ep Endpoint = nopEndpoint{}

	b.ReportAllocs()
	for b.Loop() {
		reply, err := r.Call(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		sink = reply
	}
	routed := b.Elapsed()

	// The baseline runs the same number of iterations after the timed loop,
	// so both see the same machine load.
	start := time.Now()
	for i := 0; i < b.N; i++ {
		reply, err := ep.Request(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		sink = reply
	}
	direct := time.Since(start)
	if direct > 0 {
		b.ReportMetric(float64(routed)/float64(direct), "x-direct")
	}
}

// BenchmarkCallParallel is BenchmarkCall from every P at once: the lock-free
// snapshot must not serialise callers.
func BenchmarkCallParallel(b *testing.B) {
	r := benchRouter(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		m := &message.Message{Kind: abi.KindRequest, Subject: "svc42.v2.method", Payload: []byte("ping")}
		for pb.Next() {
			if _, err := r.Call(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublish fans one event out over 200 endpoint patterns and one
// subscription; the event matches one endpoint and the subscription.
func BenchmarkPublish(b *testing.B) {
	r := benchRouter(b)
	s, err := r.Subscribe("ev.>", 1024)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		for range s.C() {
		}
	}()
	ctx := context.Background()
	m := &message.Message{Kind: abi.KindEvent, Subject: "ev.x.42", Payload: []byte("e")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
