package codec

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/internal/router"
	"github.com/pycomms/pycomms-host/host/message"
)

// The headers that carry a message's type and encoding and what a caller
// wants back (abi/SPEC.md section 14.5).
const (
	HeaderContentType     = "content-type"
	HeaderContentEncoding = "content-encoding"
	HeaderAccept          = "accept"
	HeaderAcceptEncoding  = "accept-encoding"
)

// Stats counts an endpoint's conversions; it outlives the Endpoints of one
// plugin across reloads.
type Stats struct {
	// Converted counts messages and replies converted for the plugin.
	Converted atomic.Uint64
	// Dropped counts sends and events that could not be converted for it
	// (nobody waits for them: counted and logged).
	Dropped atomic.Uint64
}

// Endpoint converts what a plugin that declares accepts gets and gives.
type Endpoint struct {
	inner     router.Endpoint
	name      string
	accepts   []string
	encodings []string
	table     *Table
	stats     *Stats
	logger    *slog.Logger
}

// NewEndpoint wraps inner, the endpoint of plugin name (a handler or a
// transport), which takes the
// media types accepts and the content codings encodings (besides
// identity); table supplies the codecs, stats the counters.
func NewEndpoint(inner router.Endpoint, name string, accepts, encodings []string, table *Table, stats *Stats, logger *slog.Logger) *Endpoint {
	return &Endpoint{inner: inner, name: name, accepts: slices.Clone(accepts), encodings: slices.Clone(encodings),
		table: table, stats: stats, logger: logger}
}

// Accepts returns the media types the endpoint takes.
func (e *Endpoint) Accepts() []string { return slices.Clone(e.accepts) }

// plain reports that m asks for no conversion at all: no type, identity
// encoding, and no preference for the reply.
func plain(m *message.Message) bool {
	h := m.Headers
	if len(h) == 0 {
		return true
	}
	enc := h[HeaderContentEncoding]
	return h[HeaderContentType] == "" && (enc == "" || enc == abi.Identity) && h[HeaderAccept] == "" && h[HeaderAcceptEncoding] == ""
}

// TryRequest serves m at once only when it needs no conversion (the mesh
// reader must never wait for a codec) and the wrapped endpoint can; ok
// false otherwise.
func (e *Endpoint) TryRequest(ctx context.Context, m *message.Message) ([]byte, bool, error) {
	tr, can := e.inner.(router.TryRequester)
	if !can || !plain(m) {
		return nil, false, nil
	}
	return tr.TryRequest(ctx, m)
}

// Post converts a send or an event for the plugin and queues it. One that
// cannot be converted is counted and logged; nobody waits for it, so
// Post reports no error for it.
func (e *Endpoint) Post(m *message.Message) error {
	if plain(m) {
		return e.inner.Post(m)
	}
	in, _, err := e.prepare(context.Background(), e.table.Load(), m)
	if err != nil {
		e.stats.Dropped.Add(1)
		e.logger.Warn("message not delivered: its payload could not be converted for the plugin",
			"plugin", e.name, "kind", m.Kind.String(), "subject", m.Subject, "err", err)
		return nil
	}
	return e.inner.Post(in)
}

// Convert returns m converted for the plugin (m itself when it needs
// nothing), for a caller that runs the plugin itself and waits for its
// status: a durable queue delivering a message. unsupported_type when no
// codec reaches a type the plugin accepts.
func (e *Endpoint) Convert(ctx context.Context, m *message.Message) (*message.Message, error) {
	if plain(m) {
		return m, nil
	}
	in, _, err := e.prepare(ctx, e.table.Load(), m)
	return in, err
}

// Request converts m for the plugin, runs it, and converts the reply to
// what the caller wants (its accept header, else its own content-type).
func (e *Endpoint) Request(ctx context.Context, m *message.Message) ([]byte, error) {
	if plain(m) {
		return e.inner.Request(ctx, m)
	}
	reg := e.table.Load()
	in, handed, err := e.prepare(ctx, reg, m)
	if err != nil {
		return nil, err
	}
	var rh abi.Headers
	if in == m {
		c := *m
		in = &c
	}
	in.ReplyHeaders = &rh
	reply, err := e.inner.Request(ctx, in)
	if err != nil {
		return nil, err
	}
	return e.reply(ctx, reg, m, handed, reply, rh)
}

