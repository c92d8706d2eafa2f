package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// Limits and defaults of the control API.
const (
	// DefaultCallTimeout applies to POST /v1/call without ?timeout=.
	DefaultCallTimeout = 5 * time.Second
	// MaxCallTimeout is the longest ?timeout= a call may ask for, so that
	// a typo cannot park a request (and its handler instance) for days.
	MaxCallTimeout = time.Hour
	// DefaultMaxBody is the default limit on a request body (the payload
	// of a call, send or publish); see WithMaxBody.
	DefaultMaxBody = 64 << 20
	// DefaultSubscribeBuffer applies to GET /v1/subscribe without ?buffer=.
	DefaultSubscribeBuffer = 256
	// MaxSubscribeBuffer bounds ?buffer= so one client cannot make the
	// node hold an arbitrary number of messages for it.
	MaxSubscribeBuffer = 65536
	// HeaderPrefix marks the HTTP request headers that become message
	// headers: "Pycomms-H-Trace-Id: 7" becomes header "trace-id" = "7".
	HeaderPrefix = "Pycomms-H-"
	// SubscribeConfirmWait bounds how long the 200 of a subscription on a
	// mesh node waits for the other hosts to acknowledge it.
	SubscribeConfirmWait = time.Second
	// HeaderConfirmed and HeaderUnconfirmed are response headers of a
	// subscription's 200 on a backend that is an InterestConfirmer: how
	// many other hosts acknowledged the subscription, and how many live
	// hosts of the mesh did not (yet).
	HeaderConfirmed   = "Pycomms-Confirmed"
	HeaderUnconfirmed = "Pycomms-Unconfirmed"
)

// InterestConfirmer is implemented by a Backend whose subscriptions must
// reach other hosts (a mesh node). After a subscription is registered the
// control API calls ConfirmInterest, with a context that ends after
// SubscribeConfirmWait at most, before it answers 200.
type InterestConfirmer interface {
	// ConfirmInterest waits until the hosts that can deliver to this one
	// acknowledged what it subscribes to now, or ctx ends; it returns how
	// many did and how many other live hosts did not.
	ConfirmInterest(ctx context.Context) (confirmed, unconfirmed int)
}

// Converter is implemented by a Backend that converts payloads between
// content types (a node with codec plugins, abi/SPEC.md section 14): the
// control API uses it for a subscription with ?accept=. ConvertTo returns
// m, or a copy of it converted to the first type of accept that its
// content-type is or a codec reaches; unsupported_type when none is.
type Converter interface {
	ConvertTo(ctx context.Context, m *message.Message, accept string) (*message.Message, error)
}

// Server serves the control API for one Backend. Create it with NewServer,
// then call Serve, or mount Handler in an http.Server of your own.
type Server struct {
	backend      Backend
	version      VersionInfo
	log          *slog.Logger
	maxBody      int64
	allowedHosts map[string]bool

	// token, when set, is required on every request but those of
	// tokenExempt; metrics serves GET /metrics when set.
	token         atomic.Pointer[tokenGate]
	metrics       http.Handler
	publicMetrics atomic.Bool

	// Limits on what clients hold; see limits.go.
	headerTimeout time.Duration
	readTimeout   time.Duration
	writeTimeout  time.Duration
	maxConns      int64
	bodyBudget    budget
	conns         atomic.Int64 // connections open now
	refusing      atomic.Int64 // refused connections still being answered
	refused       atomic.Int64 // connections refused since start
	refuseLogged  atomic.Int64 // unix nanoseconds of the last refusal warning
	busyAnswer    []byte       // the raw 503 sent to refused connections

	handler http.Handler
	http    *http.Server

	// done is closed by Shutdown so that subscription streams, which never
	// finish on their own, end and let the HTTP server drain.
	done     chan struct{}
	doneOnce sync.Once
}

// Option configures a Server.
type Option func(*Server)

// WithMaxBody sets the largest request body accepted, in bytes; a larger one
// is answered with 413 and status too_large. n <= 0 keeps DefaultMaxBody.
func WithMaxBody(n int64) Option {
	return func(s *Server) {
		if n > 0 {
			s.maxBody = n
		}
	}
}

