package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/control"
	"github.com/pycomms/pycomms-host/host/control/controltest"
	"github.com/pycomms/pycomms-host/host/message"
)

// rawResponse is an HTTP answer read in full, for tests that check the wire
// format rather than the Go client.
type rawResponse struct {
	code   int
	header http.Header
	body   []byte
}

// rawDo sends one request with a bare net/http client.
func rawDo(t *testing.T, method, url string, body io.Reader, header map[string][]string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return rawResponse{code: resp.StatusCode, header: resp.Header, body: b}
}

// errorBody decodes an ErrorBody and fails the test if it is not one.
func errorBody(t *testing.T, r rawResponse) control.ErrorBody {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e control.ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

// wantStatus fails unless err carries status st.
func wantStatus(t *testing.T, err error, st abi.Status) {
	t.Helper()
	if got := message.StatusOf(err); got != st {
		t.Fatalf("error %v: status %v, want %v", err, got, st)
	}
}

func TestCallRoundTrip(t *testing.T) {
	b := controltest.NewBackend()
	seen := make(chan *message.Message, 1)
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		seen <- m
		return append([]byte("reply:"), m.Payload...), nil
	}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)

	tests := []struct {
		name    string
		subject string
		payload []byte
		headers map[string]string
		timeout time.Duration
		want    time.Duration // the timeout the node must apply
	}{
		{"text", "inventory.reserve", []byte(`{"sku":"a1"}`), nil, 0, control.DefaultCallTimeout},
		{"binary", "svc.bin", []byte{0, 1, 2, 0xff, '\n', 0}, nil, time.Second, time.Second},
		{"empty", "svc.empty", nil, nil, 250 * time.Millisecond, 250 * time.Millisecond},
		{"headers", "svc.h", []byte("x"), map[string]string{"Trace-ID": "t-1", "content-type": "application/json"}, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			reply, err := c.Call(context.Background(), tt.subject, tt.payload, tt.headers, tt.timeout)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if want := append([]byte("reply:"), tt.payload...); !bytes.Equal(reply, want) {
				t.Errorf("reply = %q, want %q", reply, want)
			}
			m := <-seen
			if m.Kind != abi.KindRequest || m.From != "control" || m.Subject != tt.subject {
				t.Errorf("message kind %v from %q subject %q", m.Kind, m.From, m.Subject)
			}
			if !bytes.Equal(m.Payload, tt.payload) {
				t.Errorf("payload = %q, want %q", m.Payload, tt.payload)
			}
			wantHeaders := abi.Headers(nil)
			for k, v := range tt.headers {
				if wantHeaders == nil {
					wantHeaders = abi.Headers{}
				}
				wantHeaders[strings.ToLower(k)] = v
			}
			if !reflect.DeepEqual(m.Headers, wantHeaders) {
				t.Errorf("headers = %v, want %v", m.Headers, wantHeaders)
			}
			// The deadline is set on the node from the requested timeout:
			// never later than sent-time + timeout, never already passed
			// by more than the timeout itself.
			if m.Deadline.After(time.Now().Add(tt.want)) || m.Deadline.Before(before) {
				t.Errorf("deadline %v not within [%v, now+%v]", m.Deadline, before, tt.want)
			}
		})
	}
}

func TestCallWireFormat(t *testing.T) {
	b := controltest.NewBackend()
	seen := make(chan *message.Message, 1)
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		seen <- m
		return []byte{0xde, 0xad}, nil
	}
	_, addr := controltest.Start(t, b)
	r := rawDo(t, "POST", "http://"+addr+"/v1/call/svc.m?timeout=3s", strings.NewReader("hi"), map[string][]string{
		"Pycomms-H-Trace-Id": {"a", "b"},
		"pycomms-h-lower":    {"v"},
		"Pycomms-H-":         {"ignored: no name"},
		"X-Other":            {"ignored"},
	})
	if r.code != http.StatusOK || !bytes.Equal(r.body, []byte{0xde, 0xad}) {
		t.Fatalf("answer %d %q", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	m := <-seen
	want := abi.Headers{"trace-id": "a, b", "lower": "v"}
	if !reflect.DeepEqual(m.Headers, want) {
		t.Errorf("headers = %v, want %v", m.Headers, want)
	}
}

func TestCallTimeoutParameter(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b)
	tests := []struct {
		query string
		code  int
	}{
		{"", http.StatusOK},
		{"?timeout=1ms", http.StatusOK},
		{"?timeout=1h", http.StatusOK},
		{"?timeout=abc", http.StatusBadRequest},
		{"?timeout=5", http.StatusBadRequest}, // a unit is required
		{"?timeout=0s", http.StatusBadRequest},
		{"?timeout=-1s", http.StatusBadRequest},
		{"?timeout=1h1s", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := rawDo(t, "POST", "http://"+addr+"/v1/call/a.b"+tt.query, strings.NewReader("p"), nil)
			if r.code != tt.code {
				t.Fatalf("code %d (%s), want %d", r.code, r.body, tt.code)
			}
			if tt.code != http.StatusOK {
				if e := errorBody(t, r); e.Status != "invalid" || !strings.Contains(e.Error, "timeout") {
					t.Errorf("error body %+v", e)
				}
			}
		})
	}
}