// prepare returns the message to hand to the plugin (m itself when nothing
// changes, else a copy) and the media type it carries.
func (e *Endpoint) prepare(ctx context.Context, reg *Registry, m *message.Message) (*message.Message, string, error) {
	ct, ok := MediaType(m.Headers[HeaderContentType])
	if !ok {
		return nil, "", message.Errorf(abi.StatusInvalid, "content-type %q is not a media type (type/subtype)", m.Headers[HeaderContentType])
	}
	enc := strings.ToLower(strings.TrimSpace(m.Headers[HeaderContentEncoding]))
	needType := ct != "" && !slices.Contains(e.accepts, ct)
	needDecode := enc != "" && enc != abi.Identity && (needType || !slices.Contains(e.encodings, enc))
	if !needType && !needDecode {
		return m, ct, nil
	}
	payload := m.Payload
	if needDecode {
		c, ok := reg.Decoder(enc)
		if !ok {
			return nil, "", message.Errorf(abi.StatusUnsupportedType, "%s: content-encoding %q: plugin %q takes %s and no codec decodes %q",
				m.Subject, enc, e.name, e.encodingsText(), enc)
		}
		out, err := c.Conv.Convert(ctx, enc, abi.Identity, payload)
		if err != nil {
			return nil, "", convertError(m.Subject, "decode content-encoding "+enc, c.Name, err)
		}
		payload = out
	}
	handed := ct
	if needType {
		var c *Codec
		for _, a := range e.accepts {
			if x, ok := reg.Type(ct, a); ok {
				c, handed = x, a
				break
			}
		}
		if c == nil {
			return nil, "", message.Errorf(abi.StatusUnsupportedType, "%s: content-type %s: plugin %q accepts %s and no codec converts %s to any of them",
				m.Subject, ct, e.name, strings.Join(e.accepts, ", "), ct)
		}
		out, err := c.Conv.Convert(ctx, ct, handed, payload)
		if err != nil {
			return nil, "", convertError(m.Subject, "convert "+ct+" to "+handed, c.Name, err)
		}
		payload = out
	}
	e.stats.Converted.Add(1)
	c := *m
	c.Payload = payload
	c.Headers = maps.Clone(m.Headers)
	if needType {
		c.Headers[HeaderContentType] = handed
	}
	if needDecode {
		delete(c.Headers, HeaderContentEncoding)
	}
	return &c, handed, nil
}

func (e *Endpoint) encodingsText() string {
	return strings.Join(append([]string{abi.Identity}, e.encodings...), ", ")
}

