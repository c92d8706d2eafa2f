package hosttest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a mosquitto MQTT broker run by a test on loopback, on a
// free port with a config of its own in a temporary directory. It is
// stopped when the test ends.
type Mosquitto struct {
	// Addr is host:port of its listener (127.0.0.1).
	Addr string

	t    testing.TB
	conf string
	log  *SyncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// MosquittoOptions configures StartMosquitto.
type MosquittoOptions struct {
	// Users, when not empty, are the only clients let in (user name to
	// password, written with mosquitto_passwd); otherwise anonymous clients
	// are allowed.
	Users map[string]string
	// Verbose logs every packet (log_type all), so that a test can read
	// what each client sent in Log: "Received PUBACK from ...".
	Verbose bool
}

// NeedTool returns the path of a command the test needs: in CI
// (CI=true) a missing one fails the test, elsewhere it skips it, naming
// the script that installs it.
func NeedTool(t testing.TB, name string, alt ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, a := range alt {
		if st, err := os.Stat(a); err == nil && !st.IsDir() {
			return a
		}
	}
	msg := name + " not found: install it with scripts/install-toolchains.sh"
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (required when CI=true)", msg)
	}
	t.Skip(msg)
	return ""
}

// StartMosquitto starts a broker on a free loopback port and waits until
// it accepts connections.
func StartMosquitto(t testing.TB, opt MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := NeedTool(t, "mosquitto", "/usr/sbin/mosquitto")
	dir := t.TempDir()
	m := &Mosquitto{t: t, log: &SyncBuffer{}}
	auth := "allow_anonymous true\n"
	if len(opt.Users) > 0 {
		passwd := NeedTool(t, "mosquitto_passwd")
		file := filepath.Join(dir, "passwd")
		for u, p := range opt.Users {
			args := []string{"-b", file, u, p}
			if _, err := os.Stat(file); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd %s: %v\n%s", u, err, out)
			}
		}
		auth = "allow_anonymous false\npassword_file " + file + "\n"
	}
	// A free port, found by listening on port 0: another process may take
	// it before mosquitto binds it, so try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		m.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		m.conf = filepath.Join(dir, "mosquitto.conf")
		logTypes := "log_type error\nlog_type warning\nlog_type notice\n"
		if opt.Verbose {
			logTypes = "log_type all\n"
		}
		if os.Getuid() == 0 {
			// As root mosquitto drops to the user "mosquitto", which cannot
			// read a password file in the test's private temp dir.
			auth += "user root\n"
		}
		conf := fmt.Sprintf("listener %d 127.0.0.1\n%spersistence false\nlog_dest stdout\n%s", port, auth, logTypes)
		if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = m.start(bin); lastErr == nil {
			t.Cleanup(m.Close)
			return m
		}
	}
	t.Fatalf("mosquitto did not start: %v", lastErr)
	return nil
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago,
// for a server the tests start (mosquitto, redis-server).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs mosquitto on m.conf and waits until it accepts.
func (m *Mosquitto) start(bin string) error {
	cmd := exec.Command(bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	err := Poll(10*time.Second, 20*time.Millisecond, func() error {
		select {
		case <-done:
			return errors.New("mosquitto exited")
		default:
		}
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if err != nil {
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("mosquitto on %s: %w\n%s", m.Addr, err, m.log.String())
	}
	return nil
}

// Log is what mosquitto printed so far.
func (m *Mosquitto) Log() string { return m.log.String() }

// Signal sends sig to the broker (SIGSTOP stalls it, SIGCONT resumes it).
func (m *Mosquitto) Signal(sig syscall.Signal) {
	m.t.Helper()
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if cmd == nil {
		m.t.Fatal("mosquitto is not running")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		m.t.Fatalf("signalling mosquitto: %v", err)
	}
}

// Kill ends the broker at once (SIGKILL) and waits for it to exit.
func (m *Mosquitto) Kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once continued
	cmd.Process.Kill()
	<-done
}

// Restart starts the broker again on the same port and config after Kill.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	bin := NeedTool(m.t, "mosquitto", "/usr/sbin/mosquitto")
	var err error
	for range 20 { // the port may be in TIME_WAIT a moment
		if err = m.start(bin); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("restarting mosquitto: %v", err)
}

// Close stops the broker (Cleanup calls it).
func (m *Mosquitto) Close() { m.Kill() }

// MosquittoPub publishes one message with mosquitto_pub (MQTT 3.1.1);
// extra are further arguments (-q 1, -u, -P).
func MosquittoPub(t testing.TB, addr, topic, payload string, extra ...string) {
	t.Helper()
	bin := NeedTool(t, "mosquitto_pub")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	args := append([]string{"-h", host, "-p", port, "-V", "mqttv311", "-t", topic, "-m", payload}, extra...)
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

// MosquittoSub runs mosquitto_sub on addr until the test ends and sends
// each message it receives on the returned channel as "QOS TOPIC PAYLOAD"
// (QOS: the QoS it was delivered at, 0 or 1).
// It returns once the subscription is in place: mosquitto_sub has
// connected and the broker logged nothing against it, judged by a
// message published by the helper itself on a probe topic arriving.
func MosquittoSub(t testing.TB, addr, filter string, extra ...string) <-chan string {
	t.Helper()
	bin := NeedTool(t, "mosquitto_sub")
	host, port, _ := net.SplitHostPort(addr)
	probe := fmt.Sprintf("pycomms-test-probe/%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"-h", host, "-p", port, "-V", "mqttv311", "-F", "%q %t %p", "-t", filter, "-t", probe}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	lines := make(chan string, 64)
	ready := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if _, rest, _ := strings.Cut(line, " "); strings.HasPrefix(rest, probe+" ") {
				select {
				case <-ready:
				default:
					close(ready)
				}
				continue
			}
			lines <- line
		}
	}()
	t.Cleanup(func() { cancel(); cmd.Wait() })
	pubExtra := []string{}
	for i := 0; i+1 < len(extra); i++ {
		if extra[i] == "-u" || extra[i] == "-P" {
			pubExtra = append(pubExtra, extra[i], extra[i+1])
		}
	}
	err = Poll(15*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-ready:
			return nil
		default:
		}
		MosquittoPub(t, addr, probe, "probe", pubExtra...)
		return errors.New("mosquitto_sub has not received the probe yet: " + stderr.String())
	})
	if err != nil {
		t.Fatalf("mosquitto_sub -t %s on %s: %v", filter, addr, err)
	}
	return lines
}