// TestHTTPStatus pins the documented mapping; API.md shows the same table
// (checked by TestAPIDocMatchesMapping).
func TestHTTPStatus(t *testing.T) {
	want := map[abi.Status]int{
		abi.StatusOK:           200,
		abi.StatusDenied:       403,
		abi.StatusInvalid:      400,
		abi.StatusTooLarge:     413,
		abi.StatusNoHandler:    404,
		abi.StatusTimeout:      504,
		abi.StatusBusy:         503,
		abi.StatusHandlerError: 422,
		abi.StatusTrap:         502,
		abi.StatusNoMethod:     404,
		abi.StatusNotFound:     404,
		abi.StatusUnreachable:  502,
		abi.StatusInternal:     500,
		abi.Status(99):         500,
	}
	for st, code := range want {
		if got := control.HTTPStatus(st); got != code {
			t.Errorf("HTTPStatus(%v) = %d, want %d", st, got, code)
		}
	}
}

func TestAPIDocMatchesMapping(t *testing.T) {
	doc, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` +\\| (\\d{3}) ")
	seen := map[abi.Status]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		st, ok := abi.ParseStatus(m[1])
		if !ok {
			t.Errorf("API.md names unknown status %q", m[1])
			continue
		}
		code, _ := strconv.Atoi(m[2])
		if got := control.HTTPStatus(st); got != code {
			t.Errorf("API.md says %s → %d, HTTPStatus says %d", m[1], code, got)
		}
		seen[st] = true
	}
	for _, st := range abi.Statuses() {
		if st != abi.StatusOK && !seen[st] {
			t.Errorf("API.md status table lacks %s", st)
		}
	}
}

// TestErrorMapping checks every status both ways: the backend's error
// becomes the right HTTP code and ErrorBody, and the client turns that back
// into a *message.Error with the same status and text.
func TestErrorMapping(t *testing.T) {
	b := controltest.NewBackend()
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		name := strings.TrimPrefix(m.Subject, "fail.")
		switch name {
		case "plain":
			return nil, errors.New("disk on fire")
		case "deadline":
			return nil, fmt.Errorf("waiting: %w", context.DeadlineExceeded)
		}
		st, ok := abi.ParseStatus(name)
		if !ok {
			return nil, fmt.Errorf("test: unknown status %q", name)
		}
		return nil, message.Errorf(st, "%s failed with %s", m.Subject, st)
	}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)

	type tcase struct {
		name   string // subject suffix
		status abi.Status
		text   string
	}
	var tests []tcase
	for _, st := range abi.Statuses() {
		if st == abi.StatusOK {
			continue
		}
		tests = append(tests, tcase{st.String(), st, fmt.Sprintf("fail.%s failed with %s", st, st)})
	}
	tests = append(tests,
		tcase{"plain", abi.StatusInternal, "disk on fire"},
		tcase{"deadline", abi.StatusTimeout, "call fail.deadline: no reply within 5s"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subj := "fail." + tt.name
			r := rawDo(t, "POST", "http://"+addr+"/v1/call/"+subj, nil, nil)
			if want := control.HTTPStatus(tt.status); r.code != want {
				t.Errorf("HTTP %d, want %d", r.code, want)
			}
			e := errorBody(t, r)
			want := control.ErrorBody{Error: tt.text, Status: tt.status.String(), Code: int(tt.status)}
			if e != want {
				t.Errorf("body %+v, want %+v", e, want)
			}
			_, err := c.Call(context.Background(), subj, nil, nil, 0)
			wantStatus(t, err, tt.status)
			if err.Error() != tt.text {
				t.Errorf("client error %q, want %q", err, tt.text)
			}
		})
	}
}

func TestBusyHasRetryAfter(t *testing.T) {
	b := controltest.NewBackend()
	b.CallFunc = func(context.Context, *message.Message) ([]byte, error) {
		return nil, message.Errorf(abi.StatusBusy, "queue full")
	}
	_, addr := controltest.Start(t, b)
	r := rawDo(t, "POST", "http://"+addr+"/v1/call/a.b", nil, nil)
	if r.code != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("busy answer %d, Retry-After %q", r.code, r.header.Get("Retry-After"))
	}
}

func TestSend(t *testing.T) {
	b := controltest.NewBackend()
	b.SendFunc = func(_ context.Context, m *message.Message) error {
		if m.Subject == "full.queue" {
			return message.Errorf(abi.StatusBusy, "queue of full.queue is full")
		}
		return nil
	}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)

	r := rawDo(t, "POST", "http://"+addr+"/v1/send/mail.out", strings.NewReader("hello"),
		map[string][]string{"Pycomms-H-Prio": {"high"}})
	if r.code != http.StatusAccepted || string(r.body) != "{\"ok\":true}\n" {
		t.Fatalf("answer %d %q", r.code, r.body)
	}
	if err := c.Send(context.Background(), "mail.out", []byte("again"), map[string]string{"k": "v"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	sent := b.Sent()
	if len(sent) != 2 {
		t.Fatalf("backend got %d sends, want 2", len(sent))
	}
	for i, want := range []struct {
		payload string
		headers abi.Headers
	}{{"hello", abi.Headers{"prio": "high"}}, {"again", abi.Headers{"k": "v"}}} {
		m := sent[i]
		if m.Kind != abi.KindSend || m.From != "control" || m.Subject != "mail.out" ||
			string(m.Payload) != want.payload || !reflect.DeepEqual(m.Headers, want.headers) || !m.Deadline.IsZero() {
			t.Errorf("send %d: %+v", i, m)
		}
	}
	wantStatus(t, c.Send(context.Background(), "full.queue", nil, nil), abi.StatusBusy)
	wantStatus(t, c.Send(context.Background(), "bad..subject", nil, nil), abi.StatusInvalid)
}

// subscribe runs c.SubscribeBuffered in the background, forwarding messages
// to the returned channel; the error channel receives its result. It
// returns once the backend reports the subscription in place.
func subscribe(t *testing.T, ctx context.Context, b *controltest.Backend, c *control.Client, pattern string, buffer int) (<-chan *message.Message, <-chan uint64, <-chan error) {
	t.Helper()
	msgs := make(chan *message.Message, 100)
	drops := make(chan uint64, 100)
	done := make(chan error, 1)
	go func() {
		done <- c.SubscribeBuffered(ctx, pattern, buffer, func(m *message.Message, dropped uint64) error {
			msgs <- m
			drops <- dropped
			return nil
		})
	}()
	select {
	case got := <-b.Subscribed():
		if got != pattern {
			t.Fatalf("subscribed %q, want %q", got, pattern)
		}
	case err := <-done:
		t.Fatalf("subscribe %s ended before it started: %v", pattern, err)
	}
	return msgs, drops, done
}

func TestPublishSubscribe(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, _, done := subscribe(t, ctx, b, c, "orders.>", 0)

	events := []struct {
		topic   string
		payload []byte
		headers map[string]string
		match   bool
	}{
		{"orders.new", []byte(`{"id":1}`), map[string]string{"source": "test"}, true},
		{"other.topic", []byte("nope"), nil, false},
		{"orders.eu.paid", []byte{0, 0xff, '\n'}, nil, true},
		{"orders.empty", nil, nil, true},
	}
	for _, e := range events {
		n, err := c.Publish(ctx, e.topic, e.payload, e.headers)
		if err != nil {
			t.Fatalf("Publish %s: %v", e.topic, err)
		}
		if want := map[bool]int{true: 1, false: 0}[e.match]; n != want {
			t.Errorf("Publish %s: %d receivers, want %d", e.topic, n, want)
		}
	}
	for _, e := range events {
		if !e.match {
			continue
		}
		m := <-msgs
		var wantHeaders abi.Headers
		if e.headers != nil {
			wantHeaders = abi.Headers(e.headers)
		}
		if m.Subject != e.topic || !bytes.Equal(m.Payload, e.payload) || m.Kind != abi.KindEvent ||
			!reflect.DeepEqual(m.Headers, wantHeaders) {
			t.Errorf("got %+v, want %s %q %v", m, e.topic, e.payload, e.headers)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after cancel = %v, want context.Canceled", err)
	}
	// The server notices the client left and closes the subscription.
	if p := <-b.Unsubscribed(); p != "orders.>" {
		t.Errorf("unsubscribed %q", p)
	}
}

func TestSubscribeWireFormat(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/v1/subscribe/a.*?buffer=8", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("answer %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	<-b.Subscribed()
	if _, err := b.Publish(ctx, &message.Message{Subject: "a.b", Payload: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, &message.Message{Subject: "a.c", Headers: abi.Headers{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	r := bufioLines(resp.Body)
	for _, want := range []string{
		`{"subject":"a.b","headers":{},"payload":"aGk="}`,
		`{"subject":"a.c","headers":{"k":"v"},"payload":""}`,
	} {
		if got := <-r; got != want {
			t.Errorf("line %s, want %s", got, want)
		}
	}
}

// bufioLines reads lines from r in the background.
func bufioLines(r io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		var line []byte
		buf := make([]byte, 1)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
			if buf[0] == '\n' {
				ch <- string(line)
				line = nil
				continue
			}
			line = append(line, buf[0])
		}
	}()
	return ch
}

func TestSubscribeErrors(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	for _, q := range []string{"buffer=0", "buffer=-1", "buffer=x", "buffer=65537"} {
		r := rawDo(t, "GET", "http://"+addr+"/v1/subscribe/a.b?"+q, nil, nil)
		if e := errorBody(t, r); r.code != 400 || e.Status != "invalid" {
			t.Errorf("%s: %d %+v", q, r.code, e)
		}
	}
	err := c.Subscribe(context.Background(), "a.>.b", func(*message.Message) error { return nil })
	wantStatus(t, err, abi.StatusInvalid)
	wantStatus(t, c.Subscribe(context.Background(), "", func(*message.Message) error { return nil }), abi.StatusInvalid)
}

func TestSubscribeCallbackErrorStops(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	stop := errors.New("enough")
	done := make(chan error, 1)
	go func() {
		done <- c.Subscribe(context.Background(), "t.>", func(*message.Message) error { return stop })
	}()
	<-b.Subscribed()
	if _, err := c.Publish(context.Background(), "t.x", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, stop) {
		t.Errorf("Subscribe = %v, want the callback's error", err)
	}
	<-b.Unsubscribed()
}

// droppingBackend reports a fixed drop count, to check that the count
// travels through the stream to the client.
type droppingBackend struct{ *controltest.Backend }

type droppingSub struct{ control.Subscription }

func (droppingSub) Dropped() uint64 { return 7 }

func (d droppingBackend) Subscribe(p string, n int) (control.Subscription, error) {
	s, err := d.Backend.Subscribe(p, n)
	if err != nil {
		return nil, err
	}
	return droppingSub{s}, nil
}

func TestSubscribeReportsDropped(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, droppingBackend{b})
	c := control.NewClient(addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, drops, _ := subscribe(t, ctx, b, c, "x", 4)
	if _, err := c.Publish(ctx, "x", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	<-msgs
	if d := <-drops; d != 7 {
		t.Errorf("dropped = %d, want 7", d)
	}
}

func TestSubscribeEndsWhenNodeClosesIt(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	_, _, done := subscribe(t, context.Background(), b, c, "t.*", 0)
	b.CloseSubscriptions()
	if err := <-done; err != nil {
		t.Errorf("Subscribe after the node closed it = %v, want nil", err)
	}
}

// TestShutdownGraceful: Shutdown ends subscription streams at once, lets an
// in-flight call finish with its reply, and makes Serve return nil.
func TestShutdownGraceful(t *testing.T) {
	b := controltest.NewBackend()
	started := make(chan struct{})
	release := make(chan struct{})
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		close(started)
		<-release
		return []byte("finished"), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(b, controltest.Version, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c := control.NewClient(l.Addr().String())

	_, _, subDone := subscribe(t, context.Background(), b, c, "t.>", 0)
	type result struct {
		reply []byte
		err   error
	}
	callDone := make(chan result, 1)
	go func() {
		r, err := c.Call(context.Background(), "slow.op", nil, nil, time.Minute)
		callDone <- result{r, err}
	}()
	<-started

	shutDone := make(chan error, 1)
	go func() { shutDone <- srv.Shutdown(context.Background()) }()
	// The stream ends because Shutdown began, while the call still runs.
	if err := <-subDone; err != nil {
		t.Errorf("subscription ended with %v, want nil", err)
	}
	select {
	case err := <-shutDone:
		t.Fatalf("Shutdown returned (%v) while a call was in flight", err)
	default:
	}
	close(release)
	if r := <-callDone; r.err != nil || string(r.reply) != "finished" {
		t.Errorf("in-flight call = %q, %v", r.reply, r.err)
	}
	if err := <-shutDone; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after Shutdown", err)
	}
	_, err = c.Health(context.Background())
	wantStatus(t, err, abi.StatusUnreachable)
}

func TestShutdownDeadlineCutsConnections(t *testing.T) {
	b := controltest.NewBackend()
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		close(started)
		<-release
		return nil, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(b, controltest.Version, nil)
	go func() { _ = srv.Serve(l) }()
	c := control.NewClient(l.Addr().String())
	callDone := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "stuck.op", nil, nil, time.Minute)
		callDone <- err
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already over: no grace at all
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	wantStatus(t, <-callDone, abi.StatusUnreachable)
}

func TestPluginsHealthVersion(t *testing.T) {
	b := controltest.NewBackend()
	loaded := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	b.PluginList = []control.PluginInfo{
		{Name: "inventory", Kind: "handler", Path: "plugins/inv.wasm", Version: "3f2a9c1d", State: "serving",
			Instances: 4, Busy: 1, Calls: 1000, Errors: 3, Services: []string{"inventory"},
			Topics: []string{"orders.>"}, Grants: []string{"log", "publish"}, LoadedAt: loaded},
		{Name: "json", Kind: "codec", Path: "plugins/json.wasm", Version: "77aa", State: "failed",
			Error: "abi version 2 not accepted (host accepts 1..1)", LoadedAt: loaded},
	}
	b.HealthInfo = control.Health{Status: "ok", Node: "node-a", Uptime: 90*time.Minute + 1500*time.Millisecond, Plugins: 2, Version: "v1.2.3"}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	ctx := context.Background()

	plugins, err := c.Plugins(ctx)
	if err != nil || !reflect.DeepEqual(plugins, b.PluginList) {
		t.Errorf("Plugins = %+v, %v", plugins, err)
	}
	h, err := c.Health(ctx)
	if err != nil || h != b.HealthInfo {
		t.Errorf("Health = %+v, %v", h, err)
	}
	v, err := c.Version(ctx)
	if err != nil || v != controltest.Version {
		t.Errorf("Version = %+v, %v", v, err)
	}

	// The JSON on the wire: snake_case names, uptime as a duration string.
	r := rawDo(t, "GET", "http://"+addr+"/v1/health", nil, nil)
	if want := `{"status":"ok","node":"node-a","uptime":"1h30m1.5s","plugins":2,"peers":0,"version":"v1.2.3","ready":false}` + "\n"; string(r.body) != want {
		t.Errorf("health JSON %s, want %s", r.body, want)
	}
	r = rawDo(t, "GET", "http://"+addr+"/v1/plugins", nil, nil)
	for _, key := range []string{`"loaded_at":"2025-03-04T05:06:07.000000008Z"`, `"instances":4`, `"error":"abi version 2`} {
		if !strings.Contains(string(r.body), key) {
			t.Errorf("plugins JSON lacks %s: %s", key, r.body)
		}
	}
	r = rawDo(t, "GET", "http://"+addr+"/v1/version", nil, nil)
	for _, key := range []string{`"go_version":`, `"abi_min":1`, `"abi_max":1`, `"abi_version":1`, `"protocol_min":1`, `"protocol_max":2`} {
		if !strings.Contains(string(r.body), key) {
			t.Errorf("version JSON lacks %s: %s", key, r.body)
		}
	}
}

