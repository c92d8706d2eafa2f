package hosttest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisOptions configure StartRedis.
type RedisOptions struct {
	// Password, when set, is required by the server (requirepass).
	Password string
	// TLSCert, TLSKey and TLSCA, when all set, make the server speak TLS
	// only (tls-port; the plain port is off). The files are PEM.
	TLSCert, TLSKey, TLSCA string
}

// Redis is a redis-server process a test started on loopback: a free port,
// a temporary directory, no persistence. It is stopped when the test ends.
type Redis struct {
	// Addr is host:port of the server, kept across Restart.
	Addr string
	t    testing.TB
	opts RedisOptions
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	out    *SyncBuffer
}

// RequireRedis returns the path of redis-server, or skips the test with a
// message when it is not installed; under CI=true it fails instead, since
// scripts/install-toolchains.sh installs it there.
func RequireRedis(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err == nil {
		return path
	}
	msg := "redis-server is not installed (Debian package redis-server; scripts/install-toolchains.sh installs it as root)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + ": CI=true runs must not skip")
	}
	t.Skip(msg + ": skipped")
	return ""
}

// StartRedis starts a redis-server on 127.0.0.1 and a free port and waits
// until it accepts connections. It skips the test when redis-server is
// missing (RequireRedis).
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	RequireRedis(t)
	r := &Redis{t: t, opts: opts, dir: t.TempDir()}
	var err error
	for range 5 { // a free port can be taken between probe and bind
		var port int
		port, err = freePort()
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		if err = r.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Kill)
	return r
}

// start runs the server on r.Addr and waits until it answers.
func (r *Redis) start() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	args := []string{
		"--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", "", "--protected-mode", "no",
	}
	if r.opts.TLSCert != "" {
		args = append(args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", r.opts.TLSCert, "--tls-key-file", r.opts.TLSKey,
			"--tls-ca-cert-file", r.opts.TLSCA, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", port)
	}
	if r.opts.Password != "" {
		args = append(args, "--requirepass", r.opts.Password)
	}
	cmd := exec.Command("redis-server", args...)
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redis: start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	ready := "Ready to accept connections"
	err := Poll(10*time.Second, 10*time.Millisecond, func() error {
		select {
		case <-exited:
			return errExited
		default:
		}
		if !strings.Contains(out.String(), ready) {
			return fmt.Errorf("redis-server on %s: no %q in its log yet", r.Addr, ready)
		}
		return nil
	})
	if err != nil {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("redis-server on %s did not start: %w\n%s", r.Addr, err, lastLines(out.String(), 10))
	}
	r.mu.Lock()
	r.cmd, r.exited, r.out = cmd, exited, out
	r.mu.Unlock()
	return nil
}

var errExited = errors.New("redis-server exited")

// Kill stops the server at once (SIGKILL) and waits for it; a no-op when
// it is not running.
func (r *Redis) Kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill() // SIGKILL ends a stopped (SIGSTOP) process too
	<-exited
}

// Signal sends sig to the running server (SIGSTOP stalls it, SIGCONT
// resumes it); a no-op when it is not running.
func (r *Redis) Signal(sig os.Signal) {
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(sig)
	}
}

// Restart starts the server again on the same address, after Kill.
func (r *Redis) Restart() {
	r.t.Helper()
	var err error
	// The port may linger for a moment after the kill: a bounded retry.
	for range 20 {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatal(err)
}

// Log is what the server wrote so far (its current run).
func (r *Redis) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		return ""
	}
	return r.out.String()
}

// Command sends one command to a plain (not TLS) server on a new
// connection, after AUTH when the server has a password, and returns its
// reply's first line (a simple string, error or integer: enough for
// PUBLISH or CLIENT KILL in tests).
func (r *Redis) Command(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", r.Addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cmds := [][]string{args}
	if r.opts.Password != "" {
		cmds = [][]string{{"AUTH", r.opts.Password}, args}
	}
	var b strings.Builder
	for _, cmd := range cmds {
		b.WriteString("*" + strconv.Itoa(len(cmd)) + "\r\n")
		for _, a := range cmd {
			b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
		}
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", fmt.Errorf("redis %s: %w", r.Addr, err)
	}
	br := bufio.NewReader(c)
	var line string
	for range cmds {
		if line, err = br.ReadString('\n'); err != nil {
			return "", fmt.Errorf("redis %s: %w", r.Addr, err)
		}
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TLSFiles writes a self-signed certificate for 127.0.0.1 and localhost
// (it is its own CA) and its key to dir as PEM files, and returns their
// paths: the server's certificate and key, and the CA a client trusts.
func TLSFiles(t testing.TB, dir string) (cert, key, ca string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hosttest"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cert, "CERTIFICATE", der)
	write(key, "EC PRIVATE KEY", kder)
	return cert, key, cert
}
