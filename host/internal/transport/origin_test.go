package transport

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pycomms/pycomms-host/abi"
	"github.com/pycomms/pycomms-host/host/message"
)

// TestOwnMessagesDropped: a message the host routes out through a
// transport carries the host's origin; when the medium brings it back
// (here a server that echoes every byte), the host drops it instead of
// publishing it a second time, which would also send it out again, without
// end. A message from elsewhere on the medium is published.
func TestOwnMessagesDropped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		server <- c
		io.Copy(c, c) // the medium: everything comes back
	}()
	addr := ln.Addr().String()
	g := start(t, "transport_frames", Config{Origin: "node-a", Dial: []Dial{{Raw: "tcp://" + addr, Addr: addr}}}, nil, []string{"t.>"})
	sub, err := g.r.Subscribe("t.>", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var peer net.Conn
	select {
	case peer = <-server:
		defer peer.Close()
	case <-time.After(liveness):
		t.Fatal("the transport did not dial")
	}
	waitFor(t, "the dial connection", func() bool { return len(g.tr.Stats().Conns) == 1 })

	if _, err := g.r.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "t.x", Payload: []byte("one"), From: "test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the echoed message to be dropped", func() bool { return g.tr.Stats().OwnDropped == 1 })
	if m := <-sub.C(); string(m.Payload) != "one" {
		t.Fatalf("event %q", m.Payload)
	}
	if n := len(sub.C()); n != 0 {
		t.Fatalf("%d more events: the host's own message came back through the transport", n)
	}

	// A frame from elsewhere on the medium: published, and (carried by the
	// transport) sent out with this host's origin, which comes back too.
	frame := binary.LittleEndian.AppendUint32(nil, 3)
	frame = binary.LittleEndian.AppendUint32(frame, 3)
	frame = binary.LittleEndian.AppendUint32(frame, 0)
	frame = append(frame, "t.ytwo"...)
	peer.Write(frame)
	select {
	case m := <-sub.C():
		if m.Subject != "t.y" || string(m.Payload) != "two" || m.From != "wire" {
			t.Fatalf("event %s %q from %q", m.Subject, m.Payload, m.From)
		}
	case <-time.After(liveness):
		t.Fatal("a message from the medium was not published")
	}
	waitFor(t, "its echo to be dropped", func() bool { return g.tr.Stats().OwnDropped == 2 })

	// A frame that another host sent through the medium (its origin in the
	// headers) is published here and not sent out through a transport
	// again: the medium has it already.
	out := g.tr.Stats().MessagesOut
	hdr, err := cbor.Marshal(abi.Headers{abi.HeaderOrigin: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	frame = binary.LittleEndian.AppendUint32(nil, 3)
	frame = binary.LittleEndian.AppendUint32(frame, 5)
	frame = binary.LittleEndian.AppendUint32(frame, uint32(len(hdr)))
	frame = append(append(frame, "t.zthree"...), hdr...)
	peer.Write(frame)
	select {
	case m := <-sub.C():
		if m.Subject != "t.z" || m.Headers[abi.HeaderOrigin] != "node-b" {
			t.Fatalf("event %s %v", m.Subject, m.Headers)
		}
	case <-time.After(liveness):
		t.Fatal("a message from another host on the medium was not published")
	}
	// A local event after it goes out and comes back: by then anything
	// sent for t.z (queued before it) has gone out too.
	if _, err := g.r.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "t.w", Payload: []byte("four"), From: "test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the local event's echo to be dropped", func() bool { return g.tr.Stats().OwnDropped == 3 })
	if st := g.tr.Stats(); st.MessagesIn != 2 || st.MessagesOut != out+1 {
		t.Errorf("stats %+v: want 2 messages in and only t.w more out (was %d)", st, out)
	}
}

// TestUndeliveredEventCountsDropped: an event routed to a transport that
// has no open connection is counted dropped by the router (Publish
// reports no receiver), not delivered.
func TestUndeliveredEventCountsDropped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every dial is refused
	g := start(t, "transport_frames", Config{Origin: "node-a", Dial: []Dial{{Raw: "tcp://" + addr, Addr: addr}}}, nil, []string{"t.>"})
	k, err := g.r.Publish(context.Background(), &message.Message{Kind: abi.KindEvent, Subject: "t.x", Payload: []byte("one"), From: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if k != 0 || g.r.Stats().Dropped != 1 || g.tr.Stats().Dropped != 1 {
		t.Fatalf("publish reached %d, router dropped %d, transport dropped %d; want 0, 1, 1", k, g.r.Stats().Dropped, g.tr.Stats().Dropped)
	}
}
