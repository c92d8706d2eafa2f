package router

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// promObserver is what the node's metrics observe per call (host/node
// metrics.go): a histogram observation and, on error, a counter.
type promObserver struct {
	h    prometheus.Observer
	errs *prometheus.CounterVec
}

func (o promObserver) Observe(start time.Time, err error) {
	o.h.Observe(time.Since(start).Seconds())
	if err != nil {
		o.errs.WithLabelValues(message.StatusOf(err).String()).Inc()
	}
}

// BenchmarkCallObserve measures what the call observer costs on the call
// path: the same routed call with no observer and with the node's
// Prometheus histogram, alternating in batches of 256 calls so that both
// see the same machine load. It reports ns per call of each and their
// ratio (x-observed).
func BenchmarkCallObserve(b *testing.B) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d", Buckets: prometheus.DefBuckets}, []string{"plugin", "service"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"plugin", "service", "status"})
	observe := func(owner, service string) CallObserver {
		return promObserver{h: h.WithLabelValues(owner, service), errs: errs.MustCurryWith(prometheus.Labels{"plugin": owner, "service": service})}
	}
	build := func(opts Options) *Router {
		r := newRouter(b, opts)
		for i := 0; i < 100; i++ {
			mustSetRoutes(b, r, fmt.Sprintf("o%d", i), nopEndpoint{},
				[]string{fmt.Sprintf("svc%d", i), fmt.Sprintf("svc%d.v2", i)}, nil)
		}
		return r
	}
	off, on := build(Options{}), build(Options{Observe: observe})
	ctx := context.Background()
	m := &message.Message{Kind: abi.KindRequest, Subject: "svc42.v2.method", Payload: []byte("ping"),
		Deadline: time.Now().Add(time.Hour)}
	const batch = 256
	var tOff, tOn time.Duration
	run := func(r *Router) time.Duration {
		start := time.Now()
		for range batch {
			reply, err := r.Call(ctx, m)
			if err != nil {
				b.Fatal(err)
			}
			sink = reply
		}
		return time.Since(start)
	}
	b.ReportAllocs()
	for b.Loop() {
		tOff += run(off)
		tOn += run(on)
	}
	n := float64(b.N) * batch
	b.ReportMetric(float64(tOff.Nanoseconds())/n, "ns-off")
	b.ReportMetric(float64(tOn.Nanoseconds())/n, "ns-on")
	b.ReportMetric(float64(tOn)/float64(tOff), "x-observed")
}