// reply converts the plugin's reply: its type is the content-type it set,
// else the type it was handed; it goes to the first type of the caller's
// accept that a codec reaches, else (no accept) back to the caller's
// content-type, and is encoded when accept-encoding names a coding a codec
// encodes. The caller's ReplyHeaders get the result's content-type (and
// content-encoding).
func (e *Endpoint) reply(ctx context.Context, reg *Registry, m *message.Message, handed string, reply []byte, rh abi.Headers) ([]byte, error) {
	rtype := handed
	if v, set := rh[HeaderContentType]; set {
		t, ok := MediaType(v)
		if !ok {
			return nil, message.Errorf(abi.StatusInternal, "%s: plugin %q replied with content-type %q, which is not a media type", m.Subject, e.name, v)
		}
		rtype = t
	}
	target := rtype
	if acc := m.Headers[HeaderAccept]; acc != "" && rtype != "" {
		found := false
		for _, a := range List(acc) {
			if a == "*/*" || a == rtype {
				target, found = rtype, true
				break
			}
			if _, ok := reg.Type(rtype, a); ok {
				target, found = a, true
				break
			}
		}
		if !found {
			return nil, message.Errorf(abi.StatusUnsupportedType, "%s: plugin %q replied %s and no codec converts it to any type of accept: %s",
				m.Subject, e.name, rtype, acc)
		}
	} else if ct, _ := MediaType(m.Headers[HeaderContentType]); ct != "" && rtype != "" && ct != rtype {
		if _, ok := reg.Type(rtype, ct); ok {
			target = ct
		}
		// Else the reply goes back in its own type, which its
		// content-type says: the caller asked for nothing else.
	}
	converted := false
	if target != rtype {
		c, _ := reg.Type(rtype, target)
		out, err := c.Conv.Convert(ctx, rtype, target, reply)
		if err != nil {
			return nil, convertError(m.Subject, "convert the reply of plugin "+fmt.Sprintf("%q", e.name)+" from "+rtype+" to "+target, c.Name, err)
		}
		reply, converted = out, true
	}
	coding := ""
	for _, a := range List(m.Headers[HeaderAcceptEncoding]) {
		if a == abi.Identity || a == "*" {
			break
		}
		if c, ok := reg.Encoder(a); ok {
			out, err := c.Conv.Convert(ctx, abi.Identity, a, reply)
			if err != nil {
				return nil, convertError(m.Subject, "encode the reply as "+a, c.Name, err)
			}
			reply, coding, converted = out, a, true
			break
		}
	}
	if converted {
		e.stats.Converted.Add(1)
	}
	if m.ReplyHeaders != nil {
		out := maps.Clone(rh)
		if target != "" && (converted || out[HeaderContentType] == "") {
			if out == nil {
				out = abi.Headers{}
			}
			if target != rtype || out[HeaderContentType] == "" {
				out[HeaderContentType] = target
			}
		}
		if coding != "" {
			if out == nil {
				out = abi.Headers{}
			}
			out[HeaderContentEncoding] = coding
		}
		if out != nil {
			*m.ReplyHeaders = out
		}
	}
	return reply, nil
}

// convertError names where a conversion failed, keeping the codec's status
// (invalid input stays invalid, a trap stays a trap).
func convertError(subject, what, codec string, err error) error {
	return message.Errorf(message.StatusOf(err), "%s: %s (codec %q): %v", subject, what, codec, err)
}

// ConvertTo converts m, an event for a subscriber, to the first media type
// of accept (a list as in an accept header; */* takes any type) that its
// type is or a codec reaches, decoding a content-encoding first when that
// is needed. A message without content-type, or already of an accepted
// type, is returned as it is; otherwise a converted copy. No codec:
// unsupported_type.
func ConvertTo(ctx context.Context, reg *Registry, m *message.Message, accept string) (*message.Message, error) {
	ct, ok := MediaType(m.Headers[HeaderContentType])
	if !ok {
		return nil, message.Errorf(abi.StatusInvalid, "%s: content-type %q is not a media type", m.Subject, m.Headers[HeaderContentType])
	}
	if ct == "" {
		return m, nil
	}
	target := ""
	for _, a := range List(accept) {
		if a == "*/*" || a == ct {
			return m, nil
		}
		if _, ok := reg.Type(ct, a); ok {
			target = a
			break
		}
	}
	if target == "" {
		return nil, message.Errorf(abi.StatusUnsupportedType, "%s: content-type %s: no codec converts it to any type of accept: %s", m.Subject, ct, accept)
	}
	payload := m.Payload
	enc := strings.ToLower(strings.TrimSpace(m.Headers[HeaderContentEncoding]))
	if enc != "" && enc != abi.Identity {
		c, ok := reg.Decoder(enc)
		if !ok {
			return nil, message.Errorf(abi.StatusUnsupportedType, "%s: content-encoding %q: no codec decodes it", m.Subject, enc)
		}
		out, err := c.Conv.Convert(ctx, enc, abi.Identity, payload)
		if err != nil {
			return nil, convertError(m.Subject, "decode content-encoding "+enc, c.Name, err)
		}
		payload = out
	}
	c, _ := reg.Type(ct, target)
	out, err := c.Conv.Convert(ctx, ct, target, payload)
	if err != nil {
		return nil, convertError(m.Subject, "convert "+ct+" to "+target, c.Name, err)
	}
	cp := *m
	cp.Payload = out
	cp.Headers = maps.Clone(m.Headers)
	cp.Headers[HeaderContentType] = target
	delete(cp.Headers, HeaderContentEncoding)
	return &cp, nil
}
