//go:build wasip1

// Command linejson is a transport plugin (abi/SPEC.md section 13): a
// gateway for legacy applications that speak newline-delimited JSON over
// plain TCP. Configure it with an accept entry and the topics whose events
// it may forward; an application connects and writes one JSON object per
// line (README.md has the protocol):
//
//	{"op":"call","id":1,"subject":"inventory.reserve","data":{"sku":"a"}}
//	{"op":"send","subject":"audit.log","data":"x"}
//	{"op":"pub","topic":"orders.created","data":{"n":1}}
//	{"op":"sub","topic":"orders.>"}
//
// and reads one JSON object per line back: answers, acknowledgements and
// events. A malformed line gets an error line and the connection stays
// usable; a line longer than limits.read_buffer closes that connection
// (the host does it: the plugin never consumes a partial line).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/sdk/go/transport"
)

func init() { transport.Set(&gateway{conns: map[uint32]*client{}, calls: map[uint32]pending{}}) }

func main() {}

// gateway is the state of one instance: the connections pinned to it.
type gateway struct {
	conns map[uint32]*client
	calls map[uint32]pending // by correlation id
	corr  uint32
}

type client struct {
	subs []string // topic patterns the app subscribed to
}

// pending is a call waiting for its reply: where to answer, and with
// which id.
type pending struct {
	conn uint32
	id   json.RawMessage
}

// request is one line from the app.
type request struct {
	Op      string          `json:"op"`
	ID      json.RawMessage `json:"id,omitempty"`
	Subject string          `json:"subject,omitempty"`
	Topic   string          `json:"topic,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// answer is one line to the app.
type answer struct {
	ID     json.RawMessage `json:"id,omitempty"`
	OK     *bool           `json:"ok,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Error  string          `json:"error,omitempty"`
	Status string          `json:"status,omitempty"`
	Event  string          `json:"event,omitempty"`
}

func (g *gateway) Opened(conn uint32, _ bool, _ int) { g.conns[conn] = &client{} }

func (g *gateway) Closed(conn uint32, _ abi.Status) {
	delete(g.conns, conn)
	for corr, p := range g.calls {
		if p.conn == conn {
			delete(g.calls, corr) // its reply has nobody to go to
		}
	}
}

// Data handles every complete line and leaves a partial one to the host.
func (g *gateway) Data(conn uint32, b []byte) int {
	used := 0
	for {
		i := bytes.IndexByte(b[used:], '\n')
		if i < 0 {
			return used
		}
		line := bytes.TrimSpace(b[used : used+i])
		used += i + 1
		if len(line) > 0 {
			g.line(conn, line)
		}
	}
}

func (g *gateway) line(conn uint32, line []byte) {
	var r request
	if err := json.Unmarshal(line, &r); err != nil {
		g.fail(conn, nil, abi.StatusInvalid, "malformed line: "+err.Error())
		return
	}
	data := []byte(r.Data)
	switch r.Op {
	case "call":
		g.corr++
		if g.corr == 0 {
			g.corr = 1
		}
		if st := transport.Deliver(abi.KindRequest, g.corr, r.Subject, data, nil); st != abi.StatusOK {
			g.fail(conn, r.ID, st, fmt.Sprintf("call %q refused: %s", r.Subject, st))
			return
		}
		g.calls[g.corr] = pending{conn: conn, id: r.ID}
	case "send":
		g.ack(conn, r.ID, transport.Deliver(abi.KindSend, 0, r.Subject, data, nil), "send "+r.Subject)
	case "pub":
		g.ack(conn, r.ID, transport.Deliver(abi.KindEvent, 0, r.Topic, data, nil), "pub "+r.Topic)
	case "sub":
		if err := abi.ValidatePattern(r.Topic); err != nil {
			g.fail(conn, r.ID, abi.StatusInvalid, "sub: "+err.Error())
			return
		}
		c := g.conns[conn]
		c.subs = append(c.subs, r.Topic)
		g.ack(conn, r.ID, abi.StatusOK, "")
	case "unsub":
		c := g.conns[conn]
		kept := c.subs[:0]
		for _, s := range c.subs {
			if s != r.Topic {
				kept = append(kept, s)
			}
		}
		c.subs = kept
		g.ack(conn, r.ID, abi.StatusOK, "")
	default:
		g.fail(conn, r.ID, abi.StatusInvalid, fmt.Sprintf("unknown op %q (call, send, pub, sub, unsub)", r.Op))
	}
}

// Message forwards events to the connections subscribed to them; this
// gateway serves no service, so requests and sends have no handler here.
func (g *gateway) Message(_ uint32, kind abi.Kind, subject string, payload, _ []byte) abi.Status {
	if kind != abi.KindEvent {
		return abi.StatusNoHandler
	}
	var line []byte
	for conn, c := range g.conns {
		for _, s := range c.subs {
			if abi.Match(s, subject) {
				if line == nil {
					line = encode(answer{Event: subject, Data: asJSON(payload)})
				}
				transport.Write(conn, line)
				break
			}
		}
	}
	return abi.StatusOK
}

func (g *gateway) Reply(corr uint32, st abi.Status, b []byte) {
	p, ok := g.calls[corr]
	if !ok {
		return
	}
	delete(g.calls, corr)
	if st != abi.StatusOK {
		g.fail(p.conn, p.id, st, string(b))
		return
	}
	yes := true
	transport.Write(p.conn, encode(answer{ID: p.id, OK: &yes, Data: asJSON(b)}))
}

func (g *gateway) Timer(uint32) {}

func (g *gateway) ack(conn uint32, id json.RawMessage, st abi.Status, what string) {
	if st != abi.StatusOK {
		g.fail(conn, id, st, fmt.Sprintf("%s refused: %s", what, st))
		return
	}
	if id != nil {
		yes := true
		transport.Write(conn, encode(answer{ID: id, OK: &yes}))
	}
}

func (g *gateway) fail(conn uint32, id json.RawMessage, st abi.Status, text string) {
	no := false
	transport.Write(conn, encode(answer{ID: id, OK: &no, Error: text, Status: st.String()}))
}

// asJSON is b itself when it is JSON, else b as a JSON string: payloads
// from other plugins need not be JSON.
func asJSON(b []byte) json.RawMessage {
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func encode(a answer) []byte {
	b, _ := json.Marshal(a)
	return append(b, '\n')
}
