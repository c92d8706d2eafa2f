package queues

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream is an embedded nats-server with JetStream (file storage in
// its own directory) holding stream ORDERS on orders.>, WorkQueuePolicy,
// and a durable pull consumer "worker" with explicit acks whose handler,
// on its own connection, publishes each message on "worked" (as our
// worker does) and acks it. Producers share one connection and publish
// with js.Publish, which returns once the stream has stored the message
// (the publish ack).
type JetStream struct {
	srv      *server.Server
	pub, sub *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	consume  jetstream.ConsumeContext
	acked    atomic.Uint64
	// SyncAlways: the server fsyncs every write before acknowledging it.
	SyncAlways bool
}

// StartJetStream starts the server on 127.0.0.1 (a free port), with its
// store in storeDir, and sets up the stream and the consumer. With
// syncAlways the server runs with SyncAlways (the config's
// jetstream {sync_interval: always}); without, with its default
// SyncInterval of two minutes.
func StartJetStream(storeDir string, syncAlways bool) (_ *JetStream, err error) {
	opts := &server.Options{
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   storeDir,
		SyncAlways: syncAlways,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("queues: nats-server: %w", err)
	}
	j := &JetStream{srv: srv, SyncAlways: syncAlways}
	defer func() {
		if err != nil {
			j.Close()
		}
	}()
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("queues: nats-server not ready after 10s")
	}
	url := srv.ClientURL()
	if j.pub, err = nats.Connect(url); err != nil {
		return nil, fmt.Errorf("queues: connecting to nats-server at %s: %w", url, err)
	}
	if j.sub, err = nats.Connect(url); err != nil {
		return nil, fmt.Errorf("queues: connecting to nats-server at %s: %w", url, err)
	}
	if j.js, err = jetstream.New(j.pub); err != nil {
		return nil, fmt.Errorf("queues: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j.stream, err = j.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      natsStream,
		Subjects:  []string{"orders.>"},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("queues: create stream %s: %w", natsStream, err)
	}
	// The consumer's JetStream context is on its own connection, as a
	// worker process's would be.
	jsSub, err := jetstream.New(j.sub)
	if err != nil {
		return nil, fmt.Errorf("queues: jetstream: %w", err)
	}
	cons, err := jsSub.CreateOrUpdateConsumer(ctx, natsStream, jetstream.ConsumerConfig{
		Durable:   natsConsumer,
		AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("queues: create consumer %s: %w", natsConsumer, err)
	}
	j.consume, err = cons.Consume(func(m jetstream.Msg) {
		if err := j.sub.Publish(workedTopic, m.Data()); err != nil {
			_ = m.Nak()
			return
		}
		if err := m.Ack(); err == nil {
			j.acked.Add(1)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("queues: consume: %w", err)
	}
	if err := j.publish(); err != nil {
		return nil, err
	}
	if err := waitFor("jetstream", waitTimeout, 1, j.Acked); err != nil {
		return nil, err
	}
	return j, j.settle()
}

// publish makes one durable publish and checks its ack.
func (j *JetStream) publish() error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	pa, err := j.js.Publish(ctx, natsSubject, Payload)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if pa.Stream != natsStream {
		return fmt.Errorf("publish acknowledged by stream %q, want %s", pa.Stream, natsStream)
	}
	return nil
}

// Acked counts the messages the consumer acknowledged since the start.
func (j *JetStream) Acked() uint64 { return j.acked.Load() }

// Msgs is how many messages the stream holds now (a work queue drops a
// message once its ack is processed).
func (j *JetStream) Msgs() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := j.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.Msgs, nil
}

// settle waits until the server has processed every ack sent (the stream
// is empty), so a round does not start with the last one's removals.
func (j *JetStream) settle() error {
	deadline := time.Now().Add(waitTimeout)
	for {
		n, err := j.Msgs()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queues: jetstream: %d messages still in the stream after %v", n, waitTimeout)
		}
		time.Sleep(pollEvery)
	}
}

// Run publishes msgs messages from producers goroutines and waits until
// the consumer has acknowledged every one: the sample is that whole span
// (the server's processing of the last acks is waited for afterwards,
// outside it, as our side's commit of its last acks is not waited for).
func (j *JetStream) Run(msgs, producers int) (Sample, error) {
	acked0 := j.Acked()
	s, err := around(msgs, func() error {
		if err := produce(msgs, producers, func(int) error { return j.publish() }); err != nil {
			return err
		}
		return waitFor("jetstream", waitTimeout, acked0+uint64(msgs), j.Acked)
	})
	if err != nil {
		return s, err
	}
	if got := j.Acked() - acked0; got != uint64(msgs) {
		return s, fmt.Errorf("jetstream: %d published, %d acknowledged", msgs, got)
	}
	return s, j.settle()
}

// Close stops the consumer, closes the connections and shuts the server
// down.
func (j *JetStream) Close() {
	if j.consume != nil {
		j.consume.Stop()
	}
	for _, c := range []*nats.Conn{j.pub, j.sub} {
		if c != nil {
			c.Close()
		}
	}
	j.srv.Shutdown()
	j.srv.WaitForShutdown()
}
