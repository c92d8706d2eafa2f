//go:build wasip1

// Command redis is a transport plugin (abi/SPEC.md section 13) that lets
// hosts which never meet exchange requests, sends and events through a
// redis-server they all reach. It speaks RESP2 over the connections the
// host dials (tcp:// or tls:// with the configured CA) and maps subjects
// to Redis pub/sub channels (README.md has the mapping and the keys):
//
//	PREFIX:ev:SUBJECT   events (PUBLISH; PSUBSCRIBE for config.subscribe)
//	PREFIX:rq:SUBJECT   requests and sends (PSUBSCRIBE for config.serve)
//	PREFIX:inbox:ID     replies to this instance's requests (SUBSCRIBE)
//
// Each dial entry is one session of two connections: the one the host
// dials (SUBSCRIBEd: Redis accepts no other command on it in RESP2) and
// one the plugin opens with conn_open for PUBLISH and PING. Redis globs
// are not subject wildcards ("*" crosses dots), so the plugin subscribes
// broadly and filters with abi.Match. A host ignores its own publishes:
// the host adds pycomms-origin to what it routes out and drops what comes
// back with its own id (SPEC 13.5).
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/sdk/go/transport"
)

// The config is read at the first event: host imports cannot be called
// while the module initialises.
func init() { transport.Set(&lazy{}) }

// lazy creates the plugin at its first event.
type lazy struct{ p *plugin }

func (l *lazy) get() *plugin {
	if l.p == nil {
		l.p = newPlugin()
	}
	return l.p
}

func (l *lazy) Opened(conn uint32, dialed bool, index int) { l.get().Opened(conn, dialed, index) }
func (l *lazy) Data(conn uint32, b []byte) int             { return l.get().Data(conn, b) }
func (l *lazy) Closed(conn uint32, why abi.Status)         { l.get().Closed(conn, why) }
func (l *lazy) Reply(corr uint32, st abi.Status, b []byte) { l.get().ReplyH(corr, st, b, nil) }
func (l *lazy) Timer(id uint32)                            { l.get().Timer(id) }
func (l *lazy) ReplyH(corr uint32, st abi.Status, b, headers []byte) {
	l.get().ReplyH(corr, st, b, headers)
}
func (l *lazy) Message(corr uint32, kind abi.Kind, subject string, payload, headers []byte) abi.Status {
	return l.get().Message(corr, kind, subject, payload, headers)
}

func main() {}

// Markers in a session's list of commands waiting for their reply on the
// command connection; other entries are request ids.
const (
	markNone uint64 = 0
	markAuth uint64 = 1<<64 - 1
	markPing uint64 = 1<<64 - 2
	markOpen uint64 = 1<<64 - 3 // the PING that opens a command connection without AUTH
)

// inboxH follows the prefix in the inbox of a plugin that reads reply_h
// frames (a reply with headers); an older plugin's inbox is ":inbox:"
// and then hex digits, never an "h".
const inboxH = ":inbox:h"

// Requests routed out whose reply has not come are at most maxOut (more
// fail with busy) and forgotten after maxWait, the longest a caller waits
// (limits.timeout is at most 1h): the host has answered the caller by
// then, with timeout.
const (
	maxOut  = 1 << 16
	maxWait = time.Hour
)

// Replies held for a command connection are at most maxHeld and
// maxHeldBytes; beyond that one is dropped (logged) and its caller gets
// its deadline, as it would have had no reply been held at all.
const (
	maxHeld      = 1024
	maxHeldBytes = 4 << 20
)

const (
	minBackoff       = 100 // ms, reopening a command connection
	maxBackoff       = 5000
	defaultKeepalive = 5000 // ms between PINGs; a PING unanswered at the next one closes the session
)

type settings struct {
	user, password string
	prefix         string
	subscribe      []string // topic patterns taken in from Redis
	serve          []string // services whose requests and sends are taken in
	keepalive      int      // ms, 0: off
}

// session is one dial entry's pair of connections.
type session struct {
	sub, cmd uint32 // connection ids; cmd 0 while none
	index    int
	acks     int // subscription acknowledgements received
	want     int // ... expected
	cmdOpen  bool
	cmdUp    bool     // ... and its AUTH or first PING answered: the broker took it
	waiting  []uint64 // per command sent on cmd, in order: a request id or a mark
	pingOut  bool
	backoff  int
}