func TestPluginsEmptyIsArray(t *testing.T) {
	_, addr := controltest.Start(t, controltest.NewBackend())
	r := rawDo(t, "GET", "http://"+addr+"/v1/plugins", nil, nil)
	if string(r.body) != "[]\n" {
		t.Errorf("empty plugin list = %q, want []", r.body)
	}
}

func TestReload(t *testing.T) {
	b := controltest.NewBackend()
	var fail atomic.Bool
	b.ReloadFunc = func(context.Context) error {
		if fail.Load() {
			return message.Errorf(abi.StatusInvalid, "config: plugins[0].path: no such file")
		}
		return nil
	}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	if err := c.Reload(context.Background()); err != nil {
		t.Errorf("Reload = %v", err)
	}
	fail.Store(true)
	err := c.Reload(context.Background())
	wantStatus(t, err, abi.StatusInvalid)

	// A backend without reload support.
	_, addr2 := controltest.Start(t, noReload{controltest.NewBackend()})
	wantStatus(t, control.NewClient(addr2).Reload(context.Background()), abi.StatusNoHandler)
}

// noReload hides controltest.Backend's Reload method.
type noReload struct{ b *controltest.Backend }

func (n noReload) Call(ctx context.Context, m *message.Message) ([]byte, error) {
	return n.b.Call(ctx, m)
}
func (n noReload) Send(ctx context.Context, m *message.Message) error { return n.b.Send(ctx, m) }
func (n noReload) Publish(ctx context.Context, m *message.Message) (int, error) {
	return n.b.Publish(ctx, m)
}
func (n noReload) Subscribe(p string, size int) (control.Subscription, error) {
	return n.b.Subscribe(p, size)
}
func (n noReload) Plugins() []control.PluginInfo { return n.b.Plugins() }
func (n noReload) Health() control.Health        { return n.b.Health() }

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more: connection refused
	c := control.NewClient(addr)
	ctx := context.Background()
	noop := func(*message.Message) error { return nil }
	calls := map[string]func() error{
		"call":      func() error { _, err := c.Call(ctx, "a.b", nil, nil, 0); return err },
		"send":      func() error { return c.Send(ctx, "a.b", nil, nil) },
		"publish":   func() error { _, err := c.Publish(ctx, "a.b", nil, nil); return err },
		"subscribe": func() error { return c.Subscribe(ctx, "a.b", noop) },
		"plugins":   func() error { _, err := c.Plugins(ctx); return err },
		"peers":     func() error { _, err := c.Peers(ctx); return err },
		"call node": func() error { _, err := c.CallNode(ctx, "node-b", "a.b", nil, nil, 0); return err },
		"send node": func() error { return c.SendNode(ctx, "node-b", "a.b", nil, nil) },
		"health":    func() error { _, err := c.Health(ctx); return err },
		"version":   func() error { _, err := c.Version(ctx); return err },
		"reload":    func() error { return c.Reload(ctx) },
	}
	for name, fn := range calls {
		t.Run(name, func(t *testing.T) {
			err := fn()
			wantStatus(t, err, abi.StatusUnreachable)
			if prefix := "cannot reach node at " + addr + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error %q does not say why", err)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b, control.WithMaxBody(1024))
	c := control.NewClient(addr)
	big := bytes.Repeat([]byte("x"), 1025)
	_, err := c.Call(context.Background(), "a.b", big, nil, 0)
	wantStatus(t, err, abi.StatusTooLarge)
	if _, err := c.Call(context.Background(), "a.b", big[:1024], nil, 0); err != nil {
		t.Errorf("a body at the limit: %v", err)
	}
	_, err = c.Publish(context.Background(), "a.b", big, nil)
	wantStatus(t, err, abi.StatusTooLarge)

	// Without Content-Length (chunked), the limit is found while reading.
	r := rawDo(t, "POST", "http://"+addr+"/v1/send/a.b", io.MultiReader(bytes.NewReader(big)), nil)
	if e := errorBody(t, r); r.code != 413 || e.Status != "too_large" {
		t.Errorf("chunked: %d %+v", r.code, e)
	}
}

func TestRoutingErrors(t *testing.T) {
	_, addr := controltest.Start(t, controltest.NewBackend())
	tests := []struct {
		method, path string
		code         int
		status       string
		allow        string
	}{
		{"GET", "/v1/call/a.b", 405, "invalid", "POST"},
		{"POST", "/v1/health", 405, "invalid", "GET"},
		{"DELETE", "/v1/subscribe/a", 405, "invalid", "GET"},
		{"GET", "/v2/call/a.b", 404, "no_handler", ""},
		{"GET", "/", 404, "no_handler", ""},
		{"POST", "/v1/call/", 404, "no_handler", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			r := rawDo(t, tt.method, "http://"+addr+tt.path, nil, nil)
			e := errorBody(t, r)
			if r.code != tt.code || e.Status != tt.status || r.header.Get("Allow") != tt.allow {
				t.Errorf("%d %+v Allow %q", r.code, e, r.header.Get("Allow"))
			}
		})
	}
}

func TestBrowserGuard(t *testing.T) {
	_, addr := controltest.Start(t, controltest.NewBackend(), control.WithAllowedHosts("Node.Internal"))
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		name   string
		host   string
		origin string
		code   int
	}{
		{"ip", "", "", 200},
		{"localhost", "localhost:" + port, "", 200},
		{"allowed name", "node.internal:" + port, "", 200},
		{"ipv6 literal", "[::1]:" + port, "", 200},
		{"rebinding name", "evil.example:" + port, "", 403},
		{"origin", "", "https://evil.example", 403},
		{"null origin", "", "null", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+addr+"/v1/health", nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("code %d (%s), want %d", resp.StatusCode, body, tt.code)
			}
			if tt.code == 403 && !strings.Contains(string(body), `"status":"denied"`) {
				t.Errorf("body %s", body)
			}
			if tt.host != "" && tt.code == 403 && !strings.Contains(string(body), "control.allow_hosts") {
				t.Errorf("body %s", body)
			}
		})
	}
}

