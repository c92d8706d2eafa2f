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
	// a, the caller, times its calls to b too: one series for all remote
	// calls (a caller's subjects are not labels).
	if v := value(fa, "pycomms_remote_call_duration_seconds"); v < 11 {
		t.Errorf("a observed %v remote calls, want at least 11", v)
	}
	if v := value(fa, "pycomms_call_duration_seconds"); v != -1 {
		t.Errorf("a, which serves nothing, has a local call series (%v)", v)
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
	// A call with nobody left to serve it is a remote call that failed.
	if _, err := a.Call("echo.upper", "hi", 2*time.Second); err == nil {
		t.Fatal("a call to echo with b gone succeeded")
	}
	fa3 := scrapeHost(t, a)
	errs := 0.0
	if f := fa3["pycomms_remote_call_errors_total"]; f != nil {
		for _, m := range f.Metric {
			errs += m.Counter.GetValue()
		}
	}
	if errs < 1 {
		t.Errorf("remote call errors after a failed call to a gone host: %v, want at least 1", errs)
	}
}

// peerSeries is what one peer's link series say on a scrape.
type peerSeries struct {
	bytesIn, bytesOut, msgsIn, msgsOut, dropped, opened, open float64
}

// peerSeriesOf reads the per-peer link series of the peer with id over
// tcp; found is false when none of them is there.
func peerSeriesOf(fams map[string]*dto.MetricFamily, id, name string) (s peerSeries, found bool) {
	l := []string{"peer", id, "peer_name", name, "transport", "tcp"}
	s = peerSeries{
		bytesIn: value(fams, "pycomms_peer_received_bytes_total", l...), bytesOut: value(fams, "pycomms_peer_sent_bytes_total", l...),
		msgsIn: value(fams, "pycomms_peer_received_messages_total", l...), msgsOut: value(fams, "pycomms_peer_sent_messages_total", l...),
		dropped: value(fams, "pycomms_peer_dropped_total", l...), opened: value(fams, "pycomms_peer_links_opened_total", l...),
		open: value(fams, "pycomms_peer_links_open", l...),
	}
	for _, v := range []float64{s.bytesIn, s.bytesOut, s.msgsIn, s.msgsOut, s.dropped, s.opened, s.open} {
		if v >= 0 {
			found = true
		}
	}
	return s, found
}

// hasPeer reports whether any series of fams is labelled peer=id.
func hasPeer(fams map[string]*dto.MetricFamily, id string) bool {
	for _, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "peer" && l.GetValue() == id {
					return true
				}
			}
		}
	}
	return false
}

// peerID is the id a's GET /v1/peers shows for the peer named name.
func peerID(t *testing.T, a *cluster.Host, name string) string {
	t.Helper()
	ps, err := a.Peers()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == name && p.ID != "" {
			return p.ID
		}
	}
	t.Fatalf("%s's peers do not list %s: %+v", a, name, ps)
	return ""
}

