package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// callGrace is how long a Client waits beyond a call's timeout for the
// node's own timeout answer before giving up itself. The node enforces the
// timeout; the client-side bound only keeps a wedged node from hanging the
// caller forever.
const callGrace = 2 * time.Second

// maxErrorBody bounds how much of an error response the client reads.
const maxErrorBody = 64 << 10

// Client talks to a node's control API. It is safe for concurrent use.
//
// Every error a Client returns is a *message.Error whose Status says what
// went wrong (use message.StatusOf): the node's own status for an API error,
// abi.StatusUnreachable when the node cannot be reached, abi.StatusTimeout
// when a deadline passed, abi.StatusInvalid for arguments refused before
// anything is sent. The one exception is cancellation: when ctx is
// cancelled the error wraps context.Canceled.
type Client struct {
	base string // scheme://host:port, no trailing slash
	addr string // host:port, for error messages
	err  error  // a bad address given to NewClient, returned by every method
	hc   *http.Client
}

// NewClient returns a client for the control API at addr: "host:port",
// "host" (port 7480) or "http://host:port"; "" means DefaultAddr. A bad
// address is reported by the first method called, so that NewClient can be
// used in an expression.
func NewClient(addr string) *Client {
	c := &Client{
		hc: &http.Client{Transport: &http.Transport{
			// The control API is local: an HTTP_PROXY set for the user's
			// internet traffic must not capture it.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
	c.base, c.addr, c.err = parseAddr(addr)
	return c
}

// parseAddr normalises a control address to a base URL and host:port.
func parseAddr(addr string) (base, hostport string, err error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		addr = DefaultAddr
	}
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", addr, message.Errorf(abi.StatusInvalid, "control address %q: %v", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", addr, message.Errorf(abi.StatusInvalid, "control address %q: scheme must be http or https", addr)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", addr, message.Errorf(abi.StatusInvalid, "control address %q: no host", addr)
	}
	if u.Port() == "" && !strings.Contains(addr, "://") {
		// A bare host means the standard control port, not HTTP's 80.
		_, port, _ := net.SplitHostPort(DefaultAddr)
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"), u.Host, nil
}

// Addr returns the host:port the client talks to.
func (c *Client) Addr() string { return c.addr }

// CloseIdleConnections closes kept-alive connections that are not in use.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Call sends a request to subject and returns the reply. timeout is how long
// the node waits for the reply (0 means DefaultCallTimeout); headers become
// message headers and must be valid HTTP field names and values.
func (c *Client) Call(ctx context.Context, subject string, payload []byte, headers map[string]string, timeout time.Duration) ([]byte, error) {
	return c.CallNode(ctx, "", subject, payload, headers, timeout)
}

// CallNode is Call delivered only to the named node of the mesh: a node
// name, a node id or an id prefix of at least 6 characters. An unknown
// node is abi.StatusUnreachable, a name or prefix that several nodes match
// is abi.StatusInvalid (the error lists their ids), and a node outside a
// mesh answers abi.StatusNoHandler. node "" means any node, as Call.
func (c *Client) CallNode(ctx context.Context, node, subject string, payload []byte, headers map[string]string, timeout time.Duration) ([]byte, error) {
	op := "call " + subject
	if timeout < 0 {
		return nil, message.Errorf(abi.StatusInvalid, "%s: timeout %v must not be negative", op, timeout)
	}
	q := url.Values{}
	wait := DefaultCallTimeout
	if timeout > 0 {
		q.Set("timeout", timeout.String())
		wait = timeout
	}
	if node != "" {
		q.Set("node", node)
	}
	var cancel context.CancelFunc
	ctx, cancel = context.WithTimeout(ctx, wait+callGrace)
	defer cancel()
	resp, err := c.do(ctx, op, http.MethodPost, "/v1/call/", subject, q, payload, headers)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.transportError(ctx, op, err)
	}
	return reply, nil
}

// Send delivers a one-way message to subject.
func (c *Client) Send(ctx context.Context, subject string, payload []byte, headers map[string]string) error {
	return c.SendNode(ctx, "", subject, payload, headers)
}

// SendNode is Send delivered only to the named node of the mesh (see
// CallNode). node "" means any node, as Send.
func (c *Client) SendNode(ctx context.Context, node, subject string, payload []byte, headers map[string]string) error {
	op := "send " + subject
	var q url.Values
	if node != "" {
		q = url.Values{"node": {node}}
	}
	resp, err := c.do(ctx, op, http.MethodPost, "/v1/send/", subject, q, payload, headers)
	if err != nil {
		return err
	}
	return c.decode(ctx, op, resp, &okBody{})
}

// Publish publishes an event on topic and returns how many subscribers
// received it.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, headers map[string]string) (int, error) {
	op := "publish " + topic
	resp, err := c.do(ctx, op, http.MethodPost, "/v1/publish/", topic, nil, payload, headers)
	if err != nil {
		return 0, err
	}
	var body receiversBody
	if err := c.decode(ctx, op, resp, &body); err != nil {
		return 0, err
	}
	return body.Receivers, nil
}