// ready: a broker can refuse a connection after accepting it (maxclients
// writes an error and closes), so the command connection counts once its
// first command is answered, and nothing is written to one that is about
// to close.
func (s *session) ready() bool { return s.cmdUp && s.acks >= s.want }

// outReq is a request routed out through Redis, waiting for its reply on
// the inbox.
type outReq struct {
	corr uint32
	sub  uint32 // the session it went out on
	at   int64  // when, unix ns: a reply that never comes is forgotten after maxWait
}

// inReq is a request taken in from Redis, waiting for the host's reply.
type inReq struct {
	inbox string
	id    uint64
}

type plugin struct {
	cfg      settings
	inbox    string
	evPrefix string
	rqPrefix string
	sessions map[uint32]*session // by sub connection
	byCmd    map[uint32]*session
	// orphans are command connections opened for a session that ended
	// before they were: closed when they open, never taken for a new
	// session's subscriber connection.
	orphans  map[uint32]bool
	out      map[uint64]outReq
	nextID   uint64
	in       map[uint32]inReq
	nextCorr uint32
	frame    []byte // reused encoding buffers
	cmdBuf   []byte
	// held are replies to requests taken in while no session could
	// publish them: a new subscriber connection takes in requests before
	// its command connection is open, and a command connection can drop
	// and redial under a live subscriber. They go out, in order, once a
	// session is ready, at most maxHeld of them and maxHeldBytes.
	held      []heldReply
	heldBytes int
}

// heldReply is a reply frame waiting for a command connection.
type heldReply struct {
	inbox string
	frame []byte
}

func newPlugin() *plugin {
	cfg := readSettings()
	var id [8]byte
	rand.Read(id[:])
	return &plugin{
		cfg:      cfg,
		inbox:    cfg.prefix + inboxH + hex.EncodeToString(id[:]),
		evPrefix: cfg.prefix + ":ev:",
		rqPrefix: cfg.prefix + ":rq:",
		sessions: map[uint32]*session{},
		byCmd:    map[uint32]*session{},
		orphans:  map[uint32]bool{},
		out:      map[uint64]outReq{},
		in:       map[uint32]inReq{},
	}
}

func readSettings() settings {
	s := settings{prefix: "pycomms", keepalive: defaultKeepalive}
	s.user, _ = transport.ConfigString("username")
	s.password, _ = transport.ConfigString("password")
	if v, ok := transport.ConfigString("prefix"); ok && v != "" {
		s.prefix = v
	}
	list := func(key string) []string {
		v, _ := transport.ConfigString(key)
		var out []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			if err := abi.ValidatePattern(p); err != nil {
				transport.Log(abi.LevelError, fmt.Sprintf("redis: config %s: %q ignored: %v", key, p, err))
				continue
			}
			out = append(out, p)
		}
		return out
	}
	s.subscribe = list("subscribe")
	s.serve = list("serve")
	if v, ok := transport.ConfigString("keepalive_ms"); ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			s.keepalive = n
		} else {
			transport.Log(abi.LevelError, fmt.Sprintf("redis: config keepalive_ms: %q is not a number of milliseconds; using %d", v, defaultKeepalive))
		}
	}
	return s
}

// Timer ids: two per session, from its sub connection id.
func kaTimer(s *session) uint32     { return s.sub * 2 }
func reopenTimer(s *session) uint32 { return s.sub*2 + 1 }

