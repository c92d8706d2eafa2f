// Package identity gives a pycomms host a stable, self-certifying name and
// decides which other hosts it will talk to.
//
// Hosts find each other by address, but an address says nothing about who
// answers. So every host owns an ed25519 key, and its node id is a hash of
// the public key: nobody can present an id without holding the matching
// private key, and the TLS 1.3 handshake (over TCP or QUIC) proves exactly
// that. No host names, no public CA and no DNS are involved; the TLS configs
// built here skip the usual host-name verification and do their own checks
// instead (see [Policy]).
//
// On top of that authenticated id, a [Policy] narrows who may join: a shared
// cluster secret (proved with [Proof], bound to the TLS session), a list of
// pinned node ids, or certificates issued by a cluster CA. THREAT_MODEL.md in
// this directory says what each mode does and does not protect against.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// idBytes is how much of the key hash an id keeps. 160 bits is far beyond
// what a brute-force search for a colliding key could reach, and it encodes
// to exactly 32 base32 characters, so there are no padding or spare bits and
// every valid id string has exactly one byte form.
const idBytes = 20

// idLen is the length of an id string.
const idLen = idBytes * 8 / 5

// idEncoding is lower case because ids end up in file names, config keys and
// logs, where mixed case invites two spellings of the same node.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ID is a node id: lowercase RFC 4648 base32, no padding, of the first 20
// bytes of SHA-256 of the node's raw 32-byte ed25519 public key (32
// characters, a-z2-7). It is derived from the key, so whoever proves
// possession of the key in a TLS handshake has proved the id too.
type ID string

// IDOf returns the node id of an ed25519 public key.
func IDOf(pub ed25519.PublicKey) ID {
	sum := sha256.Sum256(pub)
	return ID(idEncoding.EncodeToString(sum[:idBytes]))
}

// ParseID checks that s is a well-formed node id: exactly 32 characters of
// a-z and 2-7. It does not accept upper case, because ids are compared as
// strings and a second spelling would silently miss a pinned node.
func ParseID(s string) (ID, error) {
	if len(s) != idLen {
		return "", fmt.Errorf("node id %q: %d characters, want %d", s, len(s), idLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '2' && c <= '7':
		case c >= 'A' && c <= 'Z':
			return "", fmt.Errorf("node id %q: upper-case %q at position %d, node ids are lower case", s, c, i)
		default:
			return "", fmt.Errorf("node id %q: character %q at position %d is not in a-z2-7", s, c, i)
		}
	}
	return ID(s), nil
}

// Short returns the first 8 characters of the id: enough to tell the nodes
// of one cluster apart in a log line, not enough to trust.
func (id ID) Short() string {
	if len(id) < 8 {
		return string(id)
	}
	return string(id[:8])
}

// Identity is this node's key, id and TLS certificate.
type Identity struct {
	Key  ed25519.PrivateKey
	ID   ID
	Cert tls.Certificate // self-signed with Key, or loaded from certPath
}

// selfSignedValidity is long because a self-signed node certificate only
// carries the key: trust comes from the id or the secret, not from the
// certificate's dates, and an expiring one would just take a node offline.
const selfSignedValidity = 100

// LoadOrCreate reads the PEM PKCS#8 ed25519 key at keyPath, creating it
// when it does not exist (parent directories 0700, file 0600, written via a
// temporary file and a rename so that a crash never leaves a truncated key).
// It refuses a key file that group or others may access, and a file that
// does not hold an ed25519 PKCS#8 key.
//
// When certPath is not empty the certificate chain there (PEM, leaf first,
// optional intermediates after) is used and must carry the key's public key;
// otherwise a self-signed certificate is made in memory, with the node id as
// its common name.
func LoadOrCreate(keyPath, certPath string) (*Identity, error) {
	key, err := loadKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(keyPath)
	}
	if err != nil {
		return nil, err
	}
	return withKey(key, certPath)
}

