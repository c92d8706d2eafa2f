package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPolicyOpen(t *testing.T) {
	pool := x509.NewCertPool()
	tests := []struct {
		name string
		p    Policy
		want bool
	}{
		{"zero", Policy{}, true},
		{"empty secret and nodes", Policy{Secret: []byte{}, Nodes: map[ID]bool{}}, true},
		{"secret", Policy{Secret: []byte("s")}, false},
		{"nodes", Policy{Nodes: map[ID]bool{"a": true}}, false},
		{"nodes all false", Policy{Nodes: map[ID]bool{"a": false}}, false},
		{"ca", Policy{CA: pool}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Open(); got != tt.want {
				t.Fatalf("Open() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTLSConfigs(t *testing.T) {
	node := newNode(t)
	var p Policy
	for name, c := range map[string]*tls.Config{"server": p.ServerTLS(node), "client": p.ClientTLS(node)} {
		if c.MinVersion != tls.VersionTLS13 || c.MaxVersion != tls.VersionTLS13 {
			t.Errorf("%s: versions %x..%x, want TLS 1.3 only", name, c.MinVersion, c.MaxVersion)
		}
		if len(c.NextProtos) != 1 || c.NextProtos[0] != ALPN {
			t.Errorf("%s: NextProtos = %q, want [%q]", name, c.NextProtos, ALPN)
		}
		if c.VerifyConnection == nil {
			t.Errorf("%s: no VerifyConnection", name)
		}
	}
	if c := p.ServerTLS(node); c.ClientAuth != tls.RequireAnyClientCert {
		t.Errorf("server ClientAuth = %v, want RequireAnyClientCert", c.ClientAuth)
	}
	if c := p.ClientTLS(node); !c.InsecureSkipVerify {
		t.Error("client must skip host-name verification")
	}
}

// TestHandshake runs real TLS 1.3 handshakes over loopback TCP for each
// trust mode. A refusal is expected on one side with a known message; the
// other side must fail too, at the latest on its first read.
func TestHandshake(t *testing.T) {
	ca := newCA(t, "cluster ca", newEd25519(t))
	inter := ca.issueCA(t, "cluster intermediate")
	other := newCA(t, "other ca", newECDSA(t))

	a, b, c := newNode(t), newNode(t), newNode(t)
	aCA := withCert(t, a, ca.issue(t, a.Key.Public()))
	bCA := withCert(t, b, ca.issue(t, b.Key.Public()))
	bInter := withCert(t, b, inter.issue(t, b.Key.Public()), inter.cert.Raw)
	bOther := withCert(t, b, other.issue(t, b.Key.Public()))
	bExpired := withSelfSigned(t, b, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	bFuture := withSelfSigned(t, b, time.Now().Add(24*time.Hour), time.Now().Add(48*time.Hour))
	ecCert := ecdsaCert(t)

	caPool := x509.NewCertPool()
	caPool.AddCert(ca.cert)
	pin := func(ids ...ID) Policy {
		m := map[ID]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return Policy{Nodes: m}
	}
	open := Policy{}
	caMode := Policy{CA: caPool}
	caAndPin := Policy{CA: caPool, Nodes: map[ID]bool{a.ID: true}}

	tests := []struct {
		name       string
		srv        *Identity
		srvPolicy  Policy
		cli        *Identity
		cliPolicy  Policy
		cliTweak   func(*tls.Config)
		wantSrvErr string // the server refuses the client with this
		wantCliErr string // the client refuses the server with this
	}{
		{name: "open both ways", srv: a, srvPolicy: open, cli: b, cliPolicy: open},
		{name: "server pins the client", srv: a, srvPolicy: pin(b.ID), cli: b, cliPolicy: open},
		{name: "client pins the server", srv: a, srvPolicy: open, cli: b, cliPolicy: pin(a.ID)},
		{name: "both pin each other", srv: a, srvPolicy: pin(b.ID, c.ID), cli: b, cliPolicy: pin(a.ID)},
		{name: "server refuses unlisted client", srv: a, srvPolicy: pin(c.ID), cli: b, cliPolicy: open,
			wantSrvErr: "peer node " + string(b.ID) + " is not in trust.nodes"},
		{name: "client refuses unlisted server", srv: a, srvPolicy: open, cli: b, cliPolicy: pin(c.ID),
			wantCliErr: "peer node " + string(a.ID) + " is not in trust.nodes"},
		{name: "pin set to false trusts nobody", srv: a, srvPolicy: Policy{Nodes: map[ID]bool{b.ID: false}}, cli: b, cliPolicy: open,
			wantSrvErr: "is not in trust.nodes"},
		{name: "ca both ways", srv: aCA, srvPolicy: caMode, cli: bCA, cliPolicy: caMode},
		{name: "ca via presented intermediate", srv: aCA, srvPolicy: caMode, cli: bInter, cliPolicy: caMode},
		{name: "ca server refuses self-signed client", srv: aCA, srvPolicy: caMode, cli: b, cliPolicy: caMode,
			wantSrvErr: "peer certificate is not signed by trust.ca"},
		{name: "ca client refuses self-signed server", srv: a, srvPolicy: caMode, cli: bCA, cliPolicy: caMode,
			wantCliErr: "peer certificate is not signed by trust.ca"},
		{name: "ca refuses another ca", srv: aCA, srvPolicy: caMode, cli: bOther, cliPolicy: caMode,
			wantSrvErr: "peer certificate is not signed by trust.ca"},
		{name: "ca client refuses another ca", srv: bOther, srvPolicy: caMode, cli: aCA, cliPolicy: caMode,
			wantCliErr: "peer certificate is not signed by trust.ca"},
		{name: "ca and pin accept listed", srv: bCA, srvPolicy: caAndPin, cli: aCA, cliPolicy: caMode},
		{name: "ca and pin refuse unlisted ca node", srv: aCA, srvPolicy: caAndPin, cli: bCA, cliPolicy: caMode,
			wantSrvErr: "peer node " + string(b.ID) + " is not in trust.nodes"},
		{name: "open refuses expired certificate", srv: a, srvPolicy: open, cli: bExpired, cliPolicy: open,
			wantSrvErr: "not now"},
		{name: "open refuses not yet valid certificate", srv: bFuture, srvPolicy: open, cli: a, cliPolicy: open,
			wantCliErr: "not now"},
		{name: "server refuses ecdsa client", srv: a, srvPolicy: open, cli: b, cliPolicy: open,
			cliTweak:   func(c *tls.Config) { c.Certificates = []tls.Certificate{ecCert} },
			wantSrvErr: "peer certificate key is *ecdsa.PublicKey, want ed25519"},
		{name: "client refuses ecdsa server", srv: &Identity{Cert: ecCert}, srvPolicy: open, cli: b, cliPolicy: open,
			wantCliErr: "peer certificate key is *ecdsa.PublicKey, want ed25519"},
		// A TLS client that is not a pycomms host, but has some certificate.
		{name: "server refuses client without alpn", srv: a, srvPolicy: open, cli: b, cliPolicy: open,
			cliTweak:   func(c *tls.Config) { c.NextProtos, c.VerifyConnection = nil, nil },
			wantSrvErr: `peer did not negotiate ALPN "pycomms"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvCfg := tt.srvPolicy.ServerTLS(tt.srv)
			cliCfg := tt.cliPolicy.ClientTLS(tt.cli)
			if tt.cliTweak != nil {
				tt.cliTweak(cliCfg)
			}
			srv, cli := handshake(t, srvCfg, cliCfg)
			switch {
			case tt.wantSrvErr != "":
				if srv.err == nil || !strings.Contains(srv.err.Error(), tt.wantSrvErr) {
					t.Errorf("server error = %v, want one containing %q", srv.err, tt.wantSrvErr)
				}
				if cli.err == nil {
					t.Error("client got a working connection from a server that refused it")
				}
			case tt.wantCliErr != "":
				if cli.err == nil || !strings.Contains(cli.err.Error(), tt.wantCliErr) {
					t.Errorf("client error = %v, want one containing %q", cli.err, tt.wantCliErr)
				}
				if srv.err == nil {
					t.Error("server got a working connection from a client that refused it")
				}
			default:
				if srv.err != nil || cli.err != nil {
					t.Fatalf("server error = %v, client error = %v; want both to connect", srv.err, cli.err)
				}
				if got, err := PeerID(srv.state); err != nil || got != tt.cli.ID {
					t.Errorf("server sees peer %s (%v), want %s", got, err, tt.cli.ID)
				}
				if got, err := PeerID(cli.state); err != nil || got != tt.srv.ID {
					t.Errorf("client sees peer %s (%v), want %s", got, err, tt.srv.ID)
				}
				if cli.state.NegotiatedProtocol != ALPN {
					t.Errorf("negotiated %q, want %q", cli.state.NegotiatedProtocol, ALPN)
				}
			}
		})
	}
}

// TestConfigSnapshotsPolicy checks that a built config keeps the policy it
// was built from: a reload edits or replaces the Policy while handshakes
// with the old config may still be running.
func TestConfigSnapshotsPolicy(t *testing.T) {
	a, b := newNode(t), newNode(t)
	p := Policy{Nodes: map[ID]bool{b.ID: true}}
	srvCfg := p.ServerTLS(a)
	delete(p.Nodes, b.ID)
	p.Nodes[a.ID] = true

	srv, cli := handshake(t, srvCfg, (&Policy{}).ClientTLS(b))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server error = %v, client error = %v; the config should still trust %s", srv.err, cli.err, b.ID.Short())
	}
}

func TestPeerID(t *testing.T) {
	ecCert := ecdsaCert(t)
	node := newNode(t)
	tests := []struct {
		name    string
		state   tls.ConnectionState
		want    ID
		wantErr string
	}{
		{"ed25519", tls.ConnectionState{PeerCertificates: []*x509.Certificate{node.Cert.Leaf}}, node.ID, ""},
		{"no certificate", tls.ConnectionState{}, "", "no peer certificate"},
		{"ecdsa", tls.ConnectionState{PeerCertificates: []*x509.Certificate{ecCert.Leaf}}, "", "*ecdsa.PublicKey, want ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PeerID(tt.state)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("PeerID = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

type side struct {
	err   error
	state tls.ConnectionState
}

// handshake connects a client and a server over loopback TCP and exchanges
// one byte each way after the handshake. The exchange matters: in TLS 1.3
// the client's handshake is complete before the server has looked at the
// client's certificate, so a server refusal reaches the client only as an
// alert on its first read.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (srv, cli side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan side, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer conn.Close()
		done <- exchange(tls.Server(conn, srvCfg))
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cli = exchange(tls.Client(conn, cliCfg))
	conn.Close()
	return <-done, cli
}

func exchange(c *tls.Conn) side {
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return side{err: err}
	}
	if err := c.Handshake(); err != nil {
		return side{err: err}
	}
	if _, err := c.Write([]byte{1}); err != nil {
		return side{err: err}
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return side{err: err}
	}
	return side{state: c.ConnectionState()}
}

// newNode creates a node the way a host does, through LoadOrCreate.
func newNode(t *testing.T) *Identity {
	t.Helper()
	id, err := LoadOrCreate(filepath.Join(t.TempDir(), "node.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// withCert loads node's key together with a certificate chain, through
// LoadOrCreate's certificate path.
func withCert(t *testing.T, node *Identity, chain ...[]byte) *Identity {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "node.key")
	if err := os.WriteFile(keyPath, pemPKCS8(t, node.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, "node.crt")
	if err := os.WriteFile(certPath, pemCerts(chain...), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := LoadOrCreate(keyPath, certPath)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func withSelfSigned(t *testing.T, node *Identity, notBefore, notAfter time.Time) *Identity {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: string(node.ID)},
		NotBefore: notBefore,
		NotAfter:  notAfter,
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, node.Key.Public(), node.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Key: node.Key, ID: node.ID, Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: node.Key, Leaf: leaf}}
}

func ecdsaCert(t *testing.T) tls.Certificate {
	t.Helper()
	key := newECDSA(t)
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "ecdsa node"},
		NotBefore: time.Now().Add(-time.Hour),
		NotAfter:  time.Now().Add(time.Hour),
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newEd25519(t *testing.T) crypto.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newECDSA(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// newCA makes a self-signed root.
func newCA(t *testing.T, name string, key crypto.Signer) *testCA {
	t.Helper()
	tmpl := caTemplate(name)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issueCA makes an intermediate CA signed by ca.
func (ca *testCA) issueCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newEd25519(t)
	der, err := x509.CreateCertificate(rand.Reader, caTemplate(name), ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue makes a node certificate for pub, returned as DER.
func (ca *testCA) issue(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "node"},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