// WithAllowedHosts lists host names (without port) that requests may use in
// their Host header besides IP literals and "localhost". Any other name is
// refused, because a browser tricked by DNS rebinding sends the attacker's
// name; a node whose control API is reached by name (for example from a
// container network) must list that name here. The node passes its
// control.allow_hosts key.
func WithAllowedHosts(names ...string) Option {
	return func(s *Server) {
		for _, n := range names {
			s.allowedHosts[strings.ToLower(n)] = true
		}
	}
}

// WithToken makes the server require "Authorization: Bearer TOKEN" on
// every request except the health probes (/healthz, /readyz) and, with
// WithPublicMetrics, /metrics; others are answered 401 with status denied.
// The comparison is constant-time and the token is never logged. "" keeps
// the API open (the node allows that on loopback and unix sockets only).
func WithToken(token string) Option {
	return func(s *Server) {
		s.SetToken(token)
	}
}

// WithMetrics serves h (a Prometheus text exposition) on GET /metrics.
func WithMetrics(h http.Handler) Option {
	return func(s *Server) { s.metrics = h }
}

// WithPublicMetrics lets GET /metrics through without the token
// (control.public_metrics), for a scraper that cannot send one.
func WithPublicMetrics(public bool) Option {
	return func(s *Server) { s.publicMetrics.Store(public) }
}

// SetToken replaces the token a running server requires ("" opens it, as
// WithToken): a reload that rotates control.token_file. A request already
// admitted finishes; every later one is checked against the new token.
func (s *Server) SetToken(token string) {
	if token == "" {
		s.token.Store(nil)
		return
	}
	s.token.Store(newTokenGate(token))
}

// SetPublicMetrics changes WithPublicMetrics on a running server.
func (s *Server) SetPublicMetrics(public bool) { s.publicMetrics.Store(public) }

// NewServer returns a control API server for b that reports v on
// GET /v1/version and logs to logger (nil discards logs).
func NewServer(b Backend, v VersionInfo, logger *slog.Logger, opts ...Option) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		backend:       b,
		version:       v,
		log:           logger,
		maxBody:       DefaultMaxBody,
		allowedHosts:  map[string]bool{"localhost": true},
		headerTimeout: DefaultHeaderTimeout,
		readTimeout:   DefaultReadTimeout,
		writeTimeout:  DefaultWriteTimeout,
		bodyBudget:    budget{size: DefaultBodyBudget},
		done:          make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.maxConns == 0 {
		s.maxConns = defaultMaxConns(openFileLimit())
	}
	// A budget below the largest body would refuse that body forever and
	// call it busy; too_large is the honest answer, so raise the budget.
	s.bodyBudget.size = max(s.bodyBudget.size, s.maxBody+1)
	s.busyAnswer = busyResponse(s.maxConns)
	s.handler = s.routes()
	s.http = &http.Server{
		Handler: s.handler,
		// ReadTimeout covers reading the request (headers and body) only:
		// net/http clears the read deadline once the body is read, so a
		// call waiting for its reply and a subscription stream are not
		// cut. There is no WriteTimeout, which would bound the whole
		// response; each write gets its own deadline instead (writeAll,
		// handleSubscribe).
		ReadHeaderTimeout: s.headerTimeout,
		ReadTimeout:       s.readTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the control API as an http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve accepts connections on l until Shutdown is called; it then returns
// nil. Any other return is the listener's error. Serve may be called for
// several listeners (say, IPv4 and IPv6 loopback).
func (s *Server) Serve(l net.Listener) error {
	s.log.Info("control API listening", "addr", l.Addr().String())
	if err := s.http.Serve(&limitListener{Listener: l, s: s}); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control API on %s: %w", l.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections, ends every subscription stream and
// waits for in-flight requests to finish. When ctx ends first, the remaining
// connections are closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.doneOnce.Do(func() { close(s.done) })
	if err := s.http.Shutdown(ctx); err != nil {
		// Graceful drain did not finish in time: cut the rest, so that
		// Shutdown returning means nothing is served any more.
		_ = s.http.Close()
		return fmt.Errorf("control API shutdown: %w", err)
	}
	return nil
}

// routes builds the mux. Every route is registered twice: with its method,
// and without it as a JSON 405 fallback, because the mux's own 405 answer is
// plain text and clients expect an ErrorBody from every failure.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", method)
			s.writeErrorCode(w, r, http.StatusMethodNotAllowed,
				message.Errorf(abi.StatusInvalid, "method %s not allowed on %s (use %s)", r.Method, r.URL.Path, method))
		})
	}
	route(http.MethodPost, "/v1/call/{subject}", s.handleCall)
	route(http.MethodPost, "/v1/send/{subject}", s.handleSend)
	route(http.MethodPost, "/v1/publish/{topic}", s.handlePublish)
	route(http.MethodGet, "/v1/subscribe/{pattern}", s.handleSubscribe)
	route(http.MethodGet, "/v1/plugins", s.handlePlugins)
	route(http.MethodGet, "/v1/peers", s.handlePeers)
	route(http.MethodGet, "/v1/queues", s.handleQueues)
	route(http.MethodGet, "/v1/queues/{name}/dead", s.handleDeadLetters)
	mux.HandleFunc("DELETE /v1/queues/{name}/dead", s.handlePurgeDead)
	route(http.MethodPost, "/v1/queues/{name}/redrive", s.handleRedrive)
	route(http.MethodGet, "/v1/health", s.handleHealth)
	route(http.MethodGet, "/v1/version", s.handleVersion)
	route(http.MethodPost, "/v1/reload", s.handleReload)
	s.probeRoutes(route) // /healthz, /readyz: need no credentials (probes.go)
	if s.metrics != nil {
		route(http.MethodGet, MetricsPath, s.metrics.ServeHTTP)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, message.Errorf(abi.StatusNoHandler, "no control API route %s %s", r.Method, r.URL.Path))
	})
	return s.guard(mux)
}