func TestClientAddress(t *testing.T) {
	tests := []struct {
		in, addr string
		bad      bool
	}{
		{"", "127.0.0.1:7480", false},
		{"127.0.0.1:9000", "127.0.0.1:9000", false},
		{"localhost", "localhost:7480", false},
		{"http://10.0.0.1:81", "10.0.0.1:81", false},
		{"http://10.0.0.1", "10.0.0.1", false},
		{"[::1]:7480", "[::1]:7480", false},
		{"ftp://x:1", "", true},
		{"http://", "", true},
		{":7480", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c := control.NewClient(tt.in)
			_, err := c.Health(context.Background())
			if tt.bad {
				wantStatus(t, err, abi.StatusInvalid)
				return
			}
			if c.Addr() != tt.addr {
				t.Errorf("Addr = %q, want %q", c.Addr(), tt.addr)
			}
		})
	}
}

func TestClientRefusesBadInput(t *testing.T) {
	b := controltest.NewBackend()
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	ctx := context.Background()
	tests := map[string]func() error{
		"header name":      func() error { _, err := c.Call(ctx, "a.b", nil, map[string]string{"a b": "v"}, 0); return err },
		"empty header":     func() error { _, err := c.Call(ctx, "a.b", nil, map[string]string{"": "v"}, 0); return err },
		"header value":     func() error { return c.Send(ctx, "a.b", nil, map[string]string{"k": "a\r\nX-Evil: 1"}) },
		"negative timeout": func() error { _, err := c.Call(ctx, "a.b", nil, nil, -time.Second); return err },
		"empty subject":    func() error { _, err := c.Call(ctx, "", nil, nil, 0); return err },
		"bad subject":      func() error { _, err := c.Call(ctx, "a..b", nil, nil, 0); return err },
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { wantStatus(t, fn(), abi.StatusInvalid) })
	}
	if n := len(b.Sent()); n != 0 {
		t.Errorf("%d refused sends reached the node", n)
	}
}

