package compare

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
	"github.com/pycomms/pycomms-host/host/node"
)

// RedisPair is two pycomms hosts with no mesh between them, both riding
// one redis-server through builtin:redis: Near routes echo.* and bench.>
// out through Redis; Far serves the WAT echo (8 instances) and counts
// bench.> events with a second copy of it, taking both in from Redis. Next
// to them, the same exchanges between two plain go-redis clients of the
// same server (github.com/redis/go-redis/v9, the baseline the issue asks
// for): a responder that PUBLISHes each request's reply to the caller's
// inbox channel, and a subscriber that counts events.
type RedisPair struct {
	Near, Far *node.Node
	dir       string

	base     *goRedis
	received atomic.Uint64 // events the go-redis subscriber got
}

// StartRedisPair starts both hosts against the redis-server at addr (plain
// TCP, no password) and the go-redis baseline, and waits until a call and
// an event go through both.
func StartRedisPair(addr, echoWasm string) (_ *RedisPair, err error) {
	dir, err := os.MkdirTemp("", "pycomms-redis-")
	if err != nil {
		return nil, fmt.Errorf("compare: temp dir: %w", err)
	}
	p := &RedisPair{dir: dir}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	pair := &Pair{dir: dir}
	far := fmt.Sprintf(`listen: {tcp: "", quic: ""}
plugins:
  - {name: echo, path: %q, services: [%s], instances: 8, queue: 65536, watch: false, limits: {timeout: 10s}}
  - {name: %s, path: %q, topics: [%q], instances: 8, queue: 65536, watch: false, limits: {timeout: 10s}}
  - name: broker
    path: builtin:redis
    kind: transport
    instances: 1
    dial: [tcp://%s]
    grants: [call, send, publish]
    limits: {timeout: 10s, read_buffer: 4MiB, write_buffer: 64MiB}
    config: {serve: [%s], subscribe: [%q], prefix: bench}
`, echoWasm, echoService, subPlugin, echoWasm, eventTopic, addr, echoService, eventTopic)
	if p.Far, err = pair.start("far", far); err != nil {
		return nil, err
	}
	near := fmt.Sprintf(`listen: {tcp: "", quic: ""}
plugins:
  - name: broker
    path: builtin:redis
    kind: transport
    instances: 1
    dial: [tcp://%s]
    services: [%s]
    topics: [%q]
    grants: [call, send, publish]
    limits: {timeout: 10s, read_buffer: 4MiB, write_buffer: 64MiB}
    config: {prefix: bench}
`, addr, echoService, eventTopic)
	if p.Near, err = pair.start("near", near); err != nil {
		return nil, err
	}
	if p.base, err = startGoRedis(addr, &p.received); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if last = p.Call([]byte("ready")); last == nil {
			if last = p.base.call([]byte("ready")); last == nil {
				before := p.Received()
				p.Publish([]byte("ready"), time.Time{})
				time.Sleep(10 * time.Millisecond)
				if p.Received() > before {
					return p, nil
				}
				last = fmt.Errorf("no event reached the far subscriber through Redis")
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, fmt.Errorf("compare: redis pair not ready after 20s: %w", last)
}

// Call makes one request from Near to Far's WAT echo through Redis.
func (p *RedisPair) Call(payload []byte) error {
	out, err := p.Near.Call(context.Background(), &message.Message{
		Kind: abi.KindRequest, Subject: echoSubject, Payload: payload,
		Deadline: time.Now().Add(callTimeout), From: "compare",
	})
	if err != nil {
		return fmt.Errorf("compare: call %s through redis: %w", echoSubject, err)
	}
	if len(out) != len(payload) {
		return fmt.Errorf("compare: reply of %d bytes, want %d", len(out), len(payload))
	}
	return nil
}

// Publish publishes one event on Near (routed out through Redis).
func (p *RedisPair) Publish(payload []byte, deadline time.Time) (bool, error) {
	k, err := p.Near.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: eventSubject, Payload: payload, From: "compare", Deadline: deadline})
	return k > 0, err
}

// Received counts the events Far's subscriber plugin has handled.
func (p *RedisPair) Received() uint64 {
	for _, pi := range p.Far.Plugins() {
		if pi.Name == subPlugin {
			return pi.Calls
		}
	}
	return 0
}

// Close stops the hosts and the baseline clients and removes the files.
func (p *RedisPair) Close() {
	if p.base != nil {
		p.base.close()
	}
	for _, n := range []*node.Node{p.Near, p.Far} {
		if n != nil {
			n.Close()
		}
	}
	os.RemoveAll(p.dir)
}

// goRedis is the baseline: plain go-redis clients doing what the plugin
// does, request/reply through a responder and an inbox channel, events
// through PUBLISH and a subscriber.
type goRedis struct {
	pub     *redis.Client // callers and publishers
	sub     *redis.Client // responder and subscribers
	subs    []*redis.PubSub
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	waiting map[uint64]chan []byte
	ids     atomic.Uint64
	batch   redis.Pipeliner // events not flushed yet
	batched int
}

const (
	baseRequests = "gobase:rq:echo.upper"
	baseInbox    = "gobase:inbox:1"
	baseEvents   = "gobase:ev:bench.tick"
)