// TestMetricsPerPeer: three real hosts, a linked to b and c over TCP.
// Calls from a to each show on a as that peer's link series, labelled by
// the id GET /v1/peers shows and the peer's name. b restarts (same key):
// its series continue from where they were, the calls since the last
// scrape included, and count a second link. c leaves: once a forgets it
// (ForgetAfter), its series are gone, b's stay, and the tcp totals have
// not gone down.
func TestMetricsPerPeer(t *testing.T) {
	cl := cluster.Start(t, cluster.Options{Names: []string{"b", "c", "a"}, Topology: cluster.Full, ForgetAfter: 2 * time.Second,
		Plugins: map[string]string{"b": cluster.WatEcho("up", "echo"), "c": cluster.WatEcho("up", "shout")}})
	a, b, c := cl.Host("a"), cl.Host("b"), cl.Host("c")
	calls := func(subject string, n int) {
		t.Helper()
		for range n {
			if err := a.CallOK(subject, "hi", "HI"); err != nil {
				t.Fatal(err)
			}
		}
	}
	hosttest.CheckFor(t, 30*time.Second, hosttest.Describe("a reaches echo on b and shout on c", func() error {
		if err := a.CallOK("echo.x", "hi", "HI"); err != nil {
			return err
		}
		return a.CallOK("shout.x", "hi", "HI")
	}))
	calls("echo.x", 10)
	calls("shout.x", 20)
	idB, idC := peerID(t, a, "b"), peerID(t, a, "c")

	fa := scrapeHost(t, a)
	sb, okB := peerSeriesOf(fa, idB, "b")
	sc, okC := peerSeriesOf(fa, idC, "c")
	if !okB || !okC {
		t.Fatalf("a's /metrics has no link series for peer b (%s: %v) or c (%s: %v)", idB, okB, idC, okC)
	}
	for _, p := range []struct {
		name string
		s    peerSeries
		min  float64
	}{{"b", sb, 11}, {"c", sc, 21}} {
		if p.s.msgsIn < p.min || p.s.msgsOut < p.min || p.s.bytesIn <= 0 || p.s.bytesOut <= 0 || p.s.dropped != 0 || p.s.opened < 1 || p.s.open < 1 {
			t.Errorf("a's series for %s: %+v; want at least %v messages each way, bytes, no drops, a link opened and open", p.name, p.s, p.min)
		}
	}
	// Each peer's own calls, not the sum: c carried twice b's.
	if sc.msgsIn <= sb.msgsIn+5 {
		t.Errorf("a received %v messages from c and %v from b; c answered 10 more calls", sc.msgsIn, sb.msgsIn)
	}
	// The per-transport totals are kept, and hold at least the peers' sum.
	for _, f := range []struct {
		total, peer string
	}{
		{"pycomms_link_received_bytes_total", "pycomms_peer_received_bytes_total"},
		{"pycomms_link_sent_bytes_total", "pycomms_peer_sent_bytes_total"},
		{"pycomms_link_received_messages_total", "pycomms_peer_received_messages_total"},
		{"pycomms_link_sent_messages_total", "pycomms_peer_sent_messages_total"},
	} {
		sum := value(fa, f.peer, "peer", idB, "transport", "tcp") + value(fa, f.peer, "peer", idC, "transport", "tcp")
		if tot := value(fa, f.total, "transport", "tcp"); tot < sum {
			t.Errorf("%s{tcp} = %v, below the sum over peers of %s, %v", f.total, tot, f.peer, sum)
		}
	}

	// b restarts, after 10 calls the last scrape did not see.
	calls("echo.x", 10)
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	hosttest.CheckFor(t, 30*time.Second, hosttest.Describe("a reaches echo on the restarted b", func() error { return a.CallOK("echo.x", "hi", "HI") }))
	fa2 := scrapeHost(t, a)
	sb2, ok := peerSeriesOf(fa2, idB, "b")
	switch {
	case !ok:
		t.Fatalf("a has no series for b (%s) after b restarted", idB)
	case sb2.msgsIn < sb.msgsIn+11 || sb2.msgsOut < sb.msgsOut+11 || sb2.bytesIn <= sb.bytesIn || sb2.bytesOut <= sb.bytesOut:
		t.Errorf("a's series for b after its restart: %+v; before: %+v; want them on from there, 11 calls more", sb2, sb)
	case sb2.opened < sb.opened+1 || sb2.open < 1:
		t.Errorf("a's links to b: %v opened, %v open; want at least %v and 1", sb2.opened, sb2.open, sb.opened+1)
	}

	// c leaves and is forgotten.
	totals := map[string]float64{}
	for _, name := range []string{"pycomms_link_received_bytes_total", "pycomms_link_sent_bytes_total", "pycomms_link_received_messages_total", "pycomms_link_sent_messages_total"} {
		totals[name] = value(scrapeHost(t, a), name, "transport", "tcp")
	}
	c.Kill()
	hosttest.CheckFor(t, 30*time.Second, hosttest.Describe("a forgets c's series", func() error {
		if hasPeer(scrapeHost(t, a), idC) {
			return fmt.Errorf("series for peer %s still there", idC)
		}
		return nil
	}))
	fa3 := scrapeHost(t, a)
	for name, before := range totals {
		if v := value(fa3, name, "transport", "tcp"); v < before {
			t.Errorf("%s{tcp} went down when c was forgotten: %v, was %v", name, v, before)
		}
	}
	if s, ok := peerSeriesOf(fa3, idB, "b"); !ok || s.msgsIn < sb2.msgsIn {
		t.Errorf("b's series after c was forgotten: %+v (there: %v); want them kept, not below %v messages in", s, ok, sb2.msgsIn)
	}
}