func (p *plugin) Opened(conn uint32, dialed bool, index int) {
	if p.orphans[conn] {
		delete(p.orphans, conn)
		transport.Close(conn)
		return
	}
	if s := p.byCmd[conn]; s != nil {
		s.cmdOpen = true
		s.waiting = s.waiting[:0]
		s.pingOut = false
		if p.cfg.password != "" {
			p.auth(conn)
			s.waiting = append(s.waiting, markAuth)
		} else {
			p.cmdBuf = appendCommand(p.cmdBuf[:0], []byte("PING"))
			transport.Write(conn, p.cmdBuf)
			s.waiting = append(s.waiting, markOpen)
		}
		return
	}
	if !dialed {
		transport.Close(conn) // no accept entry is meant for this plugin
		return
	}
	s := &session{sub: conn, index: index, backoff: minBackoff}
	p.sessions[conn] = s
	if p.cfg.password != "" {
		p.auth(conn)
	}
	// One PSUBSCRIBE for every glob, the inbox last: an acknowledgement
	// each.
	p.cmdBuf = p.cmdBuf[:0]
	globs := map[string]bool{}
	for _, pat := range p.cfg.subscribe {
		globs[globEscape(p.evPrefix, false)+globFor(pat)] = true
	}
	for _, svc := range p.cfg.serve {
		globs[globEscape(p.rqPrefix+svc+".", true)] = true
	}
	if len(globs) > 0 {
		args := [][]byte{[]byte("PSUBSCRIBE")}
		for g := range globs {
			args = append(args, []byte(g))
		}
		p.cmdBuf = appendCommand(p.cmdBuf, args...)
		s.want += len(globs)
	}
	p.cmdBuf = appendCommand(p.cmdBuf, []byte("SUBSCRIBE"), []byte(p.inbox))
	s.want++
	transport.Write(conn, p.cmdBuf)
	if p.cfg.keepalive > 0 {
		transport.SetTimer(kaTimer(s), p.cfg.keepalive)
	}
	p.openCmd(s)
}

func (p *plugin) auth(conn uint32) {
	if p.cfg.user != "" {
		p.cmdBuf = appendCommand(p.cmdBuf[:0], []byte("AUTH"), []byte(p.cfg.user), []byte(p.cfg.password))
	} else {
		p.cmdBuf = appendCommand(p.cmdBuf[:0], []byte("AUTH"), []byte(p.cfg.password))
	}
	transport.Write(conn, p.cmdBuf)
}

// openCmd opens the session's command connection, or retries later.
func (p *plugin) openCmd(s *session) {
	id, st := transport.Open(s.index)
	if st != abi.StatusOK {
		transport.Log(abi.LevelWarn, fmt.Sprintf("redis: cannot open the command connection of dial[%d]: %s; retrying in %d ms", s.index, st, s.backoff))
		p.retryCmd(s)
		return
	}
	s.cmd = id
	p.byCmd[id] = s
}

func (p *plugin) retryCmd(s *session) {
	transport.SetTimer(reopenTimer(s), s.backoff)
	s.backoff = min(s.backoff*2, maxBackoff)
}

func (p *plugin) Closed(conn uint32, why abi.Status) {
	if p.orphans[conn] {
		delete(p.orphans, conn)
		return
	}
	if s := p.sessions[conn]; s != nil {
		p.endSession(s, fmt.Sprintf("the subscriber connection to dial[%d] closed (%s)", s.index, closeReason(why)))
		return
	}
	if s := p.byCmd[conn]; s != nil {
		delete(p.byCmd, conn)
		s.cmd, s.cmdOpen, s.cmdUp, s.waiting, s.pingOut = 0, false, false, s.waiting[:0], false
		p.failOut(s, fmt.Sprintf("the command connection to dial[%d] closed (%s)", s.index, closeReason(why)))
		p.retryCmd(s)
	}
}

func closeReason(why abi.Status) string {
	if why == abi.StatusOK {
		return "by the broker"
	}
	return why.String()
}

// endSession forgets s after its sub connection closed (or is being
// closed): its requests fail at once, its command connection closes.
func (p *plugin) endSession(s *session, why string) {
	p.failOut(s, why)
	if s.cmd != 0 {
		if s.cmdOpen {
			transport.Close(s.cmd)
		} else {
			p.orphans[s.cmd] = true // still dialling: closed once open
		}
		delete(p.byCmd, s.cmd)
	}
	transport.SetTimer(kaTimer(s), 0)
	transport.SetTimer(reopenTimer(s), 0)
	delete(p.sessions, s.sub)
}

// failOut fails every request that went out on s: its reply would come
// on the subscriber connection or was written on the command connection,
// and one of them is gone.
func (p *plugin) failOut(s *session, why string) {
	for id, r := range p.out {
		if r.sub == s.sub {
			delete(p.out, id)
			transport.Respond(r.corr, abi.StatusUnreachable, []byte("redis: "+why))
		}
	}
}

