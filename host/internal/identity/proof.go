package identity

import (
	"crypto/hmac"
	"crypto/sha256"
)

// ExporterLabel is the TLS exporter label for the keying material a [Proof]
// is bound to: cs.ExportKeyingMaterial(ExporterLabel, nil, 32).
const ExporterLabel = "EXPORTER-pycomms-secret-proof"

// Roles of the two sides of a connection in a [Proof]. They differ so that a
// peer cannot send our own proof back to us and pass.
const (
	RoleDialer   byte = 'c'
	RoleAcceptor byte = 's'
)

// proofContext versions the construction, so that a future change cannot
// be confused with this one.
const proofContext = "pycomms secret proof v1"

// Proof proves that sender knows secret without revealing it. It is bound
// to one TLS session through ekm (the session's exported keying material),
// so a proof seen on one connection is worthless on any other, including
// one a man in the middle relays: each leg of a relay has its own ekm.
//
// The proof is HMAC-SHA256(secret, "pycomms secret proof v1" || role ||
// ekm || sender), with role [RoleDialer] or [RoleAcceptor].
func Proof(secret, ekm []byte, role byte, sender ID) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(proofContext))
	m.Write([]byte{role})
	m.Write(ekm)
	m.Write([]byte(sender))
	return m.Sum(nil)
}

// VerifyProof reports whether proof is the [Proof] of secret for that
// session, role and sender. sender must be the id from [PeerID], not one
// the peer claims. The comparison is constant time so that response timing
// does not reveal how much of a forged proof was right.
func VerifyProof(secret, ekm []byte, role byte, sender ID, proof []byte) bool {
	return hmac.Equal(Proof(secret, ekm, role, sender), proof)
}
