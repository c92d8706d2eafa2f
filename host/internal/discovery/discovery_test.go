package discovery

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// The tests in this file never open a socket: Start refuses the options
// before it gets that far. The tests that send mDNS are in
// netns_linux_test.go and run only inside network namespaces.

var goodSelf = Record{ID: testID, Name: "a", TCPPort: 7400, QUICPort: 7400, MinProto: 1, MaxProto: 1}

// noSuchIface is an interface that does not exist: index 0 would mean
// "every interface" to net.Interface.Addrs, so a huge index is used.
var noSuchIface = net.Interface{Index: 1 << 30, Name: "pcd-none0", Flags: net.FlagUp | net.FlagMulticast}

func TestStartRefusesNoInterfaces(t *testing.T) {
	for _, ifs := range [][]net.Interface{nil, {}} {
		s, err := Start(Options{Self: goodSelf, Interfaces: ifs})
		if err == nil {
			s.Close()
			t.Fatal("Start with no interfaces succeeded")
		}
		if !strings.Contains(err.Error(), "no interfaces given") || !strings.Contains(err.Error(), "MulticastInterfaces") {
			t.Errorf("error %q does not say that interfaces must be given", err)
		}
	}
}

func TestStartRefusesBadOptions(t *testing.T) {
	bad := goodSelf
	bad.Name = "has space"
	noPorts := goodSelf
	noPorts.TCPPort, noPorts.QUICPort = 0, 0
	negPort := goodSelf
	negPort.TCPPort = -5
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"bad self", Options{Self: bad, Interfaces: []net.Interface{noSuchIface}}, `"name"`},
		{"zero self", Options{Interfaces: []net.Interface{noSuchIface}}, `TXT key "id": value ""`},
		{"no ports", Options{Self: noPorts, Interfaces: []net.Interface{noSuchIface}}, "both missing"},
		{"negative port", Options{Self: negPort, Interfaces: []net.Interface{noSuchIface}}, `"-5"`},
		{"negative interval", Options{Self: goodSelf, Interfaces: []net.Interface{noSuchIface}, Interval: -time.Second}, "negative"},
		{"no IPv4 address", Options{Self: goodSelf, Interfaces: []net.Interface{noSuchIface}}, "pcd-none0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Logger = slog.New(slog.DiscardHandler)
			s, err := Start(tt.o)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestMulticastInterfaces(t *testing.T) {
	ifs, err := MulticastInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
			t.Errorf("interface %s has flags %v", ifi.Name, ifi.Flags)
		}
	}
}