func (p *plugin) Timer(id uint32) {
	s := p.sessions[id/2]
	if s == nil {
		return
	}
	if id%2 == 1 { // reopen the command connection
		if s.cmd == 0 {
			p.openCmd(s)
		}
		return
	}
	if !s.cmdOpen {
		transport.SetTimer(kaTimer(s), p.cfg.keepalive)
		return
	}
	if s.pingOut {
		transport.Log(abi.LevelWarn, fmt.Sprintf("redis: dial[%d] did not answer PING within %d ms: closing its connections", s.index, p.cfg.keepalive))
		transport.Close(s.sub)
		p.endSession(s, fmt.Sprintf("the broker of dial[%d] stopped answering (keepalive)", s.index))
		return
	}
	p.sweep()
	p.flushHeld()
	p.cmdBuf = appendCommand(p.cmdBuf[:0], []byte("PING"))
	if transport.Write(s.cmd, p.cmdBuf) == abi.StatusOK {
		s.waiting = append(s.waiting, markPing)
		s.pingOut = true
	}
	transport.SetTimer(kaTimer(s), p.cfg.keepalive)
}

// sweep forgets the requests that have waited longer than maxWait.
func (p *plugin) sweep() {
	old := time.Now().Add(-maxWait).UnixNano()
	for id, r := range p.out {
		if r.at < old {
			delete(p.out, id)
		}
	}
}

// Data parses every complete RESP2 value; bytes that are not RESP2 (or
// replies a client never gets) close that connection, counted by the host.
func (p *plugin) Data(conn uint32, b []byte) int {
	used := 0
	for used < len(b) {
		v, n, err := parse(b[used:])
		if err != nil {
			transport.Log(abi.LevelWarn, fmt.Sprintf("redis: connection %d: %v: closing it", conn, err))
			return -int(abi.StatusInvalid)
		}
		if n == 0 {
			break
		}
		used += n
		var st abi.Status
		if s := p.sessions[conn]; s != nil {
			st = p.subValue(s, &v)
		} else if s := p.byCmd[conn]; s != nil {
			st = p.cmdValue(s, &v)
		}
		if st != abi.StatusOK {
			return -int(st)
		}
	}
	return used
}

// subValue handles one value on a subscriber connection.
func (p *plugin) subValue(s *session, v *value) abi.Status {
	switch v.typ {
	case '+': // AUTH's OK
		return abi.StatusOK
	case '-':
		transport.Log(abi.LevelError, fmt.Sprintf("redis: dial[%d] refused the subscriber connection: %s", s.index, v.str))
		return abi.StatusDenied
	case '*':
	default:
		transport.Log(abi.LevelWarn, fmt.Sprintf("redis: dial[%d]: unexpected %q reply on the subscriber connection", s.index, v.typ))
		return abi.StatusInvalid
	}
	if len(v.items) < 3 || v.items[0].typ != '$' {
		return p.badPush(s, v)
	}
	switch kind := string(v.items[0].str); kind {
	case "subscribe", "psubscribe":
		s.acks++
		p.flushHeld()
	case "message":
		if len(v.items) != 3 {
			return p.badPush(s, v)
		}
		p.received(v.items[1].str, v.items[2].str)
	case "pmessage":
		if len(v.items) != 4 {
			return p.badPush(s, v)
		}
		p.received(v.items[2].str, v.items[3].str)
	default:
		// unsubscribe acks and the like: nothing to do
	}
	return abi.StatusOK
}

func (p *plugin) badPush(s *session, v *value) abi.Status {
	transport.Log(abi.LevelWarn, fmt.Sprintf("redis: dial[%d]: a push of %d items that is no message or acknowledgement", s.index, len(v.items)))
	return abi.StatusInvalid
}