// guard refuses browser-originated requests and logs every request.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		gate := s.token.Load()
		switch {
		case r.Header.Get("Origin") != "":
			// Browsers send Origin on cross-site POSTs and fetches; no
			// legitimate client of this API is a web page.
			s.writeError(rec, r, message.Errorf(abi.StatusDenied,
				"control API refuses browser requests (Origin %q)", r.Header.Get("Origin")))
		case !s.hostAllowed(r.Host):
			s.writeError(rec, r, message.Errorf(abi.StatusDenied,
				"control API refuses Host %q: use an IP address or localhost, or add the name to control.allow_hosts in the node's config", r.Host))
		case gate != nil && !s.tokenExempt(r.URL.Path):
			if why := gate.check(r); why != "" {
				rec.Header().Set("WWW-Authenticate", `Bearer realm="pycomms-host"`)
				s.writeErrorCode(rec, r, http.StatusUnauthorized, message.Errorf(abi.StatusDenied, "%s", why))
				break
			}
			next.ServeHTTP(rec, r)
		default:
			next.ServeHTTP(rec, r)
		}
		s.log.Debug("control request", "method", r.Method, "path", r.URL.Path,
			"status", rec.status(), "duration", time.Since(start))
	})
}

// MetricsPath is where the Prometheus metrics are served.
const MetricsPath = "/metrics"

// tokenExempt reports whether a path is served without the token: the
// health probes, which a supervisor or load balancer polls without
// credentials and which reveal only up/ready and why not, and /metrics
// when control.public_metrics says so. This is the only place that
// decides; every other path needs the token when one is configured.
func (s *Server) tokenExempt(path string) bool {
	if path == MetricsPath {
		return s.publicMetrics.Load()
	}
	return slices.Contains(ProbePaths, path)
}

// hostAllowed reports whether a Host header value is an IP literal, an
// allowed name, or absent (HTTP/1.0 clients; browsers always send it).
func (s *Server) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(host) != nil {
		return true
	}
	return s.allowedHosts[strings.ToLower(strings.TrimSuffix(host, "."))]
}

