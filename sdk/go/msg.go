package pycomms

// Msg is one message delivered to a handler. It and everything it returns
// point into the SDK's reused input buffer, so they are valid only until the
// handler returns; copy what must be kept (bytes.Clone, strings.Clone). The
// SDK reuses a single Msg value for every message of an instance, which is
// why handing out a pointer costs no allocation.
type Msg struct {
	kind       Kind
	subjectRaw []byte // the subject as delivered, inside the input buffer
	subject    string // subjectRaw as a string once known; "" until then
	payload    []byte
	rawHeaders []byte // CBOR map, empty when the message has no headers

	headers        map[string]string // decoded rawHeaders, once Headers ran
	headersDecoded bool

	replyHeaders map[string]string // set by SetReplyHeader
}

// SetReplyHeader adds a header to the reply of this request (keys are
// lower-cased; see CallWith for how a caller reads them). It has no effect
// on a send or an event, nor on a reply that is an error. The headers are
// checked when the handler returns: bad ones fail the request with
// StatusInvalid. A plugin that uses it needs a host that provides reply_h.
func (m *Msg) SetReplyHeader(key, value string) {
	setReplyHook()
	if m.replyHeaders == nil {
		m.replyHeaders = map[string]string{}
	}
	m.replyHeaders[key] = value
}

// Kind returns how the message was sent: KindRequest, KindSend or KindEvent.
func (m *Msg) Kind() Kind { return m.kind }

// Subject returns the subject of a request or send, or the topic of an
// event. For requests and sends it is the string given to Handle, so it
// costs nothing; for events the first call copies it out of the buffer.
func (m *Msg) Subject() string {
	if m.subject == "" && len(m.subjectRaw) > 0 {
		m.subject = string(m.subjectRaw)
	}
	return m.subject
}

// Payload returns the message body. The slice aliases the SDK's input
// buffer, which the next message overwrites: it is valid only until the
// handler returns, so copy it (bytes.Clone) to keep it. Appending to it is
// safe: its capacity ends where the payload ends.
func (m *Msg) Payload() []byte { return m.payload }

// Headers returns the message headers, decoded from CBOR on the first call
// and cached for the rest of the handler. It returns nil when the message
// has no headers (or, which a correct host never causes, when they do not
// decode). The map belongs to the handler; it is not reused. To read one
// header, Header avoids decoding the whole map.
func (m *Msg) Headers() map[string]string {
	if !m.headersDecoded {
		m.headersDecoded = true
		if len(m.rawHeaders) > 0 {
			m.headers, _ = decodeHeaders(m.rawHeaders)
		}
	}
	return m.headers
}

// hasHeaders reports whether the message carries any headers: the fast
// path of Header, which then needs neither a host call nor CBOR.
func (m *Msg) hasHeaders() bool { return len(m.rawHeaders) > 0 }