// Load reads the node key at keyPath (and the certificate at certPath) as
// LoadOrCreate does, but never creates the key. A command that only
// reports a node's id must not create one: run with another config or
// environment than the node's (without its PYCOMMS_DATA_DIR, say), it would
// print the id of a key the node never uses and leave that key behind. A
// missing key file is a *MissingKeyError.
func Load(keyPath, certPath string) (*Identity, error) {
	key, err := loadKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &MissingKeyError{Path: keyPath, Err: err}
	}
	if err != nil {
		return nil, err
	}
	return withKey(key, certPath)
}

// MissingKeyError is Load's error for a key file that does not exist yet.
type MissingKeyError struct {
	Path string // the key file, as given to Load
	Err  error  // the file system's error; errors.Is(Err, fs.ErrNotExist)
}

func (e *MissingKeyError) Error() string { return "no node key at " + e.Path }
func (e *MissingKeyError) Unwrap() error { return e.Err }

// withKey completes an Identity for key: its id, and the certificate at
// certPath or a self-signed one.
func withKey(key ed25519.PrivateKey, certPath string) (*Identity, error) {
	var err error
	pub := key.Public().(ed25519.PublicKey)
	id := &Identity{Key: key, ID: IDOf(pub)}
	if certPath != "" {
		id.Cert, err = loadCert(certPath, key)
	} else {
		id.Cert, err = selfSigned(key, id.ID)
	}
	if err != nil {
		return nil, err
	}
	return id, nil
}

// loadKey returns an error satisfying errors.Is(err, fs.ErrNotExist) only
// when the key file is missing, which is the one case LoadOrCreate repairs.
func loadKey(path string) (ed25519.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read node key %s: %w", path, err)
	}
	// Windows reports synthetic permission bits (0666 for any writable
	// file), so the check would refuse every key there; its ACLs are out of
	// reach of os.FileMode.
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("node key %s has mode %04o, so other users may read it; run chmod 600 %s", path, perm, path)
	}
	data, err := readSmallFile(path, "node key", maxKeyFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("node key %s holds no PEM block, want an ed25519 PKCS#8 \"PRIVATE KEY\"", path)
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("node key %s holds a PEM %q block, want an ed25519 PKCS#8 \"PRIVATE KEY\"", path, block.Type)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse node key %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("node key %s holds a %T, want an ed25519 key", path, parsed)
	}
	return key, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode node key %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(path, data); err != nil {
		return nil, fmt.Errorf("create node key %s: %w", path, err)
	}
	return key, nil
}

// writeFileAtomic writes data to path with mode 0600 so that the file is
// either absent or complete: a node that crashed half-way through writing
// its key must not come back with a different id, or with none.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// os.CreateTemp creates the file 0600, so the key is never readable by
	// others, not even between creation and rename.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	// Sync before rename: otherwise a power loss can leave the new name
	// pointing at an empty file on some file systems.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Persisting the directory entry is best effort: it is not possible on
	// every platform (Windows cannot open a directory for sync), and the key
	// is already complete on disk either way.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func loadCert(path string, key ed25519.PrivateKey) (tls.Certificate, error) {
	data, err := readSmallFile(path, "node certificate", maxCertFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("node certificate %s: %w", path, err)
	}
	if len(certs) == 0 {
		return tls.Certificate{}, fmt.Errorf("node certificate %s holds no PEM certificate", path)
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return tls.Certificate{}, fmt.Errorf("node certificate %s: first certificate has a %T key, want ed25519", path, leaf.PublicKey)
	}
	if !pub.Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("node certificate %s is for node %s, but the node key is node %s", path, IDOf(pub), IDOf(key.Public().(ed25519.PublicKey)))
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// parseCerts refuses anything but CERTIFICATE blocks rather than skipping
// them: a private key or a typo in a certificate file is a mistake the
// operator should hear about, not something to paper over.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs, nil
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
}

func selfSigned(key ed25519.PrivateKey, id ID) (tls.Certificate, error) {
	// Backdated an hour so that a peer whose clock is a little behind does
	// not see a certificate from the future.
	now := time.Now()
	tmpl := &x509.Certificate{
		// A nil SerialNumber makes x509.CreateCertificate pick a random
		// positive one, which is all a self-signed node certificate needs.
		Subject:     pkix.Name{CommonName: string(id)},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.AddDate(selfSignedValidity, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-sign certificate for node %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse self-signed certificate for node %s: %w", id, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