func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	timeout, err := parseTimeout(r.URL.Query().Get("timeout"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	node, mesh, err := s.nodeParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	payload, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	var replyHeaders abi.Headers
	m := &message.Message{
		Kind:         abi.KindRequest,
		Subject:      r.PathValue("subject"),
		Payload:      payload,
		Headers:      messageHeaders(r.Header),
		Deadline:     deadline,
		From:         "control",
		ReplyHeaders: &replyHeaders,
	}
	var reply []byte
	if node != "" {
		reply, err = mesh.CallNode(ctx, node, m)
	} else {
		reply, err = s.backend.Call(ctx, m)
	}
	release() // handed off: the reply may be written slowly
	if err != nil {
		var me *message.Error
		if !errors.As(err, &me) && errors.Is(err, context.DeadlineExceeded) {
			// A bare context error says nothing about what timed out.
			on := ""
			if node != "" {
				on = " on node " + node
			}
			err = message.Errorf(abi.StatusTimeout, "call %s%s: no reply within %v", m.Subject, on, timeout)
		}
		s.writeError(w, r, err)
		return
	}
	setReplyHeaders(w.Header(), replyHeaders)
	// The reply's content-type (abi/SPEC.md section 14.5) is the HTTP
	// Content-Type too.
	contentType := "application/octet-stream"
	if ct := replyHeaders["content-type"]; ct != "" {
		contentType = ct
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(reply)))
	w.WriteHeader(http.StatusOK)
	s.writeAll(w, reply)
}

// setReplyHeaders adds a reply's message headers to the response as
// Pycomms-H-<name>, the way messageHeaders reads a request's. A header
// whose name HTTP does not allow in a field name, or whose value holds a
// control character, cannot be written as it is and is left out rather
// than altered: the response shows a handler's headers exactly or not at
// all.
func setReplyHeaders(dst http.Header, h abi.Headers) {
	for k, v := range h {
		if !httpToken(k) || !httpFieldValue(v) {
			continue
		}
		dst[http.CanonicalHeaderKey(HeaderPrefix+k)] = []string{v}
	}
}

// httpToken reports whether s is a token (RFC 9110 section 5.6.2), what
// a field name must be. (golang.org/x/net/http/httpguts has this, but
// would pull in golang.org/x/text for its other functions.)
func httpToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// httpFieldValue reports whether s can be a field value as it is: no
// control character but tab (RFC 9110 section 5.5).
func httpFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	node, mesh, err := s.nodeParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	payload, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	m := &message.Message{
		Kind:    abi.KindSend,
		Subject: r.PathValue("subject"),
		Payload: payload,
		Headers: messageHeaders(r.Header),
		From:    "control",
	}
	if node != "" {
		err = mesh.SendNode(r.Context(), node, m)
	} else {
		err = s.backend.Send(r.Context(), m)
	}
	release()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusAccepted, okBody{OK: true})
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	payload, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	m := &message.Message{
		Kind:    abi.KindEvent,
		Subject: r.PathValue("topic"),
		Payload: payload,
		Headers: messageHeaders(r.Header),
		From:    "control",
	}
	n, err := s.backend.Publish(r.Context(), m)
	release()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, receiversBody{Receivers: n})
}