// cmdValue handles one reply on a command connection: the answer to the
// oldest command waiting.
func (p *plugin) cmdValue(s *session, v *value) abi.Status {
	if len(s.waiting) == 0 {
		transport.Log(abi.LevelWarn, fmt.Sprintf("redis: dial[%d]: a reply nothing was asked for", s.index))
		return abi.StatusInvalid
	}
	w := s.waiting[0]
	s.waiting = s.waiting[1:]
	if v.typ == '-' {
		switch w {
		case markAuth:
			transport.Log(abi.LevelError, fmt.Sprintf("redis: dial[%d] refused AUTH on the command connection: %s", s.index, v.str))
			return abi.StatusDenied
		case markOpen:
			transport.Log(abi.LevelError, fmt.Sprintf("redis: dial[%d] refused the command connection: %s", s.index, v.str))
			return abi.StatusDenied
		}
		transport.Log(abi.LevelWarn, fmt.Sprintf("redis: dial[%d]: command refused: %s", s.index, v.str))
		if r, ok := p.out[w]; ok {
			delete(p.out, w)
			transport.Respond(r.corr, abi.StatusInternal, []byte("redis: PUBLISH refused: "+string(v.str)))
		}
		return abi.StatusOK
	}
	s.backoff = minBackoff // the connection works
	switch w {
	case markPing:
		s.pingOut = false
	case markAuth, markOpen:
		s.cmdUp = true
		p.flushHeld()
	case markNone:
	default:
		// A request PUBLISHed to nobody fails now rather than at its deadline.
		if v.typ == ':' && v.num == 0 {
			if r, ok := p.out[w]; ok {
				delete(p.out, w)
				transport.Respond(r.corr, abi.StatusNoHandler, []byte("redis: no host subscribes to that subject's channel"))
			}
		}
	}
	return abi.StatusOK
}

// received handles one message from a subscribed channel.
func (p *plugin) received(channel, data []byte) {
	ch := string(channel)
	f, err := decodeFrame(data)
	if err != nil {
		// Someone else's PUBLISH on our channels: not ours to deliver.
		transport.Log(abi.LevelDebug, fmt.Sprintf("redis: %s: %v: ignored", ch, err))
		return
	}
	switch {
	case ch == p.inbox:
		if f.typ != frameReply && f.typ != frameReplyH {
			return
		}
		if r, ok := p.out[f.id]; ok {
			delete(p.out, f.id)
			if len(f.headers) == 0 || transport.RespondH(r.corr, abi.Status(f.status), f.payload, f.headers) == abi.StatusInvalid {
				// No headers, or headers the host refuses (a peer
				// that broke SPEC.md section 10): the reply alone.
				transport.Respond(r.corr, abi.Status(f.status), f.payload)
			}
		}
	case strings.HasPrefix(ch, p.evPrefix):
		subject := ch[len(p.evPrefix):]
		if f.typ == frameEvent && abi.MatchAny(p.cfg.subscribe, subject) {
			transport.Deliver(abi.KindEvent, 0, subject, f.payload, f.headers)
		}
	case strings.HasPrefix(ch, p.rqPrefix):
		subject := ch[len(p.rqPrefix):]
		if !p.serves(subject) {
			return
		}
		switch f.typ {
		case frameSend:
			transport.Deliver(abi.KindSend, 0, subject, f.payload, f.headers)
		case frameRequest:
			p.nextCorr++
			if p.nextCorr == 0 {
				p.nextCorr = 1
			}
			corr := p.nextCorr
			own := string(f.inbox) == p.inbox
			if !own {
				// The host drops our own request (its origin header);
				// nothing will answer it, so it is not remembered.
				p.in[corr] = inReq{inbox: string(f.inbox), id: f.id}
			}
			if st := transport.Deliver(abi.KindRequest, corr, subject, f.payload, f.headers); st != abi.StatusOK && !own {
				delete(p.in, corr)
				p.reply(string(f.inbox), f.id, st, []byte("redis: the serving host refused the request: "+st.String()))
			}
		}
	}
}

func (p *plugin) serves(subject string) bool {
	for _, svc := range p.cfg.serve {
		if abi.ServiceOf(svc, subject) {
			return true
		}
	}
	return false
}

// ReplyH is the host's answer to a request taken in from Redis, with the
// reply's headers (transport.ReplyHeadersHandler).
func (p *plugin) ReplyH(corr uint32, st abi.Status, b, headers []byte) {
	r, ok := p.in[corr]
	if !ok {
		return
	}
	delete(p.in, corr)
	p.replyH(r.inbox, r.id, st, b, headers)
}

func (p *plugin) reply(inbox string, id uint64, st abi.Status, b []byte) {
	p.replyH(inbox, id, st, b, nil)
}

