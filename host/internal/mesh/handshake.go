package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pycomms/pycomms-host/host/internal/identity"
	"github.com/pycomms/pycomms-host/host/internal/wire"
)

// self is this host as it presents itself to peers: its identity, trust
// policy, name and the largest frame it accepts. It is fixed at New and
// read without a lock.
type self struct {
	id        identity.ID
	name      string
	idt       *identity.Identity
	policy    *identity.Policy
	maxFrame  int
	clientTLS *tls.Config
}

// greeted is what a handshake learnt: who the peer is and how to talk to
// it.
type greeted struct {
	peer    identity.ID
	name    string
	version uint16
	listen  []string
	maxOut  int          // largest payload the peer accepts
	r       *wire.Reader // main stream; it may hold frames read ahead
	w       io.Writer
}

// handshake exchanges Hello frames on an authenticated connection; listen
// is where this host listens, as it tells the peer. The dialer speaks
// first; the acceptor checks the dialer's Hello (identity, version, proof)
// before it says anything, so a host that fails the check learns nothing
// but the refusal. Interest flows only after both Hellos.
func (s *self) handshake(ctx context.Context, c conn, dialed bool, listen []string) (*greeted, error) {
	peer, err := peerOf(c)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		if tc, ok := c.(*tcpConn); ok {
			tc.c.SetDeadline(d)
			defer tc.c.SetDeadline(time.Time{})
		}
	}
	r, w, err := c.openMain(ctx)
	if err != nil {
		return nil, err
	}
	fr := wire.NewReader(r, wire.FrameLimit(s.maxFrame))
	ekm, err := exporter(c)
	if err != nil {
		return nil, err
	}
	my := &wire.Hello{Min: wire.MinVersion, Max: wire.MaxVersion, ID: string(s.id), Name: s.name,
		Listen: listen, MaxFrame: uint64(s.maxFrame)}
	role, peerRole := byte('s'), byte('c')
	if dialed {
		role, peerRole = 'c', 's'
	}
	if s.policy.Secret != nil {
		my.Proof = identity.Proof(s.policy.Secret, ekm, role, s.id)
	}
	refuse := func(code wire.ErrorCode, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		b, _ := wire.AppendControl(nil, wire.FrameError, &wire.ErrorFrame{Code: code, Msg: msg})
		w.Write(b)
		return errors.New(msg)
	}
	if dialed {
		b, err := wire.AppendControl(nil, wire.FrameHello, my)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(b); err != nil {
			return nil, fmt.Errorf("send hello: %w", err)
		}
	}
	t, body, err := fr.Next()
	if err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	if t == wire.FrameError {
		var ef wire.ErrorFrame
		wire.DecodeControl(body, &ef)
		return nil, &RefusedError{Code: ef.Code, Msg: ef.Msg}
	}
	if t != wire.FrameHello {
		return nil, refuse(wire.ErrProtocol, "expected a hello frame, got %v", t)
	}
	var h wire.Hello
	if err := wire.DecodeControl(body, &h); err != nil {
		return nil, refuse(wire.ErrProtocol, "malformed hello: %v", err)
	}
	if h.ID != string(peer) {
		return nil, refuse(wire.ErrNotTrusted, "hello names node %s but the certificate is node %s", h.ID, peer)
	}
	if peer == s.id {
		return nil, refuse(wire.ErrSelf, "connected to itself (node %s)", s.id)
	}
	var version uint16
	if dialed {
		version = h.Version
		if version < wire.MinVersion || version > wire.MaxVersion || version < h.Min || version > h.Max {
			return nil, refuse(wire.ErrVersion, "the peer chose protocol version %d: this host speaks %d..%d", version, wire.MinVersion, wire.MaxVersion)
		}
	} else {
		version, err = wire.Negotiate(wire.MinVersion, wire.MaxVersion, h.Min, h.Max)
		if err != nil {
			return nil, refuse(wire.ErrVersion, "%v", err)
		}
	}
	if s.policy.Secret != nil && !identity.VerifyProof(s.policy.Secret, ekm, peerRole, peer, h.Proof) {
		what := "a wrong proof"
		if len(h.Proof) == 0 {
			what = "no proof"
		}
		return nil, refuse(wire.ErrNotTrusted, "node %s sent %s of trust.secret", peer, what)
	}
	if h.MaxFrame < 1024 {
		return nil, refuse(wire.ErrProtocol, "hello: max frame %d is below the minimum of 1024", h.MaxFrame)
	}
	if !dialed {
		my.Version = version
		b, err := wire.AppendControl(nil, wire.FrameHello, my)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(b); err != nil {
			return nil, fmt.Errorf("send hello: %w", err)
		}
	}
	return &greeted{peer: peer, name: h.Name, version: version, listen: h.Listen,
		maxOut: int(min(h.MaxFrame, uint64(s.maxFrame))), r: fr, w: w}, nil
}

// RefusedError is a peer's refusal of the handshake.
type RefusedError struct {
	Code wire.ErrorCode
	Msg  string
}

func (e *RefusedError) Error() string { return "refused by the peer: " + e.Msg }

func exporter(c conn) ([]byte, error) {
	cs := c.state()
	ekm, err := cs.ExportKeyingMaterial(identity.ExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("tls exporter: %w", err)
	}
	return ekm, nil
}