func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	pattern := r.PathValue("pattern")
	buffer, err := parseBuffer(r.URL.Query().Get("buffer"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	accept := r.URL.Query().Get("accept")
	conv, canConvert := s.backend.(Converter)
	if accept != "" && !canConvert {
		s.writeError(w, r, message.Errorf(abi.StatusUnsupportedType, "this node converts no content types (accept=%s)", accept))
		return
	}
	select {
	case <-s.done:
		s.writeError(w, r, message.Errorf(abi.StatusBusy, "control API is shutting down"))
		return
	default:
	}
	sub, err := s.backend.Subscribe(pattern, buffer)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer sub.Close()
	if ic, ok := s.backend.(InterestConfirmer); ok {
		ctx, cancel := context.WithTimeout(r.Context(), SubscribeConfirmWait)
		confirmed, unconfirmed := ic.ConfirmInterest(ctx)
		cancel()
		w.Header().Set(HeaderConfirmed, strconv.Itoa(confirmed))
		w.Header().Set(HeaderUnconfirmed, strconv.Itoa(unconfirmed))
	}

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// Flush the header now: the client learns that the subscription is in
	// place (and, on a mesh node, acknowledged) before the first message,
	// not with it.
	if err := rc.Flush(); err != nil {
		return
	}
	s.log.Debug("subscription started", "pattern", pattern, "buffer", buffer)
	delivered := 0
	var skipped uint64
	end := "client left"
	defer func() {
		s.log.Debug("subscription ended", "pattern", pattern, "reason", end,
			"delivered", delivered, "dropped", sub.Dropped(), "skipped", skipped)
	}()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			end = "shutdown"
			return
		case m, ok := <-sub.C():
			if !ok {
				end = "closed by node"
				return
			}
			if accept != "" {
				cm, err := conv.ConvertTo(r.Context(), m, accept)
				if err != nil {
					// One event that cannot be converted must not end
					// the stream: it is skipped, counted and logged.
					skipped++
					s.log.Warn("event skipped: it cannot be converted to what the subscriber accepts",
						"pattern", pattern, "subject", m.Subject, "accept", accept, "err", err)
					continue
				}
				m = cm
			}
			line := StreamMessage{
				Subject: m.Subject,
				Headers: m.Headers,
				Payload: m.Payload,
				Dropped: sub.Dropped(),
				Skipped: skipped,
			}
			// Stable JSON for consumers: {} and "" rather than null.
			if line.Headers == nil {
				line.Headers = map[string]string{}
			}
			if line.Payload == nil {
				line.Payload = []byte{}
			}
			_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
			if err := enc.Encode(line); err != nil {
				end = "write failed: " + err.Error()
				return
			}
			if err := rc.Flush(); err != nil {
				end = "flush failed: " + err.Error()
				return
			}
			delivered++
		}
	}
}

func (s *Server) handlePlugins(w http.ResponseWriter, r *http.Request) {
	list := s.backend.Plugins()
	if list == nil {
		list = []PluginInfo{} // "[]", not "null", for an empty node
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	mesh, ok := s.mesh()
	if !ok {
		s.writeError(w, r, errNotMesh())
		return
	}
	list := mesh.Peers()
	if list == nil {
		list = []PeerInfo{} // "[]", not "null", for a node without peers
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := s.backend.Health()
	if mesh, ok := s.mesh(); ok {
		if h.ID == "" {
			h.ID = mesh.ID()
		}
		if h.Peers == 0 || h.Members == 0 {
			list := mesh.Peers()
			if h.Peers == 0 {
				h.Peers = peersUp(list)
			}
			if h.Members == 0 {
				h.Members = liveHosts(list)
			}
		}
	}
	s.writeJSON(w, r, http.StatusOK, h)
}

// peersUp counts the peers in state "up".
func peersUp(list []PeerInfo) int {
	n := 0
	for _, p := range list {
		if p.State == PeerUp {
			n++
		}
	}
	return n
}

// liveHosts counts the hosts a mesh node can reach now: up, relayed or
// live members further away.
func liveHosts(list []PeerInfo) int {
	n := 0
	for _, p := range list {
		if p.State.Reachable() {
			n++
		}
	}
	return n
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, s.version)
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	rl, ok := s.backend.(Reloader)
	if !ok {
		s.writeError(w, r, message.Errorf(abi.StatusNoHandler, "this node does not support reload over the control API"))
		return
	}
	if err := rl.Reload(r.Context()); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			err = message.Errorf(abi.StatusInvalid, "reload refused, the running config keeps serving: %v", ce.Err)
		}
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, okBody{OK: true})
}

// okBody and receiversBody are the JSON bodies of send/reload and publish.
type okBody struct {
	OK bool `json:"ok"`
}

type receiversBody struct {
	Receivers int `json:"receivers"`
}

