package netbaseline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// setupTimeout bounds connection establishment and handshakes.
const setupTimeout = 10 * time.Second

// tcpPair is one loopback TCP connection, both ends, optionally wrapped in
// TLS. client and server are what the baseline reads and writes; close shuts
// the raw sockets (no TLS close_notify, which could block on a full socket).
type tcpPair struct {
	client, server io.ReadWriter
	rawClient      net.Conn
	rawServer      net.Conn
}

func (p *tcpPair) closers() []func() error {
	return []func() error{p.rawClient.Close, p.rawServer.Close}
}

// newTCPPair connects a client to a server on 127.0.0.1:0 and, when the
// configurations are non-nil, completes a TLS handshake on both ends. The
// listener is closed before it returns.
func newTCPPair(serverTLS, clientTLS *tls.Config) (*tcpPair, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("netbaseline: listening: %w", err)
	}
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		acc <- accepted{c, err}
	}()
	rawClient, dialErr := net.DialTimeout("tcp4", ln.Addr().String(), setupTimeout)
	if dialErr != nil {
		ln.Close() // unblocks Accept
	}
	a := <-acc
	ln.Close()
	if dialErr != nil || a.err != nil {
		if a.c != nil {
			a.c.Close()
		}
		if rawClient != nil {
			rawClient.Close()
		}
		return nil, fmt.Errorf("netbaseline: connecting on loopback: %w", errors.Join(dialErr, a.err))
	}
	p := &tcpPair{client: rawClient, server: a.c, rawClient: rawClient, rawServer: a.c}
	if serverTLS == nil {
		return p, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	tc := tls.Client(rawClient, clientTLS)
	ts := tls.Server(a.c, serverTLS)
	srvErr := make(chan error, 1)
	go func() { srvErr <- ts.HandshakeContext(ctx) }()
	cliErr := tc.HandshakeContext(ctx)
	if cliErr != nil {
		// Unblock the server side of the handshake before waiting for it.
		rawClient.Close()
		a.c.Close()
	}
	if err := errors.Join(cliErr, <-srvErr); err != nil {
		rawClient.Close()
		a.c.Close()
		return nil, fmt.Errorf("netbaseline: TLS handshake: %w", err)
	}
	p.client, p.server = tc, ts
	return p, nil
}