// TestSubjectsSurviveTheURL: subjects may hold any printable ASCII, some of
// which has meaning in a URL.
func TestSubjectsSurviveTheURL(t *testing.T) {
	b := controltest.NewBackend()
	seen := make(chan string, 1)
	b.CallFunc = func(_ context.Context, m *message.Message) ([]byte, error) {
		seen <- m.Subject
		return nil, nil
	}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	for _, s := range []string{"a/b.c", "q?x=1.y", "p%20.z", "h#1.x", "a+b.c"} {
		if _, err := c.Call(context.Background(), s, nil, nil, 0); err != nil {
			t.Errorf("Call %q: %v", s, err)
			continue
		}
		if got := <-seen; got != s {
			t.Errorf("node saw %q, want %q", got, s)
		}
	}
}

func TestClientDeadlines(t *testing.T) {
	b := controltest.NewBackend()
	release := make(chan struct{})
	defer close(release)
	b.CallFunc = func(ctx context.Context, m *message.Message) ([]byte, error) {
		if m.Subject == "wedged.op" {
			<-release // ignores its deadline, like a wedged node
			return nil, nil
		}
		<-ctx.Done()
		return nil, message.Errorf(abi.StatusTimeout, "%s: no reply within the deadline", m.Subject)
	}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)

	// The node's timeout answer.
	_, err := c.Call(context.Background(), "slow.op", nil, nil, 50*time.Millisecond)
	wantStatus(t, err, abi.StatusTimeout)

	// The caller's own deadline, with a node that never answers.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Call(ctx, "wedged.op", nil, nil, time.Minute)
	wantStatus(t, err, abi.StatusTimeout)

	// Cancellation is not a timeout.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = c.Call(ctx, "slow.op", nil, nil, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call = %v, want context.Canceled", err)
	}
}

