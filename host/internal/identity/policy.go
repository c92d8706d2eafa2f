package identity

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ALPN is the application protocol both sides must negotiate. Requiring it
// keeps a stray TLS client (a browser, curl with some client certificate)
// from being mistaken for a peer, and quic-go refuses a handshake without
// one anyway.
const ALPN = "pycomms"

// Policy says which peers are trusted. The zero value is open: anyone who
// completes the TLS handshake with an ed25519 certificate that is valid now.
// Every mechanism that is set must pass, so combining them only narrows the
// set of trusted peers.
type Policy struct {
	// Secret is the shared cluster secret; nil when unused. It is not
	// checked during the TLS handshake: the session layer exchanges a
	// [Proof] right after it, before sending anything else.
	Secret []byte
	// Nodes are the pinned node ids; nil or empty when unused. Only ids
	// mapped to true are trusted.
	Nodes map[ID]bool
	// CA holds the roots that must have issued a peer's certificate; nil
	// when unused.
	CA *x509.CertPool
}

// LoadCA reads a PEM bundle of CA certificates for [Policy.CA].
func LoadCA(path string) (*x509.CertPool, error) {
	data, err := readSmallFile(path, "CA file", maxCAFile)
	if err != nil {
		return nil, err
	}
	// Parsed one by one rather than with CertPool.AppendCertsFromPEM, which
	// silently drops certificates it cannot parse: a bundle that trusts
	// fewer roots than the operator thinks would show up only as refused
	// peers.
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// Open reports whether the policy trusts anyone who completes the handshake.
func (p *Policy) Open() bool {
	return len(p.Secret) == 0 && len(p.Nodes) == 0 && p.CA == nil
}

// ServerTLS returns the TLS 1.3 config for accepting peers, over TCP or
// QUIC. It requires a client certificate and checks it against the policy.
func (p *Policy) ServerTLS(id *Identity) *tls.Config {
	c := p.baseTLS(id)
	// RequireAnyClientCert rather than RequireAndVerifyClientCert: crypto/tls
	// would verify against ClientCAs with host-name-free web PKI rules, which
	// fit neither self-signed node certificates nor our own checks.
	c.ClientAuth = tls.RequireAnyClientCert
	return c
}

// ClientTLS returns the TLS 1.3 config for dialing peers, over TCP or QUIC.
// It checks the server's certificate against the policy.
func (p *Policy) ClientTLS(id *Identity) *tls.Config {
	c := p.baseTLS(id)
	// Peers are dialed by address and named by key, not by host name, so
	// crypto/tls's own verification has nothing to check; VerifyConnection
	// does the real verification.
	c.InsecureSkipVerify = true
	return c
}

func (p *Policy) baseTLS(id *Identity) *tls.Config {
	v := p.verifier()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		NextProtos:   []string{ALPN},
		// VerifyConnection rather than VerifyPeerCertificate because it also
		// runs on resumed sessions, so resumption cannot bypass the policy.
		VerifyConnection: v.verify,
	}
}

// verifier is a snapshot of a Policy, so that changing the Policy's map or
// pool later (on a config reload) neither races with handshakes in flight
// nor changes what an already built tls.Config accepts. A reload builds new
// configs.
type verifier struct {
	ca     *x509.CertPool
	pinned bool
	nodes  map[ID]bool
}

func (p *Policy) verifier() *verifier {
	v := &verifier{}
	if p.CA != nil {
		v.ca = p.CA.Clone()
	}
	// pinned is decided on the map's length, not on the number of true
	// entries: a pin list whose entries are all false must trust nobody,
	// not fall back to open.
	if len(p.Nodes) > 0 {
		v.pinned = true
		v.nodes = make(map[ID]bool, len(p.Nodes))
		for id, ok := range p.Nodes {
			if ok {
				v.nodes[id] = true
			}
		}
	}
	return v
}

func (v *verifier) verify(cs tls.ConnectionState) error {
	if cs.NegotiatedProtocol != ALPN {
		return fmt.Errorf("peer did not negotiate ALPN %q", ALPN)
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("peer certificate key is %T, want ed25519", leaf.PublicKey)
	}
	now := time.Now()
	if v.ca != nil {
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         v.ca,
			Intermediates: inter,
			CurrentTime:   now,
			// The CA decides who is a node; usages are about web server
			// and client roles, which every node plays both of.
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return fmt.Errorf("peer certificate is not signed by trust.ca: %w", err)
		}
	} else if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		// Without a CA the certificate's signature proves nothing the
		// handshake's CertificateVerify has not already proved (possession
		// of the key); the dates are the one thing left to honour.
		return fmt.Errorf("peer certificate is valid from %s to %s, not now", leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	if v.pinned {
		if id := IDOf(pub); !v.nodes[id] {
			return fmt.Errorf("peer node %s is not in trust.nodes", id)
		}
	}
	return nil
}

// PeerID returns the peer's node id from a completed handshake's state. The
// id comes from the key the peer proved it holds, so it is the one to use
// for routing and for checking a [Proof], never an id the peer claims.
func PeerID(cs tls.ConnectionState) (ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("peer node id: no peer certificate in the connection state")
	}
	leaf := cs.PeerCertificates[0]
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("peer node id: peer certificate key is %T, want ed25519", leaf.PublicKey)
	}
	return IDOf(pub), nil
}
