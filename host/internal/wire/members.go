package wire

import "fmt"

// Members is the body of a members frame: membership records the sender
// holds that the receiver may not have. Records are flooded: a host that
// receives a record newer than the one it holds passes it on to its other
// peers, so a host that reaches any one member learns every member.
type Members struct {
	Entries []MemberEntry `cbor:"1,keyasint,omitempty"`
	// Ack, when not zero, asks the receiver for an [Ack] with Members set
	// to it once it has applied the frame (links at [AckVersion] on). A
	// frame with no entries and an Ack is a barrier: its ack says that
	// every frame sent before it was applied.
	Ack uint64 `cbor:"2,keyasint,omitempty"`
}

// MemberEntry carries one record as its origin signed it, so that a host
// can pass on records of hosts it has no link to without being able to
// alter them.
type MemberEntry struct {
	// Record is the CBOR encoding of a MemberRecord, exactly as signed.
	Record []byte `cbor:"1,keyasint,omitempty"`
	// Sig is the origin's ed25519 signature over MemberSigContext followed
	// by Record.
	Sig []byte `cbor:"2,keyasint,omitempty"`
	// Reach are the origin's listen URLs as the sender reaches it (an
	// unspecified host replaced by the address the sender sees it at, or
	// passed on as received). Not signed: a hint for dialling, which
	// checks the origin's id in the TLS handshake anyway.
	Reach []string `cbor:"3,keyasint,omitempty"`
}

// MemberSigContext prefixes the signed bytes, so that a member signature
// can never be taken for a signature over anything else.
const MemberSigContext = "pycomms member record v1\x00"

// MemberRecord is what a host says about itself to the whole mesh.
type MemberRecord struct {
	ID   string `cbor:"1,keyasint,omitempty"` // the origin's node id
	Name string `cbor:"2,keyasint,omitempty"` // the origin's node name
	// Key is the origin's raw 32-byte ed25519 public key, from which ID
	// derives; the signature is checked against it.
	Key []byte `cbor:"3,keyasint,omitempty"`
	// Version grows with every change; a host keeps the record with the
	// highest version. Origins start it from their clock at start-up.
	Version  uint64   `cbor:"4,keyasint,omitempty"`
	Listen   []string `cbor:"5,keyasint,omitempty"` // the origin's listen URLs as it knows them
	Links    []string `cbor:"6,keyasint,omitempty"` // ids of the origin's direct peers, sorted
	Services []string `cbor:"7,keyasint,omitempty"` // the origin's own services
	Topics   []string `cbor:"8,keyasint,omitempty"` // the origin's own topic patterns
	Left     bool     `cbor:"9,keyasint,omitempty"` // the origin left the mesh cleanly
}

// AppendMemberRecord appends the CBOR encoding of r (the bytes that get
// signed) to dst.
func AppendMemberRecord(dst []byte, r *MemberRecord) ([]byte, error) {
	b, err := encMode.Marshal(r)
	if err != nil {
		return dst, fmt.Errorf("wire: encoding a member record: %w", err)
	}
	return append(dst, b...), nil
}
