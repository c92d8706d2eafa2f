package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/plugin"
)

// writeTimeout bounds one write to a peer: a peer that reads nothing for
// this long loses its connection (the write buffer bounds the memory
// meanwhile).
const writeTimeout = 30 * time.Second

// conn is one connection of a transport, pinned to one slot for its life.
type conn struct {
	id     uint32
	slot   *slot
	nc     net.Conn
	entry  string
	remote string
	since  time.Time

	closed atomic.Bool
	done   chan struct{} // closed by closeConn
	// opened: the plugin got its dialed or accepted event (read and
	// written by its slot's goroutine only).
	opened bool
	wake   chan struct{} // capacity 1: bytes were queued

	mu       sync.Mutex
	wbuf     []byte
	flushing bool // close once what is queued is written

	in, out atomic.Uint64
}

// queue appends b for the writer; false when that would exceed limit.
func (c *conn) queue(b []byte, limit int) bool {
	c.mu.Lock()
	if len(c.wbuf)+len(b) > limit {
		c.mu.Unlock()
		return false
	}
	c.wbuf = append(c.wbuf, b...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// register makes nc connection id of slot s and starts its reader and
// writer after the opening event (dialed or accepted) is queued, so the
// plugin sees that event before any byte or routed message. false when the
// transport is closing (nc is then closed).
func (t *Transport) register(nc net.Conn, id uint32, s *slot, entry string, ev abi.TransportEvent, index int) (*conn, bool) {
	c := &conn{id: id, slot: s, nc: nc, entry: entry, remote: nc.RemoteAddr().String(), since: time.Now(),
		done: make(chan struct{}), wake: make(chan struct{}, 1)}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		nc.Close()
		return nil, false
	}
	t.conns[id] = c
	t.mu.Unlock()
	if !t.post(s, &job{ev: plugin.Event{Type: ev, ID: id, Arg: int32(index)}, conn: c, gen: s.gen.Load()}) {
		t.closeConn(c, "shutdown", abi.StatusInternal, false, false)
		return nil, false
	}
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	t.wg.Add(2)
	go t.readLoop(c)
	go t.writeLoop(c)
	return c, true
}

// closeConn closes c once: notify queues a closed event for the plugin
// (not when the plugin closed it itself, nor when its instance failed),
// flush writes what is queued first.
func (t *Transport) closeConn(c *conn, reason string, st abi.Status, notify, flush bool) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	delete(t.conns, c.id)
	t.closes[reason]++
	t.mu.Unlock()
	c.slot.mu.Lock()
	c.slot.conns--
	c.slot.mu.Unlock()
	if flush {
		c.mu.Lock()
		c.flushing = true
		c.mu.Unlock()
	} else {
		c.nc.Close()
	}
	close(c.done)
	t.log.Debug("transport connection closed", "conn", c.id, "entry", c.entry, "remote", c.remote, "reason", reason)
	if notify {
		t.postAsync(c.slot, &job{ev: plugin.Event{Type: abi.EventClosed, ID: c.id, Arg: int32(st)}, conn: c, gen: c.slot.gen.Load()})
	}
}

// readLoop reads into the connection's buffer and hands it to the plugin
// as data events, keeping what the plugin did not consume; it waits for
// each event, so a slow plugin slows the peer down (TCP flow control)
// instead of growing memory, which stays within ReadBuffer.
func (t *Transport) readLoop(c *conn) {
	defer t.wg.Done()
	buf := make([]byte, 0, t.cfg.ReadBuffer)
	res := make(chan int32, 1)
	for {
		n, err := c.nc.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			c.in.Add(uint64(n))
			t.stats.bytesIn.Add(uint64(n))
			buf = buf[:len(buf)+n]
			j := &job{ev: plugin.Event{Type: abi.EventData, ID: c.id, A: buf}, conn: c, gen: c.slot.gen.Load(),
				done: func(r int32, err error) {
					if err != nil {
						r = -1 << 30 // the connection is gone with the instance or the transport
					}
					res <- r
				}}
			if !t.post(c.slot, j) {
				return
			}
			var used int32
			select {
			case used = <-res:
			case <-t.ctx.Done():
				return
			}
			if used == -1<<30 || c.closed.Load() {
				return
			}
			if used < 0 {
				t.stats.errors.Add(1)
				t.closeConn(c, "plugin error", abi.Status(-used), true, false)
				return
			}
			k := copy(buf, buf[used:])
			buf = buf[:k]
			if len(buf) == cap(buf) {
				t.log.Warn("transport connection closed: read buffer full and the plugin consumed nothing", "conn", c.id, "limit", t.cfg.ReadBuffer)
				t.closeConn(c, "read buffer full", abi.StatusTooLarge, true, false)
				return
			}
		}
		if err != nil {
			if c.closed.Load() {
				return
			}
			if errors.Is(err, io.EOF) {
				t.closeConn(c, "peer closed", abi.StatusOK, true, false)
			} else {
				t.closeConn(c, "read error", abi.StatusUnreachable, true, false)
			}
			return
		}
	}
}