// readBody reads the whole request body, refusing one above the limit with
// too_large before allocating for it when Content-Length tells in advance.
// The bytes it holds beyond freeBody are reserved in the server's body
// budget, and busy is the answer when they do not fit. A body of known
// length reserves its length up front. One of unknown length (chunked)
// reserves the largest body allowed once it outgrows freeBody, and gives
// back what it did not use at its end: reserving as its buffer doubles
// would let many such bodies grow side by side until the budget is full
// and then leave all but a few, and the garbage of their buffers, behind.
// The caller must call release, at the latest when it returns, once the
// payload is handed off; release may be called more than once.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (payload []byte, release func(), err error) {
	var held int64
	release = func() {
		s.bodyBudget.release(held)
		held = 0
	}
	tooLarge := message.Errorf(abi.StatusTooLarge,
		"request body exceeds the control API limit of %d bytes", s.maxBody)
	if r.ContentLength > s.maxBody {
		return nil, release, tooLarge
	}
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	// reserve makes held cover a buffer of capacity bytes, or reads the
	// rest of the body into nothing and answers busy. Reading the rest
	// costs no memory, and a client still sending its body (most do not
	// wait for 100-continue) then reads the answer instead of a reset.
	reserve := func(capacity int64) error {
		n := max(capacity-freeBody, 0) - held
		if n <= 0 || s.bodyBudget.reserve(n) {
			held += max(n, 0)
			return nil
		}
		inUse := s.bodyBudget.inUse()
		release()
		busy := message.Errorf(abi.StatusBusy,
			"control API busy: request bodies in progress hold %d of its %d-byte budget, this one needs %d more",
			inUse, s.bodyBudget.size, n)
		if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
			return busy // the client has not sent the body, and will not
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return s.bodyError(err, tooLarge)
		}
		return busy
	}
	// One spare byte lets the final read see EOF without reallocating.
	size := r.ContentLength + 1
	if r.ContentLength < 0 {
		size = min(chunkedStart, s.maxBody+1)
	}
	if err := reserve(size); err != nil {
		return nil, release, err
	}
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			// Only a body of unknown length gets here: MaxBytesReader
			// stops it at maxBody, so the buffer needs at most one more.
			grown := min(2*int64(cap(b)), s.maxBody+1)
			if grown > freeBody {
				if err := reserve(s.maxBody + 1); err != nil {
					return nil, release, err
				}
			}
			b = append(make([]byte, 0, grown), b...)
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			if used := max(int64(cap(b))-freeBody, 0); held > used {
				s.bodyBudget.release(held - used)
				held = used
			}
			return b, release, nil
		}
		if err != nil {
			return nil, release, s.bodyError(err, tooLarge)
		}
	}
}

// chunkedStart is the first buffer for a body of unknown length.
const chunkedStart = 32 << 10

// bodyError classifies a failure to read a request body.
func (s *Server) bodyError(err, tooLarge error) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return tooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return &codedError{code: http.StatusRequestTimeout, err: message.Errorf(abi.StatusTimeout,
			"request not received within %v: send headers and body faster", s.readTimeout)}
	default:
		return message.Errorf(abi.StatusInvalid, "read request body: %v", err)
	}
}

// codedError is an error answered with an HTTP code other than the one of
// its status: 408 for a client too slow to send its request, which is a
// timeout but not the gateway timeout (504) that status maps to.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// writeAll writes b as (the rest of) the response body within the write
// timeout and flushes it, so that a client that does not read cannot block
// the handler. After a failure the deadline is left expired: the connection
// is dead and net/http will not reuse it.
func (s *Server) writeAll(w http.ResponseWriter, b []byte) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if _, err := w.Write(b); err != nil {
		return // a client that left cannot be told anything
	}
	if err := rc.Flush(); err != nil {
		return
	}
	_ = rc.SetWriteDeadline(time.Time{})
}

// messageHeaders collects the Pycomms-H-* request headers as message
// headers with lower-cased names. Repeated headers are joined with ", ", as
// HTTP itself combines repeated fields. The plain HTTP Content-Type and
// Accept become content-type and accept too (API.md, "Content types"),
// unless a Pycomms-H- header sets them, and except for the values that
// clients send by default and that say nothing about the payload:
// application/octet-stream and application/x-www-form-urlencoded (curl
// -d), and an Accept of */* alone.
func messageHeaders(h http.Header) abi.Headers {
	var out abi.Headers
	set := func(k, v string) {
		if out == nil {
			out = abi.Headers{}
		}
		out[k] = v
	}
	for k, vs := range h {
		if len(k) <= len(HeaderPrefix) || !strings.EqualFold(k[:len(HeaderPrefix)], HeaderPrefix) {
			continue
		}
		set(strings.ToLower(k[len(HeaderPrefix):]), strings.Join(vs, ", "))
	}
	if ct := h.Get("Content-Type"); ct != "" && out["content-type"] == "" {
		if mt, _, _ := strings.Cut(strings.ToLower(ct), ";"); !slices.Contains(untypedContentTypes, strings.TrimSpace(mt)) {
			set("content-type", ct)
		}
	}
	if acc := strings.Join(h.Values("Accept"), ", "); acc != "" && strings.TrimSpace(acc) != "*/*" && out["accept"] == "" {
		set("accept", acc)
	}
	return out
}

