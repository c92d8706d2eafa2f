package compare

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS is an embedded nats-server with a Go responder on its own
// connection (it replies with the payload upper-cased, the work the WAT
// echo does) and one client connection that every caller shares, the way
// a Go program uses nats.go.
type NATS struct {
	srv       *server.Server
	responder *nats.Conn
	client    *nats.Conn
	subPub    *nats.Conn // publisher of the pub/sub run
	subRecv   *nats.Conn // subscriber of the pub/sub run
	received  atomic.Uint64
	events    *nats.Subscription
}

// natsSubject and natsTopic are what the responder and the pub/sub
// subscriber listen on.
const (
	natsSubject = "echo"
	natsTopic   = "bench.tick"
)

// StartNATS starts the server on 127.0.0.1 (a free port) and connects the
// responder, the caller connection and the pub/sub pair; with useTLS every
// connection is TLS 1.3 with a self-signed ed25519 certificate.
func StartNATS(useTLS bool) (_ *NATS, err error) {
	opts := &server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
		// 64 callers × 64 KiB in flight on one connection: leave the
		// server's per-connection pending limit out of the way.
		MaxPending: 256 << 20,
	}
	var copts []nats.Option
	if useTLS {
		srvTLS, cliTLS, err := tlsConfigs()
		if err != nil {
			return nil, err
		}
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, srvTLS, 5
		copts = append(copts, nats.Secure(cliTLS))
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("compare: nats-server: %w", err)
	}
	n := &NATS{srv: srv}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("compare: nats-server not ready after 10s")
	}
	url := srv.ClientURL()
	connect := func() (*nats.Conn, error) {
		c, err := nats.Connect(url, copts...)
		if err != nil {
			return nil, fmt.Errorf("compare: connecting to nats-server at %s: %w", url, err)
		}
		return c, nil
	}
	if n.responder, err = connect(); err != nil {
		return nil, err
	}
	sub, err := n.responder.Subscribe(natsSubject, func(m *nats.Msg) {
		_ = m.Respond(bytes.ToUpper(m.Data))
	})
	if err != nil {
		return nil, fmt.Errorf("compare: nats responder: %w", err)
	}
	// Requests wait in the responder's queue rather than being dropped as
	// a slow consumer: a dropped request would only time out.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("compare: nats responder: %w", err)
	}
	if err := n.responder.Flush(); err != nil {
		return nil, fmt.Errorf("compare: nats responder: %w", err)
	}
	if n.client, err = connect(); err != nil {
		return nil, err
	}
	if n.subPub, err = connect(); err != nil {
		return nil, err
	}
	if n.subRecv, err = connect(); err != nil {
		return nil, err
	}
	// The subscriber keeps nats.go's default pending limits: a subscriber
	// that falls behind drops, as one on our host does.
	n.events, err = n.subRecv.Subscribe(natsTopic, func(*nats.Msg) { n.received.Add(1) })
	if err != nil {
		return nil, fmt.Errorf("compare: nats subscriber: %w", err)
	}
	if err := n.subRecv.Flush(); err != nil {
		return nil, fmt.Errorf("compare: nats subscriber: %w", err)
	}
	return n, nil
}

// Call sends payload to the responder with nc.Request and checks the reply.
func (n *NATS) Call(payload []byte) error {
	m, err := n.client.Request(natsSubject, payload, callTimeout)
	if err != nil {
		return fmt.Errorf("compare: nats request: %w", err)
	}
	if len(m.Data) != len(payload) {
		return fmt.Errorf("compare: nats reply of %d bytes, want %d", len(m.Data), len(payload))
	}
	return nil
}

// Publish publishes one event to the subscriber.
func (n *NATS) Publish(payload []byte) error { return n.subPub.Publish(natsTopic, payload) }

// Flush waits until the server has every event published so far.
func (n *NATS) Flush() error { return n.subPub.FlushTimeout(callTimeout) }

// Received counts the events the subscriber has handled.
func (n *NATS) Received() uint64 { return n.received.Load() }

// Close closes the connections and shuts the server down.
func (n *NATS) Close() {
	for _, c := range []*nats.Conn{n.client, n.responder, n.subPub, n.subRecv} {
		if c != nil {
			c.Close()
		}
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// tlsConfigs returns a server and a client configuration (TLS 1.3) around a
// self-signed ed25519 certificate for 127.0.0.1, which the client trusts.
func tlsConfigs() (srv, cli *tls.Config, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("compare: TLS key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "compare"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("compare: TLS certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("compare: TLS certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	srv = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}},
	}
	cli = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"}
	return srv, cli, nil
}