// writeLoop writes what the plugin queued, in batches.
func (t *Transport) writeLoop(c *conn) {
	defer t.wg.Done()
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
		}
		for {
			c.mu.Lock()
			if len(c.wbuf) == 0 {
				flushing := c.flushing
				c.mu.Unlock()
				if flushing || c.closed.Load() {
					c.nc.Close()
					return
				}
				break
			}
			// Swap only with something to write: spare is the buffer the
			// last write used, and must never be queued into while out is
			// being written.
			out := c.wbuf
			c.wbuf = spare[:0]
			c.mu.Unlock()
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(out); err != nil {
				t.closeConn(c, "write error", abi.StatusUnreachable, true, false)
				c.nc.Close()
				return
			}
			c.out.Add(uint64(len(out)))
			t.stats.bytesOut.Add(uint64(len(out)))
			spare = out
		}
	}
}

// dial connects to dial entry i as connection id of slot s.
func (t *Transport) dial(i int, id uint32, s *slot) (*conn, error) {
	d := t.cfg.Dial[i]
	nd := &net.Dialer{Timeout: dialTimeout}
	var nc net.Conn
	var err error
	if d.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.cfg.TLS != nil {
			cfg = t.cfg.TLS.Clone()
		}
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(d.Addr)
			cfg.ServerName = host
		}
		nc, err = (&tls.Dialer{NetDialer: nd, Config: cfg}).DialContext(t.ctx, "tcp", d.Addr)
	} else {
		nc, err = nd.DialContext(t.ctx, "tcp", d.Addr)
	}
	if err != nil {
		t.stats.dialErrors.Add(1)
		return nil, fmt.Errorf("dial[%d] %s: %w", i, d.Raw, err)
	}
	c, ok := t.register(nc, id, s, fmt.Sprintf("dial[%d] %s", i, d.Raw), abi.EventDialed, i)
	if !ok {
		return nil, errClosed
	}
	t.stats.dialed.Add(1)
	return c, nil
}

// keepDialled keeps one connection to dial entry i open while the
// transport runs, waiting a backoff between attempts.
func (t *Transport) keepDialled(i int) {
	defer t.wg.Done()
	backoff := t.cfg.MinBackoff
	connected := false
	for t.ctx.Err() == nil {
		if s := t.home(i); s != nil {
			start := time.Now()
			c, err := t.dial(i, t.ids.Add(1), s)
			if err == nil {
				if connected {
					t.stats.reconnects.Add(1)
				}
				connected = true
				select {
				case <-c.done:
				case <-t.ctx.Done():
					return
				}
				if time.Since(start) > MaxBackoff {
					backoff = t.cfg.MinBackoff // it was up a good while: a new failure starts over
				}
			} else if !errors.Is(err, errClosed) {
				t.log.Warn("transport dial failed; retrying", "entry", i, "err", err, "in", backoff)
			}
		}
		select {
		case <-time.After(backoff):
		case <-t.ctx.Done():
			return
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

// home is the instance dial entry i's connections go to: entry i on
// instance i mod instances, the same on every redial, so that what the
// plugin keeps for that peer (a session, messages it has not had
// acknowledged) is there when the connection comes back (SPEC 13.2).
// Another live instance when that one is not alive.
func (t *Transport) home(i int) *slot {
	if s := t.slots[i%len(t.slots)]; t.v.SlotAlive(s.i) {
		return s
	}
	return t.pick(false)
}

// acceptLoop accepts connections on accept entry i.
func (t *Transport) acceptLoop(i int, ln net.Listener) {
	defer t.wg.Done()
	pause := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: wait and try again rather than spin.
			t.log.Warn("transport accept failed; retrying", "entry", i, "err", err, "in", pause)
			select {
			case <-time.After(pause):
			case <-t.ctx.Done():
				return
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 5 * time.Millisecond
		if !t.allowed(nc.RemoteAddr()) {
			t.stats.refused.Add(1)
			t.log.Warn("transport refused a connection: source not in allow_from", "entry", i, "remote", nc.RemoteAddr().String())
			nc.Close()
			continue
		}
		t.mu.Lock()
		full := len(t.conns) >= t.cfg.MaxConns
		t.mu.Unlock()
		s := t.pick(false)
		if full || s == nil {
			t.stats.refused.Add(1)
			t.log.Warn("transport refused a connection", "entry", i, "remote", nc.RemoteAddr().String(), "at_max_conns", full)
			nc.Close()
			continue
		}
		if _, ok := t.register(nc, t.ids.Add(1), s, fmt.Sprintf("accept[%d] tcp://%s", i, ln.Addr()), abi.EventAccepted, i); ok {
			t.stats.accepted.Add(1)
		}
	}
}

func (t *Transport) allowed(a net.Addr) bool {
	if t.cfg.AllowFrom == nil {
		return true
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range t.cfg.AllowFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
