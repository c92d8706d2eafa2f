package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// Transports a link can use.
const (
	TCP  = "tcp"
	QUIC = "quic"
)

// conn is one authenticated transport connection: TLS over TCP, or a QUIC
// connection. A link reads and writes frames through it without knowing
// which.
type conn interface {
	// openMain returns the in-order frame streams to and from the peer.
	// The dialer calls it before sending its Hello; for QUIC it opens the
	// local main stream and accepts the peer's.
	openMain(ctx context.Context) (io.Reader, io.Writer, error)
	// solo sends one whole frame on a stream of its own; ok is false when
	// the transport has no such streams (TCP) and the frame must go on the
	// main stream.
	solo(ctx context.Context, frame []byte) (ok bool, err error)
	// acceptSolo blocks for the next single-frame stream and returns its
	// frame reader; TCP returns io.EOF at once.
	acceptSolo(ctx context.Context) (io.Reader, error)
	state() tls.ConnectionState
	// received is how many bytes came in on the peer's main stream so
	// far: a sign of life before they make up a whole frame.
	received() uint64
	remoteAddr() string
	transport() string
	close(reason string)
}

// countReader counts the bytes read through it into n.
type countReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

// tcpConn is a TLS 1.3 connection over TCP: one ordered byte stream.
type tcpConn struct {
	c  *tls.Conn
	in atomic.Uint64
}

func (t *tcpConn) openMain(context.Context) (io.Reader, io.Writer, error) {
	return countReader{t.c, &t.in}, t.c, nil
}
func (t *tcpConn) received() uint64                              { return t.in.Load() }
func (t *tcpConn) solo(context.Context, []byte) (bool, error)    { return false, nil }
func (t *tcpConn) acceptSolo(context.Context) (io.Reader, error) { return nil, io.EOF }
func (t *tcpConn) state() tls.ConnectionState                    { return t.c.ConnectionState() }
func (t *tcpConn) remoteAddr() string                            { return t.c.RemoteAddr().String() }
func (t *tcpConn) transport() string                             { return TCP }
func (t *tcpConn) close(string)                                  { t.c.Close() }

// quicConn is a QUIC connection: each side sends on one long-lived
// unidirectional main stream, plus one short stream per big frame.
type quicConn struct {
	c    *quic.Conn
	main *quic.SendStream
	in   atomic.Uint64
	// spoke, on an accepted connection, is told when the peer's main
	// stream arrives; an error refuses the connection.
	spoke func() error
}

func (q *quicConn) received() uint64 { return q.in.Load() }

func (q *quicConn) openMain(ctx context.Context) (io.Reader, io.Writer, error) {
	s, err := q.c.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open main stream: %w", err)
	}
	// The peer only sees a stream once data flows on it.
	if _, err := s.Write([]byte{wire.StreamMain}); err != nil {
		return nil, nil, fmt.Errorf("open main stream: %w", err)
	}
	q.main = s
	in, err := q.c.AcceptUniStream(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("accept the peer's main stream: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(in, b[:]); err != nil {
		return nil, nil, fmt.Errorf("read the peer's main stream type: %w", err)
	}
	if b[0] != wire.StreamMain {
		return nil, nil, fmt.Errorf("the peer's first stream has type %q, want %q (main)", b[0], wire.StreamMain)
	}
	if q.spoke != nil {
		if err := q.spoke(); err != nil {
			return nil, nil, err
		}
	}
	return countReader{in, &q.in}, s, nil
}

func (q *quicConn) solo(ctx context.Context, frame []byte) (bool, error) {
	s, err := q.c.OpenUniStreamSync(ctx)
	if err != nil {
		return true, fmt.Errorf("open a stream for a %d-byte frame: %w", len(frame), err)
	}
	if d, ok := ctx.Deadline(); ok {
		s.SetWriteDeadline(d)
	}
	// One write of the type byte and the frame: the stream is cheap and
	// short-lived, so coalescing buys nothing here.
	buf := make([]byte, 0, 1+len(frame))
	buf = append(append(buf, wire.StreamFrame), frame...)
	if _, err := s.Write(buf); err != nil {
		s.CancelWrite(0)
		return true, fmt.Errorf("write a %d-byte frame on its own stream: %w", len(frame), err)
	}
	return true, s.Close()
}

func (q *quicConn) acceptSolo(ctx context.Context) (io.Reader, error) {
	s, err := q.c.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return nil, fmt.Errorf("read stream type: %w", err)
	}
	if b[0] != wire.StreamFrame {
		s.CancelRead(0)
		return nil, &wire.ProtocolError{Code: wire.ErrProtocol, Msg: fmt.Sprintf("stream of type %q, want %q (single frame)", b[0], wire.StreamFrame)}
	}
	return s, nil
}

func (q *quicConn) state() tls.ConnectionState { return q.c.ConnectionState().TLS }
func (q *quicConn) remoteAddr() string         { return q.c.RemoteAddr().String() }
func (q *quicConn) transport() string          { return QUIC }
func (q *quicConn) close(reason string)        { q.c.CloseWithError(0, reason) }

// quicConfig tunes quic-go for long-lived host-to-host links: large flow
// control windows (big payloads on loopback and LANs), keep-alives below
// the idle timeout, no bidirectional streams (the protocol uses none), and
// a bound on concurrent single-frame streams.
func quicConfig(idle time.Duration) *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           5 * time.Second,
		MaxIdleTimeout:                 idle,
		KeepAlivePeriod:                idle / 3,
		InitialStreamReceiveWindow:     1 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 2 << 20,
		MaxConnectionReceiveWindow:     32 << 20,
		MaxIncomingStreams:             -1,
		MaxIncomingUniStreams:          256,
	}
}

// dialTCP connects and completes the TLS handshake.
func dialTCP(ctx context.Context, addr string, cfg *tls.Config) (conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 15 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &tcpConn{c: c.(*tls.Conn)}, nil
}

// dialQUIC connects and completes the QUIC handshake.
func dialQUIC(ctx context.Context, addr string, cfg *tls.Config, idle time.Duration) (conn, error) {
	c, err := quic.DialAddr(ctx, addr, cfg, quicConfig(idle))
	if err != nil {
		return nil, err
	}
	return &quicConn{c: c}, nil
}

// peerOf returns the peer's node id from a completed TLS handshake.
func peerOf(c conn) (identity.ID, error) {
	id, err := identity.PeerID(c.state())
	if err != nil {
		return "", fmt.Errorf("peer identity: %w", err)
	}
	return id, nil
}

// isClosed reports errors that only mean the connection went away.
func isClosed(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) {
		return true
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return true
	}
	var ie *quic.IdleTimeoutError
	return errors.As(err, &ie)
}
