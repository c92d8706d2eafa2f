package main

import (
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/host/control"
)

// TestPluginsTransport: a transport plugin adds what it reaches, its
// counters and its connections below the plugins table.
func TestPluginsTransport(t *testing.T) {
	b, addr := node(t)
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	b.PluginList = []control.PluginInfo{
		{Name: "gw", Kind: "transport", Version: "abcd", State: "serving", Instances: 2, Calls: 4,
			Transport: &control.TransportInfo{
				Dial: []string{"tcp://127.0.0.1:6379"}, Listening: []string{"tcp://127.0.0.1:7500"},
				Conns: []control.TransportConn{{ID: 3, Entry: "accept[0] tcp://127.0.0.1:7500", Remote: "127.0.0.1:5000", Instance: 1,
					BytesIn: 10, BytesOut: 20, Since: since}},
				BytesIn: 10, BytesOut: 20, MessagesIn: 2, MessagesOut: 4, Dropped: 1, Errors: 5, Reconnects: 6, InstanceFailures: 7,
			}},
	}
	r := runCLI(t, "", "plugins", "--control", addr)
	want := "" +
		"NAME  KIND       VERSION  INSTANCES  CALLS  ERRORS  STATE\n" +
		"gw    transport  abcd     2          4      0       serving\n" +
		"\n" +
		"TRANSPORT  REACHES                                                 CONNS  BYTES_IN  BYTES_OUT  MSGS_IN  MSGS_OUT  DROPPED  ERRORS  RECONNECTS  FAILURES\n" +
		"gw         dial tcp://127.0.0.1:6379, accept tcp://127.0.0.1:7500  1      10        20         2        4         1        5       6           7\n" +
		"\n" +
		"TRANSPORT  CONN  ENTRY                           REMOTE          INSTANCE  BYTES_IN  BYTES_OUT  SINCE\n" +
		"gw         3     accept[0] tcp://127.0.0.1:7500  127.0.0.1:5000  1         10        20         2025-01-02T03:04:05Z\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, table:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
}
