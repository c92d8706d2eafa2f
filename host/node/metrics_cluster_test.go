package node_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// scrapeHost reads a host's /metrics (no token) with the Prometheus text
// parser.
func scrapeHost(t *testing.T, h *cluster.Host) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + h.ControlAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /metrics: HTTP %d", h, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: parse /metrics: %v", h, err)
	}
	return fams
}

// value returns the counter, gauge or histogram count of name whose
// labels include want; -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetricsLinkTraffic: two real hosts over TCP. Calls from a to b's
// plugin show on b as observed calls of that plugin and service, and on a
// as bytes and messages on a tcp link; when b goes, a's link counters keep
// everything the closed link carried, up to its end (folded in, not
// dropped with it), and the open-links gauge goes to 0.
func TestMetricsLinkTraffic(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Names: []string{"b", "a"}, // a dials b
		Plugins: map[string]string{"b": fmt.Sprintf("  - {name: upper, path: %q, services: [echo], instances: 1}\n",
			cluster.TestdataPath("wat", "echo.wasm"))}})
	a, b := cl.Host("a"), cl.Host("b")
	hosttest.CheckFor(t, 30*time.Second, hosttest.Describe("a reaches echo on b", func() error { return a.CallOK("echo.upper", "hi", "HI") }))
	for range 10 {
		if err := a.CallOK("echo.upper", "hi", "HI"); err != nil {
			t.Fatal(err)
		}
	}
	fb := scrapeHost(t, b)
	if v := value(fb, "pycomms_call_duration_seconds", "plugin", "upper", "service", "echo"); v < 11 {
		t.Errorf("b observed %v calls of upper/echo, want at least 11", v)
	}
	fa := scrapeHost(t, a)
	sent, recv := value(fa, "pycomms_link_sent_bytes_total", "transport", "tcp"), value(fa, "pycomms_link_received_bytes_total", "transport", "tcp")
	msgs := value(fa, "pycomms_link_received_messages_total", "transport", "tcp")
	if sent <= 0 || recv <= 0 || msgs < 11 {
		t.Errorf("a's tcp links: sent %v bytes, received %v bytes and %v messages; want > 0, > 0, >= 11", sent, recv, msgs)
	}
	if v := value(fa, "pycomms_links_open", "transport", "tcp"); v != 1 {
		t.Errorf("a's open tcp links = %v, want 1", v)
	}

	// Traffic after the last scrape, then the link closes: only folding
	// the closed link's final counts into the total shows it (a counter
	// that merely never goes back would stay at the scraped value).
	for range 10 {
		if err := a.CallOK("echo.upper", "hi", "HI"); err != nil {
			t.Fatal(err)
		}
	}
	b.Kill()
	hosttest.CheckFor(t, 30*time.Second, hosttest.Describe("a's link to b closed", func() error {
		if v := value(scrapeHost(t, a), "pycomms_links_open", "transport", "tcp"); v != 0 {
			return fmt.Errorf("open tcp links %v", v)
		}
		return nil
	}))
	fa2 := scrapeHost(t, a)
	for _, c := range []struct {
		name string
		min  float64
	}{
		{"pycomms_link_sent_bytes_total", sent + 10},
		{"pycomms_link_received_bytes_total", recv + 10},
		{"pycomms_link_received_messages_total", msgs + 10},
	} {
		if v := value(fa2, c.name, "transport", "tcp"); v < c.min {
			t.Errorf("after the link closed: %s = %v, want at least %v (10 more calls since the last scrape)", c.name, v, c.min)
		}
	}
	if v := value(fa2, "pycomms_links_opened_total", "transport", "tcp"); v < 1 {
		t.Errorf("links opened = %v, want at least 1", v)
	}
}