// Subscribe streams the events matching pattern to fn, one call at a time,
// until ctx is done (it returns ctx's error), fn returns an error (it
// returns that error), or the node ends the stream (it returns nil).
func (c *Client) Subscribe(ctx context.Context, pattern string, fn func(*message.Message) error) error {
	return c.SubscribeBuffered(ctx, pattern, 0, func(m *message.Message, _ uint64) error { return fn(m) })
}

// SubscribeBuffered is Subscribe with the node-side buffer size (0 means
// DefaultSubscribeBuffer) and, for each message, the running count of
// messages the node has dropped for this subscription because the client
// read too slowly.
func (c *Client) SubscribeBuffered(ctx context.Context, pattern string, buffer int, fn func(m *message.Message, dropped uint64) error) error {
	return c.SubscribeAccept(ctx, pattern, buffer, "", func(m *message.Message, st StreamCounts) error { return fn(m, st.Dropped) })
}

// StreamCounts are the running counts of a subscription stream: events
// dropped for a slow reader, and events skipped because they could not be
// converted to the subscription's accept.
type StreamCounts struct{ Dropped, Skipped uint64 }

// SubscribeAccept is SubscribeBuffered with the events converted by the
// node to the first media type of accept (a list as in an HTTP Accept
// header) a codec reaches; an event that cannot be converted is skipped by
// the node (and counted in the stream's skipped). accept "" converts
// nothing.
func (c *Client) SubscribeAccept(ctx context.Context, pattern string, buffer int, accept string, fn func(m *message.Message, counts StreamCounts) error) error {
	op := "subscribe " + pattern
	q := url.Values{}
	if buffer > 0 {
		q.Set("buffer", fmt.Sprint(buffer))
	}
	if accept != "" {
		q.Set("accept", accept)
	}
	resp, err := c.do(ctx, op, http.MethodGet, "/v1/subscribe/", pattern, q, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var line StreamMessage
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", op, ctx.Err())
			}
			if errors.Is(err, io.EOF) {
				return nil // the node ended the stream cleanly
			}
			var syn *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if errors.As(err, &syn) || errors.As(err, &typ) {
				return message.Errorf(abi.StatusInternal, "%s: bad stream line from node at %s: %v", op, c.addr, err)
			}
			return c.transportError(ctx, op, err)
		}
		m := &message.Message{Kind: abi.KindEvent, Subject: line.Subject, Payload: line.Payload}
		if len(line.Headers) > 0 {
			m.Headers = abi.Headers(line.Headers)
		}
		if err := fn(m, StreamCounts{Dropped: line.Dropped, Skipped: line.Skipped}); err != nil {
			return err
		}
	}
}