// TestNotTheControlAPI: something else answers on the address.
func TestNotTheControlAPI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>nginx</html>", http.StatusNotFound)
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	_, err = control.NewClient(l.Addr().String()).Health(context.Background())
	wantStatus(t, err, abi.StatusInternal)
	if !strings.Contains(err.Error(), "answered 404 Not Found") || !strings.Contains(err.Error(), "nginx") {
		t.Errorf("error %q does not describe the answer", err)
	}
}

func TestVersionString(t *testing.T) {
	v := control.VersionInfo{Version: "v1.0.0", Commit: "abc", GoVersion: "go1.26.8", ABIMin: 1, ABIMax: 2, ABIVersion: 2}
	if got, want := v.String(), "v1.0.0 (commit abc, go1.26.8), ABI 2 (accepts 1..2)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	v.ProtocolMin, v.ProtocolMax = 1, 3
	if got, want := v.String(), "v1.0.0 (commit abc, go1.26.8), ABI 2 (accepts 1..2), protocol 1..3"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	bv := control.BuildVersion("v9.9.9", "deadbeef")
	if bv.Version != "v9.9.9" || bv.Commit != "deadbeef" || bv.ABIVersion != abi.Version ||
		bv.ABIMin != abi.MinVersion || bv.ABIMax != abi.MaxVersion || bv.GoVersion == "" {
		t.Errorf("BuildVersion = %+v", bv)
	}
	if control.BuildVersion("", "").Version == "" {
		t.Error("BuildVersion without ldflags has no version")
	}
}

// meshBackend is a test backend with this node and three peers: node-b up,
// node-c relayed through node-b, and node-d, a configured peer retrying.
func meshBackend() *controltest.Backend {
	b := controltest.NewBackend()
	since := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	b.NodeID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	b.HealthInfo = control.Health{Status: "ok", Node: "node-a", Uptime: time.Minute, Plugins: 1, Version: "v1.2.3"}
	b.PeerList = []control.PeerInfo{
		{ID: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Name: "node-b", Addr: "10.0.0.2:7481", Transport: "quic",
			State: "up", Config: "quic://10.0.0.2:7481", Dialed: true, RTT: 400 * time.Microsecond,
			MsgsIn: 12, MsgsOut: 34, Dropped: 1, Since: since,
			Services: []string{"inventory"}, Topics: []string{"orders.>"}},
		{ID: "bbbbbbcccccccccccccccccccccccccc", Name: "node-c", State: "relayed", Via: "node-b"},
		{ID: "dddddddddddddddddddddddddddddddd", Name: "node-d", Addr: "10.0.0.9:7481", State: "retrying", Config: "tcp://10.0.0.9:7481",
			Dialed: true, Error: "dial tcp 10.0.0.9:7481: connection refused"},
	}
	return b
}

