package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/internal/hosttest"
	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestSubscribeAcknowledgedAcrossRelay is issue 11's case: a control-API
// subscriber on a, in the chain a - b - c, must get the first event a
// publisher on c sends right after the subscription's 200. Each trial
// subscribes to a topic nobody has subscribed to before, so that the
// interest really changes, and publishes once, at once; before
// subscriptions were acknowledged 9 of 10 such first events were lost,
// because c learnt of the new topic up to ~100 ms after the 200.
func TestSubscribeAcknowledgedAcrossRelay(t *testing.T) {
	// The cluster's chain: b dials c, a dials b.
	cl := cluster.Start(t, cluster.Options{Names: []string{"c", "b", "a"}})
	a, c := cl.Host("a"), cl.Host("c")
	hosttest.CheckFor(t, 15*time.Second, hosttest.Describe("a and c know each other through b", func() error {
		for _, v := range []struct {
			h    *cluster.Host
			peer string
		}{{a, "c"}, {c, "a"}} {
			ps, err := v.h.Peers()
			if err != nil {
				return err
			}
			st := ""
			for _, p := range ps {
				if p.Name == v.peer {
					st = string(p.State) + " via " + p.Via
				}
			}
			if st != "relayed via b" {
				return fmt.Errorf("%s sees %s as %q", v.h.Name, v.peer, st)
			}
		}
		return nil
	}))
	cc := c.Client
	httpc := &http.Client{}
	const trials = 12
	for i := range trials {
		topic := fmt.Sprintf("trial%d.first", i)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Node().ControlAddr()+"/v1/subscribe/"+url.PathEscape(topic), nil)
		resp, err := httpc.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("trial %d: subscribe: %v", i, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			cancel()
			t.Fatalf("trial %d: subscribe answered %s", i, resp.Status)
		}
		// The 200 says how many hosts confirmed: b, and c behind it.
		confirmed, err := strconv.Atoi(resp.Header.Get(control.HeaderConfirmed))
		if err != nil || confirmed != 2 || resp.Header.Get(control.HeaderUnconfirmed) != "0" {
			t.Errorf("trial %d: %s %q, %s %q; want 2 and 0", i, control.HeaderConfirmed, resp.Header.Get(control.HeaderConfirmed),
				control.HeaderUnconfirmed, resp.Header.Get(control.HeaderUnconfirmed))
		}
		n, err := cc.Publish(ctx, topic, []byte(fmt.Sprint(i)), nil)
		if err != nil {
			t.Fatalf("trial %d: publish on c: %v", i, err)
		}
		line := make(chan string, 1)
		go func() {
			s := bufio.NewScanner(resp.Body)
			if s.Scan() {
				line <- s.Text()
			}
			close(line)
		}()
		select {
		case l, ok := <-line:
			var m control.StreamMessage
			if !ok || json.Unmarshal([]byte(l), &m) != nil || m.Subject != topic || string(m.Payload) != fmt.Sprint(i) {
				t.Errorf("trial %d: first stream line %q (stream open: %v), want the event on %s; c counted %d receivers", i, l, ok, topic, n)
			}
		case <-time.After(3 * time.Second):
			t.Errorf("trial %d: the first event published on c after the 200 never reached a (c counted %d receivers)", i, n)
		}
		cancel()
		resp.Body.Close()
	}
}