func startGoRedis(addr string, received *atomic.Uint64) (*goRedis, error) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &goRedis{
		pub:     redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64}),
		sub:     redis.NewClient(&redis.Options{Addr: addr}),
		cancel:  cancel,
		waiting: map[uint64]chan []byte{},
	}
	g.batch = g.pub.Pipeline()
	listen := func(channel string, fn func(*redis.Message)) error {
		ps := g.sub.Subscribe(ctx, channel)
		if _, err := ps.Receive(ctx); err != nil { // the subscription's acknowledgement
			return fmt.Errorf("compare: go-redis subscribe %s: %w", channel, err)
		}
		g.subs = append(g.subs, ps)
		ch := ps.Channel(redis.WithChannelSize(1 << 16))
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for m := range ch {
				fn(m)
			}
		}()
		return nil
	}
	// The responder: request = id (8 bytes) + payload; reply to the inbox
	// with the same id and the payload upper-cased, as the WAT echo does.
	err := listen(baseRequests, func(m *redis.Message) {
		b := []byte(m.Payload)
		if len(b) < 8 {
			return
		}
		reply := append(b[:8:8], bytes.ToUpper(b[8:])...)
		g.pub.Publish(ctx, baseInbox, reply)
	})
	if err == nil {
		err = listen(baseInbox, func(m *redis.Message) {
			b := []byte(m.Payload)
			if len(b) < 8 {
				return
			}
			id := binary.BigEndian.Uint64(b)
			g.mu.Lock()
			ch := g.waiting[id]
			delete(g.waiting, id)
			g.mu.Unlock()
			if ch != nil {
				ch <- b[8:]
			}
		})
	}
	if err == nil {
		err = listen(baseEvents, func(*redis.Message) { received.Add(1) })
	}
	if err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// call is one request/reply through Redis between go-redis clients.
func (g *goRedis) call(payload []byte) error {
	id := g.ids.Add(1)
	ch := make(chan []byte, 1)
	g.mu.Lock()
	g.waiting[id] = ch
	g.mu.Unlock()
	req := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(payload)), id)
	req = append(req, payload...)
	if err := g.pub.Publish(context.Background(), baseRequests, req).Err(); err != nil {
		return fmt.Errorf("compare: go-redis publish: %w", err)
	}
	select {
	case reply := <-ch:
		if len(reply) != len(payload) {
			return fmt.Errorf("compare: go-redis reply of %d bytes, want %d", len(reply), len(payload))
		}
		return nil
	case <-time.After(callTimeout):
		g.mu.Lock()
		delete(g.waiting, id)
		g.mu.Unlock()
		return fmt.Errorf("compare: go-redis call: no reply within %v", callTimeout)
	}
}

// publish queues one event in a pipeline, sent every 256 events and on
// flush: the plugin writes its PUBLISHes without waiting for each reply
// too.
func (g *goRedis) publish(payload []byte) error {
	g.batch.Publish(context.Background(), baseEvents, payload)
	if g.batched++; g.batched >= 256 {
		return g.flush()
	}
	return nil
}

func (g *goRedis) flush() error {
	if g.batched == 0 {
		return nil
	}
	g.batched = 0
	_, err := g.batch.Exec(context.Background())
	return err
}

func (g *goRedis) close() {
	g.cancel()
	for _, ps := range g.subs {
		ps.Close()
	}
	g.wg.Wait()
	g.pub.Close()
	g.sub.Close()
}

// Measure compares, in interleaved rounds of d each, request/reply and
// pub/sub through the redis transport with the same through go-redis:
// p50 of sequential calls, calls/s from callers concurrent callers, and
// events/s into one subscriber, at size bytes.
func (p *RedisPair) Measure(size, callers, rounds int, d time.Duration) ([]Row, error) {
	pl := payload(size)
	ours := publisher{
		publish:  func(dl time.Time) (bool, error) { return p.Publish(pl, dl) },
		flush:    func() error { return nil },
		received: p.Received,
	}
	base := publisher{
		publish:  func(time.Time) (bool, error) { return true, p.base.publish(pl) },
		flush:    p.base.flush,
		received: p.received.Load,
	}
	samples, err := interleave(rounds, []contender{
		{"redis seq", func() (Sample, error) { return Sequential(d, 100, func() error { return p.Call(pl) }) }},
		{"go-redis seq", func() (Sample, error) { return Sequential(d, 100, func() error { return p.base.call(pl) }) }},
		{"redis conc", func() (Sample, error) { return Concurrent(d, callers, func() error { return p.Call(pl) }) }},
		{"go-redis conc", func() (Sample, error) { return Concurrent(d, callers, func() error { return p.base.call(pl) }) }},
		{"redis events", func() (Sample, error) { s, _, _, err := publishFor(ours, d, 0); return s, err }},
		{"go-redis events", func() (Sample, error) { s, _, _, err := publishFor(base, d, 0); return s, err }},
	})
	if err != nil {
		return nil, err
	}
	name := SizeName(size)
	return []Row{
		withUnit(row("x_goredis_p50", "call through Redis p50, "+name, samples, "redis seq", "go-redis seq", "go-redis", p50), "ns_p50"),
		withUnit(row("x_goredis", fmt.Sprintf("calls/s through Redis, %d callers, %s", callers, name), samples, "redis conc", "go-redis conc", "go-redis", callsPerSec), "calls/s"),
		withUnit(row("x_goredis_events", "events/s through Redis into one subscriber, "+name, samples, "redis events", "go-redis events", "go-redis 1→1 (pipelined)", eventsPerS), "events/s"),
	}, nil
}