// replyH publishes a reply on the caller's inbox; its headers go only
// in a reply_h frame, to a caller that reads those (inboxH), and are
// dropped for an older one.
func (p *plugin) replyH(inbox string, id uint64, st abi.Status, b, headers []byte) {
	f := frame{typ: frameReply, id: id, status: byte(st), payload: b}
	if len(headers) > 0 && strings.HasPrefix(inbox, p.cfg.prefix+inboxH) {
		f.typ, f.headers = frameReplyH, headers
	}
	p.frame = appendFrame(p.frame[:0], &f)
	// A command connection the broker has just closed refuses the write
	// before the plugin hears of the close: the reply is held then too.
	if s := p.readySession(); s != nil && len(p.held) == 0 && p.publish(s, inbox, markNone) == abi.StatusOK {
		return
	}
	p.hold(inbox, p.frame)
	p.flushHeld()
}

// hold keeps a reply frame until a session can publish it.
func (p *plugin) hold(inbox string, f []byte) {
	if len(p.held) >= maxHeld || p.heldBytes+len(f) > maxHeldBytes {
		transport.Log(abi.LevelWarn, fmt.Sprintf("redis: no command connection is up and %d replies (%d bytes) already wait for one: a reply to %s is dropped; its caller gets its deadline", len(p.held), p.heldBytes, inbox))
		return
	}
	p.held = append(p.held, heldReply{inbox: inbox, frame: append([]byte(nil), f...)})
	p.heldBytes += len(f)
}

// flushHeld publishes the held replies once a session is ready; what its
// command connection does not take stays held, in order.
func (p *plugin) flushHeld() {
	if len(p.held) == 0 {
		return
	}
	s := p.readySession()
	if s == nil {
		return
	}
	sent := 0
	for _, h := range p.held {
		if p.publishFrame(s, h.inbox, h.frame, markNone) != abi.StatusOK {
			break
		}
		p.heldBytes -= len(h.frame)
		sent++
	}
	p.held = append(p.held[:0], p.held[sent:]...)
	clear(p.held[len(p.held):cap(p.held)]) // let the sent frames go
}

// readySession is a session whose connections are both up.
func (p *plugin) readySession() *session {
	for _, s := range p.sessions {
		if s.ready() {
			return s
		}
	}
	return nil
}

// publish writes PUBLISH channel p.frame on s's command connection.
func (p *plugin) publish(s *session, channel string, mark uint64) abi.Status {
	return p.publishFrame(s, channel, p.frame, mark)
}

// publishFrame writes PUBLISH channel f on s's command connection.
func (p *plugin) publishFrame(s *session, channel string, f []byte, mark uint64) abi.Status {
	p.cmdBuf = appendCommand(p.cmdBuf[:0], []byte("PUBLISH"), []byte(channel), f)
	st := transport.Write(s.cmd, p.cmdBuf)
	if st == abi.StatusOK {
		s.waiting = append(s.waiting, mark)
	}
	return st
}

// Message publishes what the host routes out through Redis.
func (p *plugin) Message(corr uint32, kind abi.Kind, subject string, payload, headers []byte) abi.Status {
	s := p.readySession()
	if s == nil {
		return abi.StatusUnreachable
	}
	switch kind {
	case abi.KindEvent:
		p.frame = appendFrame(p.frame[:0], &frame{typ: frameEvent, headers: headers, payload: payload})
		return p.publish(s, p.evPrefix+subject, markNone)
	case abi.KindSend:
		p.frame = appendFrame(p.frame[:0], &frame{typ: frameSend, headers: headers, payload: payload})
		return p.publish(s, p.rqPrefix+subject, markNone)
	case abi.KindRequest:
		if len(p.out) >= maxOut {
			p.sweep()
			if len(p.out) >= maxOut {
				return abi.StatusBusy
			}
		}
		p.nextID++
		if p.nextID >= markOpen {
			p.nextID = 1
		}
		id := p.nextID
		p.frame = appendFrame(p.frame[:0], &frame{typ: frameRequest, id: id, inbox: []byte(p.inbox), headers: headers, payload: payload})
		if st := p.publish(s, p.rqPrefix+subject, id); st != abi.StatusOK {
			return st
		}
		p.out[id] = outReq{corr: corr, sub: s.sub, at: time.Now().UnixNano()}
		return abi.StatusOK
	}
	return abi.StatusInvalid
}