// untypedContentTypes are the HTTP Content-Types that do not become a
// message's content-type: they are what clients send when nobody chose a
// type.
var untypedContentTypes = []string{"application/octet-stream", "application/x-www-form-urlencoded"}

// nodeParam reads ?node= of a call or send: "" when absent or empty (the
// message goes wherever the subject is served), else the node reference and
// the backend's Mesh, which must exist.
func (s *Server) nodeParam(r *http.Request) (string, Mesh, error) {
	node := r.URL.Query().Get("node")
	if node == "" {
		return "", nil, nil
	}
	mesh, ok := s.mesh()
	if !ok {
		return "", nil, errNotMesh()
	}
	return node, mesh, nil
}

// mesh returns the backend as a Mesh when it is one and takes part in a
// mesh now.
func (s *Server) mesh() (Mesh, bool) {
	m, ok := s.backend.(Mesh)
	if !ok || !m.InMesh() {
		return nil, false
	}
	return m, true
}

// errNotMesh answers the mesh routes of a Backend that is not a Mesh.
func errNotMesh() error {
	return message.Errorf(abi.StatusNoHandler, "this node is not part of a mesh")
}

// parseTimeout parses ?timeout= of a call.
func parseTimeout(v string) (time.Duration, error) {
	if v == "" {
		return DefaultCallTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, message.Errorf(abi.StatusInvalid,
			"timeout %q: not a duration (use e.g. 500ms, 5s, 2m)", v)
	}
	if d <= 0 || d > MaxCallTimeout {
		return 0, message.Errorf(abi.StatusInvalid,
			"timeout %q: must be more than 0 and at most %v", v, MaxCallTimeout)
	}
	return d, nil
}

// parseBuffer parses ?buffer= of a subscription.
func parseBuffer(v string) (int, error) {
	if v == "" {
		return DefaultSubscribeBuffer, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxSubscribeBuffer {
		return 0, message.Errorf(abi.StatusInvalid,
			"buffer %q: must be a whole number from 1 to %d", v, MaxSubscribeBuffer)
	}
	return n, nil
}

// statusOf classifies a Backend error. A bare context.DeadlineExceeded is a
// timeout even when the backend did not wrap it in a *message.Error.
func statusOf(err error) abi.Status {
	var me *message.Error
	if !errors.As(err, &me) && errors.Is(err, context.DeadlineExceeded) {
		return abi.StatusTimeout
	}
	return message.StatusOf(err)
}

// writeError answers with the ErrorBody for err and the HTTP code of its
// status.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *codedError
	if errors.As(err, &ce) {
		s.writeErrorCode(w, r, ce.code, err)
		return
	}
	s.writeErrorCode(w, r, HTTPStatus(statusOf(err)), err)
}

func (s *Server) writeErrorCode(w http.ResponseWriter, r *http.Request, code int, err error) {
	st := statusOf(err)
	if st == abi.StatusInternal {
		// Internal failures are the host's fault: worth a line in the log
		// even when debug logging is off.
		s.log.Warn("control request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if st == abi.StatusBusy {
		w.Header().Set("Retry-After", "1")
	}
	s.writeJSON(w, r, code, ErrorBody{Error: err.Error(), Status: st.String(), Code: int(st)})
}

// writeJSON answers with v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a Backend returning unencodable values gets here.
		s.log.Error("control response encoding failed", "path", r.URL.Path, "err", err)
		code = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{
			Error:  "encode response: " + err.Error(),
			Status: abi.StatusInternal.String(),
			Code:   int(abi.StatusInternal),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	s.writeAll(w, append(b, '\n'))
}

// statusRecorder remembers the response code for the request log. Unwrap
// lets http.ResponseController reach the real writer for Flush and write
// deadlines.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
