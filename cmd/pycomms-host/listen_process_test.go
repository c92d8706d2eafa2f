//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runHostToExit runs `pycomms-host run -c cfg` as a real process (this test
// binary, see TestMain) and waits, at most 60 s, for it to exit on its
// own; it returns the exit code and stderr.
func runHostToExit(t *testing.T, cfg string) (int, string) {
	t.Helper()
	cmd := exec.Command(hostBinary(t), "run", "-c", cfg)
	cmd.Dir = filepath.Dir(cfg)
	env := []string{asHostEnv + "=1", asHostPPIDEnv + "=" + strconv.Itoa(os.Getpid())}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYCOMMS_") && !strings.HasPrefix(kv, "GO_TEST_PYCOMMS_HOST_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("wait: %v", err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("run did not exit within 60s; stderr:\n%s", stderr.String())
	}
	return 0, ""
}

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
			dir := t.TempDir()
			cfg := filepath.Join(dir, "pycomms.yaml")
			text := fmt.Sprintf("control: %q\nlisten: {tcp: %q, quic: %q}\ndata_dir: data\ncache_dir: cache\nplugins: []\n",
				tc.control, tc.tcp, tc.quic)
			if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stderr := runHostToExit(t, cfg)
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