// Plugins lists the node's plugins.
func (c *Client) Plugins(ctx context.Context) ([]PluginInfo, error) {
	var out []PluginInfo
	if err := c.get(ctx, "plugins", "/v1/plugins", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Peers lists the hosts a mesh node knows. A node outside a mesh answers
// abi.StatusNoHandler.
func (c *Client) Peers(ctx context.Context) ([]PeerInfo, error) {
	var out []PeerInfo
	if err := c.get(ctx, "peers", "/v1/peers", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Health returns the node's health summary.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	err := c.get(ctx, "health", "/v1/health", &out)
	return out, err
}

// Version returns the node's build and ABI versions.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var out VersionInfo
	err := c.get(ctx, "version", "/v1/version", &out)
	return out, err
}

// Reload asks the node to re-read its config and reload its plugins.
func (c *Client) Reload(ctx context.Context) error {
	resp, err := c.do(ctx, "reload", http.MethodPost, "/v1/reload", "", nil, nil, nil)
	if err != nil {
		return err
	}
	return c.decode(ctx, "reload", resp, &okBody{})
}

func (c *Client) get(ctx context.Context, op, path string, v any) error {
	resp, err := c.do(ctx, op, http.MethodGet, path, "", nil, nil, nil)
	if err != nil {
		return err
	}
	return c.decode(ctx, op, resp, v)
}

// do sends one request and returns a 2xx response; every other outcome is
// turned into a *message.Error. name, when not empty, is path-escaped and
// appended to path, so subjects with any characters survive the URL.
func (c *Client) do(ctx context.Context, op, method, path, name string, q url.Values, body []byte, headers map[string]string) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	if strings.HasSuffix(path, "/") {
		if name == "" {
			return nil, message.Errorf(abi.StatusInvalid, "%s: empty subject", strings.TrimSpace(op))
		}
		path += url.PathEscape(name)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, message.Errorf(abi.StatusInvalid, "%s: %v", op, err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	for k, v := range headers {
		if err := checkHeader(k, v); err != nil {
			return nil, message.Errorf(abi.StatusInvalid, "%s: %v", op, err)
		}
		req.Header.Set(HeaderPrefix+k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, c.apiError(op, resp)
	}
	return resp, nil
}

// decode reads a JSON success body into v and closes it.
func (c *Client) decode(ctx context.Context, op string, resp *http.Response, v any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return c.transportError(ctx, op, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return message.Errorf(abi.StatusInternal, "%s: bad answer from node at %s: %v", op, c.addr, err)
	}
	return nil
}

// apiError turns an error response into a *message.Error. The status comes
// from the body's "status" name (then its "code"), never from the HTTP code,
// which several statuses share.
func (c *Client) apiError(op string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body ErrorBody
	if err := json.Unmarshal(b, &body); err != nil || (body.Status == "" && body.Code == 0) {
		// Not the control API: something else listens on that address,
		// or a proxy answered.
		return message.Errorf(abi.StatusInternal, "%s: node at %s answered %s: %q",
			op, c.addr, resp.Status, truncate(string(b), 200))
	}
	st, ok := abi.ParseStatus(body.Status)
	if !ok || st == abi.StatusOK {
		// A status name this build does not know (a newer node): trust the
		// number if it is one we know, else call it internal.
		st = abi.StatusInternal
		for _, known := range abi.Statuses() {
			if int(known) == body.Code && known != abi.StatusOK {
				st = known
			}
		}
	}
	text := body.Error
	if text == "" {
		text = fmt.Sprintf("%s: %s", op, body.Status)
	}
	return &message.Error{Status: st, Msg: text}
}

// transportError classifies a failure below HTTP: the caller's cancellation,
// a deadline, or a node that cannot be reached.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return message.Errorf(abi.StatusTimeout, "%s: no answer from node at %s before the deadline", op, c.addr)
		}
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop `Post "http://...":`, the address is named below
	}
	var oe *net.OpError
	var de *net.DNSError
	if (errors.As(err, &oe) && oe.Op == "dial") || errors.As(err, &de) {
		return message.Errorf(abi.StatusUnreachable, "cannot reach node at %s: %v", c.addr, err)
	}
	return message.Errorf(abi.StatusUnreachable, "%s: connection to node at %s failed: %v", op, c.addr, err)
}

// checkHeader refuses header names and values that HTTP cannot carry, with
// an error naming the header, instead of net/http's generic one.
func checkHeader(name, value string) error {
	if name == "" {
		return errors.New("header with empty name")
	}
	for _, r := range name {
		if r > 0x7e || r <= 0x20 || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return fmt.Errorf("header %q: name may hold only letters, digits and !#$%%&'*+-.^_`|~", name)
		}
	}
	for _, r := range value {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Errorf("header %q: value must not contain control characters", name)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
