//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/internal/hosttest/cluster"
)

// TestAddressInUse: a node whose control, listen.tcp or listen.quic
// address another process holds exits at once with ExitListen (9, listed
// in EXITCODES.md), naming the key and the address. It exited 8 ("other"),
// a class EXITCODES.md did not connect with run.
func TestAddressInUse(t *testing.T) {
	tcpHeld, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpHeld.Close()
	udpHeld, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpHeld.Close()
	held, heldUDP := tcpHeld.Addr().String(), udpHeld.LocalAddr().String()
	doc, err := os.ReadFile("EXITCODES.md")
	if err != nil {
		t.Fatal(err)
	}
	if row := fmt.Sprintf("\n| %d | cannot listen |", exitListen); !strings.Contains(string(doc), row) {
		t.Errorf("EXITCODES.md has no row %q", row[1:])
	}

	for _, tc := range []struct {
		name, control, tcp, quic string
		key, addr                string // named in the error
	}{
		{"control", held, "", "", "control", held},
		{"listen.tcp", "127.0.0.1:0", held, "", "listen.tcp", held},
		{"listen.quic", "127.0.0.1:0", "", heldUDP, "listen.quic", heldUDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := procCluster(t, cluster.Options{Hosts: 1}).Host("a")
			h.EditConfig(func(cfg string) string {
				lines := strings.Split(cfg, "\n")
				for i, l := range lines {
					switch {
					case strings.HasPrefix(l, "control: "):
						lines[i] = fmt.Sprintf("control: %q", tc.control)
					case strings.HasPrefix(l, "listen: "):
						lines[i] = fmt.Sprintf("listen: {tcp: %q, quic: %q}", tc.tcp, tc.quic)
					}
				}
				return strings.Join(lines, "\n")
			})
			if err := h.Start(); err == nil {
				t.Fatal("the host started")
			}
			code, err := h.ExitCode()
			if err != nil {
				t.Fatal(err)
			}
			stderr := h.Logs.String()
			last := stderr
			if i := strings.LastIndex(strings.TrimSuffix(stderr, "\n"), "\n"); i >= 0 {
				last = stderr[i+1:]
			}
			if code != exitListen || !strings.HasPrefix(last, "pycomms-host: "+tc.key+": ") ||
				!strings.Contains(last, tc.addr) || !strings.Contains(last, "address already in use") {
				t.Errorf("exit %d, last line %q; want exit %d and an error naming %s and %s\nstderr:\n%s",
					code, last, exitListen, tc.key, tc.addr, stderr)
			}
		})
	}
}