func TestPeers(t *testing.T) {
	b := meshBackend()
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	peers, err := c.Peers(context.Background())
	if err != nil || !reflect.DeepEqual(peers, b.PeerList) {
		t.Fatalf("Peers = %+v, %v", peers, err)
	}

	r := rawDo(t, "GET", "http://"+addr+"/v1/peers", nil, nil)
	if r.code != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q", r.code, r.header.Get("Content-Type"))
	}
	var raw []map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil || len(raw) != 3 {
		t.Fatalf("peers JSON %s: %v", r.body, err)
	}
	want := `{"id":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","name":"node-b","addr":"10.0.0.2:7481","transport":"quic",` +
		`"state":"up","config":"quic://10.0.0.2:7481","dialed":true,"rtt_ns":400000,"msgs_in":12,"msgs_out":34,` +
		`"dropped":1,"since":"2025-03-04T05:06:07Z","services":["inventory"],"topics":["orders.>"]}`
	if got, _ := json.Marshal(raw[0]); !jsonEqual(t, got, []byte(want)) {
		t.Errorf("peer JSON %s, want %s", got, want)
	}
	// Empty optional fields are left out; the counters never are.
	if raw[1]["via"] != "node-b" {
		t.Errorf("relayed peer JSON lacks via: %v", raw[1])
	}
	for _, key := range []string{"since", "config", "error", "services", "topics"} {
		if _, ok := raw[1][key]; ok {
			t.Errorf("relayed peer JSON has %q: %v", key, raw[1])
		}
	}
	for _, key := range []string{"id", "name", "addr", "transport", "state", "dialed", "rtt_ns", "msgs_in", "msgs_out", "dropped"} {
		if _, ok := raw[2][key]; !ok {
			t.Errorf("peer JSON lacks %q: %v", key, raw[2])
		}
	}

	// A mesh node without peers lists [], not null.
	_, addr2 := controltest.Start(t, controltest.NewBackend())
	if r := rawDo(t, "GET", "http://"+addr2+"/v1/peers", nil, nil); r.code != 200 || string(r.body) != "[]\n" {
		t.Errorf("empty peer list: %d %q", r.code, r.body)
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestHealthOfMeshNode(t *testing.T) {
	b := meshBackend()
	_, addr := controltest.Start(t, b)
	h, err := control.NewClient(addr).Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The server fills id and the count of peers that are up.
	want := b.HealthInfo
	want.ID, want.Peers, want.Members = b.NodeID, 1, 2
	if h != want {
		t.Errorf("Health = %+v, want %+v", h, want)
	}
	r := rawDo(t, "GET", "http://"+addr+"/v1/health", nil, nil)
	if want := `{"status":"ok","node":"node-a","id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","uptime":"1m0s","plugins":1,"peers":1,"members":2,"version":"v1.2.3","ready":false}` + "\n"; string(r.body) != want {
		t.Errorf("health JSON %s, want %s", r.body, want)
	}

	// What the backend reports itself is kept.
	b2 := meshBackend()
	b2.HealthInfo.ID, b2.HealthInfo.Peers = "own-id", 5
	_, addr2 := controltest.Start(t, b2)
	h, err = control.NewClient(addr2).Health(context.Background())
	if err != nil || h.ID != "own-id" || h.Peers != 5 {
		t.Errorf("Health = %+v, %v; want the backend's id and count", h, err)
	}
}

func TestCallAndSendToNode(t *testing.T) {
	b := meshBackend()
	type delivery struct {
		node string
		m    *message.Message
	}
	seen := make(chan delivery, 10)
	b.CallFunc = func(_ context.Context, m *message.Message) ([]byte, error) {
		seen <- delivery{"", m}
		return []byte("any node"), nil
	}
	b.CallNodeFunc = func(_ context.Context, node string, m *message.Message) ([]byte, error) {
		seen <- delivery{node, m}
		return []byte("from " + node), nil
	}
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	ctx := context.Background()

	for _, ref := range []string{
		"node-b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "bbbbbbbb", // name, id, prefix
		"node-c", "bbbbbbc", // relayed
		"node-a", "aaaaaa", // this node
	} {
		t.Run(ref, func(t *testing.T) {
			before := time.Now()
			reply, err := c.CallNode(ctx, ref, "inventory.reserve", []byte("p"), map[string]string{"k": "v"}, 2*time.Second)
			if err != nil || string(reply) != "from "+ref {
				t.Fatalf("CallNode = %q, %v", reply, err)
			}
			d := <-seen
			if d.node != ref || d.m.Kind != abi.KindRequest || d.m.From != "control" ||
				d.m.Subject != "inventory.reserve" || string(d.m.Payload) != "p" || d.m.Headers["k"] != "v" ||
				d.m.Deadline.Before(before) || d.m.Deadline.After(time.Now().Add(2*time.Second)) {
				t.Errorf("backend got node %q, %+v", d.node, d.m)
			}
		})
	}

	// No node: the ordinary Call, never CallNode.
	if reply, err := c.CallNode(ctx, "", "a.b", nil, nil, 0); err != nil || string(reply) != "any node" {
		t.Errorf("CallNode without node = %q, %v", reply, err)
	}
	if d := <-seen; d.node != "" {
		t.Errorf("call without node went to CallNode(%q)", d.node)
	}
	r := rawDo(t, "POST", "http://"+addr+"/v1/call/a.b?node=", strings.NewReader("x"), nil)
	if r.code != 200 || string(r.body) != "any node" {
		t.Errorf("empty ?node=: %d %q", r.code, r.body)
	}
	<-seen

	// The wire format: ?node= next to ?timeout=.
	r = rawDo(t, "POST", "http://"+addr+"/v1/call/a.b?timeout=1s&node=node-b", strings.NewReader("x"), nil)
	if r.code != 200 || string(r.body) != "from node-b" {
		t.Errorf("?node=node-b: %d %q", r.code, r.body)
	}
	<-seen

	// Sends.
	if err := c.SendNode(ctx, "node-b", "mail.out", []byte("hi"), nil); err != nil {
		t.Fatalf("SendNode: %v", err)
	}
	if err := c.Send(ctx, "mail.out", []byte("plain"), nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r = rawDo(t, "POST", "http://"+addr+"/v1/send/mail.out?node=bbbbbbbb", strings.NewReader("raw"), nil)
	if r.code != http.StatusAccepted {
		t.Errorf("raw send to node: %d %s", r.code, r.body)
	}
	sent, to := b.Sent(), b.SentTo()
	if len(sent) != 3 || !reflect.DeepEqual(to, []string{"node-b", "", "bbbbbbbb"}) ||
		string(sent[0].Payload) != "hi" || sent[0].Kind != abi.KindSend || sent[0].From != "control" || !sent[0].Deadline.IsZero() ||
		string(sent[2].Payload) != "raw" {
		t.Errorf("sends %+v to %q", sent, to)
	}
}

func TestUnknownNode(t *testing.T) {
	b := meshBackend()
	_, addr := controltest.Start(t, b)
	c := control.NewClient(addr)
	ctx := context.Background()
	for _, ref := range []string{
		"node-z",
		"bbbbb",  // a prefix shorter than 6 characters
		"node-d", // known but not up
		"dddddd",
		"10.0.0.9:7481", // an address is not a node reference
	} {
		t.Run(ref, func(t *testing.T) {
			_, err := c.CallNode(ctx, ref, "a.b", nil, nil, 0)
			wantStatus(t, err, abi.StatusUnreachable)
			if !strings.Contains(err.Error(), fmt.Sprintf("no node %q", ref)) {
				t.Errorf("error %q does not name the node", err)
			}
			wantStatus(t, c.SendNode(ctx, ref, "a.b", nil, nil), abi.StatusUnreachable)
		})
	}
	// A prefix of two ids names neither: refused as invalid, listing both,
	// as a name that two nodes claim is.
	_, err := c.CallNode(ctx, "bbbbbb", "a.b", nil, nil, 0)
	wantStatus(t, err, abi.StatusInvalid)
	if !strings.Contains(err.Error(), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, bbbbbbcccccccccccccccccccccccccc") {
		t.Errorf("ambiguous prefix: %q does not list both ids", err)
	}
	r := rawDo(t, "POST", "http://"+addr+"/v1/call/a.b?node=node-z", nil, nil)
	if e := errorBody(t, r); r.code != http.StatusBadGateway || e.Status != "unreachable" {
		t.Errorf("unknown node: %d %+v", r.code, e)
	}
	if n := len(b.Sent()); n != 0 {
		t.Errorf("%d sends to unknown nodes were delivered", n)
	}
}

func TestCallNodeTimeout(t *testing.T) {
	b := meshBackend()
	b.CallNodeFunc = func(ctx context.Context, _ string, _ *message.Message) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	_, addr := controltest.Start(t, b)
	_, err := control.NewClient(addr).CallNode(context.Background(), "node-b", "slow.op", nil, nil, 50*time.Millisecond)
	wantStatus(t, err, abi.StatusTimeout)
	if want := "call slow.op on node node-b: no reply within 50ms"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestNotAMesh(t *testing.T) {
	b := meshBackend()
	_, addr := controltest.Start(t, b.NoMesh())
	c := control.NewClient(addr)
	ctx := context.Background()
	const text = "this node is not part of a mesh"

	_, err := c.Peers(ctx)
	wantStatus(t, err, abi.StatusNoHandler)
	_, err2 := c.CallNode(ctx, "node-b", "a.b", nil, nil, 0)
	wantStatus(t, err2, abi.StatusNoHandler)
	err3 := c.SendNode(ctx, "node-b", "a.b", nil, nil)
	wantStatus(t, err3, abi.StatusNoHandler)
	for _, e := range []error{err, err2, err3} {
		if e.Error() != text {
			t.Errorf("error %q, want %q", e, text)
		}
	}
	r := rawDo(t, "GET", "http://"+addr+"/v1/peers", nil, nil)
	if e := errorBody(t, r); r.code != 404 || e.Status != "no_handler" {
		t.Errorf("GET /v1/peers: %d %+v", r.code, e)
	}
	if n := len(b.Sent()); n != 0 {
		t.Errorf("%d refused sends reached the node", n)
	}

	// Everything else works as before; health has no id and no peers.
	if reply, err := c.Call(ctx, "a.b", []byte("x"), nil, 0); err != nil || string(reply) != "x" {
		t.Errorf("Call = %q, %v", reply, err)
	}
	if err := c.Send(ctx, "a.b", nil, nil); err != nil {
		t.Errorf("Send = %v", err)
	}
	if h, err := c.Health(ctx); err != nil || h.ID != "" || h.Peers != 0 {
		t.Errorf("Health = %+v, %v", h, err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Errorf("Reload = %v", err)
	}
}
