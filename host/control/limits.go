package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
)

// Limits on what control API clients can hold. They are constants (with
// Options for embedders and tests) rather than config keys: they protect the
// node rather than shape its behaviour, their defaults leave room for every
// legitimate local client, and API.md documents each one.
const (
	// DefaultHeaderTimeout is how long a client has to send the headers of
	// a request, counted from the connection's first byte or the end of its
	// idle wait.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout is how long a client has to send a whole request,
	// headers and body: 64 MiB needs about 2.2 MB/s. It does not limit the
	// response: a call waits up to its own timeout and a subscription
	// stream lasts as long as the client reads it.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds one write of a response (or of one line of
	// a subscription stream), so a client that stops reading its answer
	// cannot pin the request, its reply and its connection.
	DefaultWriteTimeout = time.Minute
	// DefaultIdleTimeout closes a keep-alive connection that has been idle
	// this long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConns is the most connections the control API holds open at
	// once (subscription streams included); connections beyond it are
	// answered 503 busy and closed. NewServer lowers it to a quarter of the
	// process's open-file limit (RLIMIT_NOFILE) when that is smaller, so
	// that the mesh, plugins and the store keep descriptors to work with.
	DefaultMaxConns = 1024
	// DefaultBodyBudget is the most request-body bytes the control API
	// holds across all requests at once, beyond the first 64 KiB of each
	// (freeBody): two bodies of DefaultMaxBody. A body that does not fit
	// is answered 503 busy. A body of unknown length (chunked) counts as
	// the largest body allowed while it is read, and as the buffer it was
	// read into (up to twice its size) afterwards. The budget is never
	// smaller than the largest body allowed (WithMaxBody).
	DefaultBodyBudget = 2 * DefaultMaxBody
)

// freeBody is the part of each request body the budget does not count, so
// that the small calls most clients make still work while large bodies fill
// the budget. What it lets through is bounded by the connection cap: at
// most maxConns * freeBody bytes (64 MiB at the defaults).
const freeBody = 64 << 10

// Limits that are not worth an Option.
const (
	// minMaxConns is the floor of the connection cap however low the
	// open-file limit is: a control API that refuses everyone is useless.
	minMaxConns = 16
	// maxRefusing bounds the connections being refused at once (each is
	// held for up to refuseLinger so that the client reads its 503 instead
	// of a reset); beyond it, surplus connections are closed at once.
	maxRefusing = 64
	// refuseLinger is how long a refused connection may take to read its
	// 503 and close.
	refuseLinger = time.Second
	// refuseDrain is the most a refused client may send before it is cut.
	refuseDrain = 64 << 10
	// refuseLogEvery rate-limits the warning about refused connections.
	refuseLogEvery = 10 * time.Second
)

// WithTimeouts sets how long a client has to send a request's headers and
// the whole request (headers and body), and how long one write of a
// response may take. A value <= 0 keeps its default (DefaultHeaderTimeout,
// DefaultReadTimeout, DefaultWriteTimeout).
func WithTimeouts(header, read, write time.Duration) Option {
	return func(s *Server) {
		if header > 0 {
			s.headerTimeout = header
		}
		if read > 0 {
			s.readTimeout = read
		}
		if write > 0 {
			s.writeTimeout = write
		}
	}
}

// WithMaxConns sets the most connections served at once; connections beyond
// it are answered 503 busy and closed. n <= 0 keeps the default
// (DefaultMaxConns, or a quarter of RLIMIT_NOFILE when that is smaller).
func WithMaxConns(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.maxConns = int64(n)
		}
	}
}

// WithBodyBudget sets the most request-body bytes held across all requests
// at once; a body that does not fit is answered 503 busy. n <= 0 keeps
// DefaultBodyBudget. A budget below the largest body allowed is raised to it.
func WithBodyBudget(n int64) Option {
	return func(s *Server) {
		if n > 0 {
			s.bodyBudget.size = n
		}
	}
}

// defaultMaxConns is DefaultMaxConns, lowered to a quarter of the open-file
// limit nofile (0 when unknown) but not below minMaxConns.
func defaultMaxConns(nofile uint64) int64 {
	n := int64(DefaultMaxConns)
	if nofile > 0 && nofile/4 < uint64(n) {
		n = int64(nofile / 4)
	}
	return max(n, minMaxConns)
}

// budget is a counting semaphore of bytes that never blocks: a reservation
// that does not fit fails, and the caller answers busy.
type budget struct {
	size int64
	mu   sync.Mutex
	used int64
}

// reserve takes n bytes, or reports false and takes nothing.
func (b *budget) reserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.size-b.used {
		return false
	}
	b.used += n
	return true
}

// release gives back n bytes taken by reserve.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// inUse reports the bytes reserved now.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// limitListener caps the connections of a Server. Over the cap it accepts
// and refuses rather than leaving the client waiting in the kernel's
// backlog: the client learns at once that the node is busy (the project's
// answer to overload), and the refused descriptor is freed within
// refuseLinger.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.conns.Add(1) <= l.s.maxConns {
			return &countedConn{Conn: c, n: &l.s.conns}, nil
		}
		l.s.conns.Add(-1)
		l.s.refuse(c)
	}
}

// countedConn gives its slot back when closed (once, however often net/http
// closes it).
type countedConn struct {
	net.Conn
	n    *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close the connection before it closes it
// with an unread body, as it does for a bare TCP connection, so that the
// client reads the answer (a 413, say) instead of a reset.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// refuse answers a connection over the cap with 503 busy and closes it. It
// waits for the end of the request's headers first: a client that finds an
// answer before it has asked treats the connection as broken (Go's client
// calls it an unsolicited response) and never sees the busy status. After
// the answer the write side is shut and whatever the client still sends is
// drained for a moment, so that closing does not reset the connection
// before the client has read the answer.
func (s *Server) refuse(c net.Conn) {
	s.refused.Add(1)
	if now := time.Now().UnixNano(); now-s.refuseLogged.Load() >= int64(refuseLogEvery) {
		s.refuseLogged.Store(now)
		s.log.Warn("control API refusing connections: too many open",
			"limit", s.maxConns, "refused_total", s.refused.Load())
	}
	if s.refusing.Add(1) > maxRefusing {
		s.refusing.Add(-1)
		_ = c.Close()
		return
	}
	go func() {
		defer s.refusing.Add(-1)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseLinger))
		if !readHeaders(c, refuseDrain) {
			return
		}
		if _, err := c.Write(s.busyAnswer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, refuseDrain))
	}()
}

// readHeaders reads from c until the blank line that ends an HTTP
// request's headers, and reports whether it came within limit bytes.
func readHeaders(c net.Conn, limit int) bool {
	buf := make([]byte, 0, 4096)
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		// Search only the new bytes and the three before them.
		if bytes.Contains(buf[max(len(buf)-n-3, 0):], []byte("\r\n\r\n")) {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// busyResponse is the raw HTTP answer to a connection over the cap.
func busyResponse(maxConns int64) []byte {
	st := abi.StatusBusy
	b, _ := json.Marshal(ErrorBody{
		Error:  fmt.Sprintf("control API busy: %d connections open, the most it serves at once", maxConns),
		Status: st.String(),
		Code:   int(st),
	})
	b = append(b, '\n')
	code := HTTPStatus(st)
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %s\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), strconv.Itoa(len(b)), b)
}

// RefusedConns is how many connections the server refused because the
// connection cap was reached, since it started.
func (s *Server) RefusedConns() uint64 { return uint64(s.refused.Load()) }
