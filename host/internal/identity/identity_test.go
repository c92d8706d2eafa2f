package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fixedSeed gives a key whose id is pinned below, so that any change to the
// id derivation (hash, truncation, alphabet, case) fails loudly: ids are
// written into other nodes' configs and must never change.
var fixedSeed = []byte("pycomms node id test vector seed")

func TestIDOf(t *testing.T) {
	key := ed25519.NewKeyFromSeed(fixedSeed)
	pub := key.Public().(ed25519.PublicKey)
	id := IDOf(pub)

	const want = ID("x52nu3s6tfsady4hb3avnhqvilbqmw5n")
	if id != want {
		t.Fatalf("IDOf(fixed key) = %q, want %q", id, want)
	}
	// Recomputed from the definition with independent code, so the pinned
	// value above is known to follow the spec and not just the code.
	sum := sha256.Sum256(pub)
	spec := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
	if string(id) != spec {
		t.Fatalf("IDOf = %q, definition gives %q", id, spec)
	}
	if len(id) != 32 {
		t.Fatalf("len(id) = %d, want 32", len(id))
	}
	for _, c := range id {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz234567", c) {
			t.Fatalf("id %q has %q outside a-z2-7", id, c)
		}
	}
	parsed, err := ParseID(string(id))
	if err != nil || parsed != id {
		t.Fatalf("ParseID(%q) = %q, %v; want round trip", id, parsed, err)
	}
	if got := id.Short(); got != "x52nu3s6" {
		t.Fatalf("Short() = %q, want %q", got, "x52nu3s6")
	}
}

func TestParseID(t *testing.T) {
	valid := string(IDOf(ed25519.NewKeyFromSeed(fixedSeed).Public().(ed25519.PublicKey)))
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"valid", valid, ""},
		{"all letters", strings.Repeat("a", 32), ""},
		{"all digits", strings.Repeat("7", 32), ""},
		{"upper case", strings.ToUpper(valid), "lower case"},
		{"one upper", "A" + valid[1:], "lower case"},
		{"empty", "", "0 characters, want 32"},
		{"short", valid[:31], "31 characters, want 32"},
		{"long", valid + "a", "33 characters, want 32"},
		{"padding", valid[:31] + "=", "not in a-z2-7"},
		{"digit 0", "0" + valid[1:], "not in a-z2-7"},
		{"digit 1", valid[:31] + "1", "not in a-z2-7"},
		{"digit 8", valid[:10] + "8" + valid[11:], "not in a-z2-7"},
		{"newline", valid[:31] + "\n", "not in a-z2-7"},
		{"space", " " + valid[1:], "not in a-z2-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseID(tt.in)
			if tt.wantErr == "" {
				if err != nil || string(id) != tt.in {
					t.Fatalf("ParseID(%q) = %q, %v; want it back", tt.in, id, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseID(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestShortOfShortString(t *testing.T) {
	// Short is used in log lines, including for malformed ids from a peer,
	// so it must not panic on them.
	if got := ID("abc").Short(); got != "abc" {
		t.Fatalf(`ID("abc").Short() = %q`, got)
	}
}

func TestLoadOrCreateCreatesThenReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	keyPath := filepath.Join(dir, "node.key")

	first, err := LoadOrCreate(keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("key file mode = %04o, want 0600", perm)
		}
		dinfo, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if perm := dinfo.Mode().Perm(); perm != 0o700 {
			t.Errorf("key dir mode = %04o, want 0700", perm)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key dir holds %d entries, want only the key (no temp file left behind)", len(entries))
	}

	pub := first.Key.Public().(ed25519.PublicKey)
	if first.ID != IDOf(pub) {
		t.Errorf("ID = %s, want IDOf(key) = %s", first.ID, IDOf(pub))
	}
	leaf := first.Cert.Leaf
	if leaf == nil {
		t.Fatal("Cert.Leaf is nil")
	}
	if !pub.Equal(leaf.PublicKey) {
		t.Error("self-signed certificate does not carry the node key")
	}
	if leaf.Subject.CommonName != string(first.ID) {
		t.Errorf("certificate CN = %q, want the node id %q", leaf.Subject.CommonName, first.ID)
	}
	// CheckSignature, not CheckSignatureFrom: the latter insists that the
	// parent be a CA, which a node certificate is not.
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v, want ServerAuth, ClientAuth", leaf.ExtKeyUsage)
	}
	if years := leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 24 / 365; years < 99 {
		t.Errorf("certificate valid for %.0f years, want about 100", years)
	}

	second, err := LoadOrCreate(keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || !second.Key.Equal(first.Key) {
		t.Fatalf("reload gave node %s, want the same node %s", second.ID, first.ID)
	}
	// Each load makes a fresh self-signed certificate; only the key is
	// persistent, so the serials should differ.
	if second.Cert.Leaf.SerialNumber.Cmp(first.Cert.Leaf.SerialNumber) == 0 {
		t.Error("two self-signed certificates share a serial number")
	}
}

func TestLoadOrCreateRefusesBadKeyFiles(t *testing.T) {
	ed := pemPKCS8(t, ed25519.NewKeyFromSeed(fixedSeed))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		data    []byte
		mode    os.FileMode
		wantErr string
	}{
		{"group readable", ed, 0o640, "chmod 600"},
		{"world readable", ed, 0o604, "chmod 600"},
		{"group writable", ed, 0o620, "chmod 600"},
		{"rsa pkcs8", pemPKCS8(t, rsaKey), 0o600, "*rsa.PrivateKey, want an ed25519 key"},
		{"ecdsa pkcs8", pemPKCS8(t, ecKey), 0o600, "*ecdsa.PrivateKey, want an ed25519 key"},
		{"ec sec1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600, `PEM "EC PRIVATE KEY" block`},
		{"rsa pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), 0o600, `PEM "RSA PRIVATE KEY" block`},
		{"garbage", []byte("not a key at all\n"), 0o600, "holds no PEM block"},
		{"empty", nil, 0o600, "holds no PEM block"},
		{"corrupt der", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), 0o600, "parse node key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && tt.mode != 0o600 {
				t.Skip("Windows has no Unix permission bits")
			}
			path := filepath.Join(t.TempDir(), "node.key")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			// Chmod after writing so the umask cannot mask the bits under test.
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(path, "")
			if err == nil {
				t.Fatal("LoadOrCreate accepted the key file")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error = %q, want one naming %s and containing %q", err, path, tt.wantErr)
			}
			// A bad key must be reported, never replaced: replacing it would
			// silently change the node's id.
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tt.data) {
				t.Fatal("LoadOrCreate modified the refused key file")
			}
		})
	}
}

func TestLoadOrCreateWithCertFile(t *testing.T) {
	ca := newCA(t, "test ca", newEd25519(t))
	inter := ca.issueCA(t, "test intermediate")
	other := newCA(t, "other ca", newECDSA(t))

	keyPath := filepath.Join(t.TempDir(), "node.key")
	node, err := LoadOrCreate(keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	pub := node.Key.Public().(ed25519.PublicKey)
	otherPub := ed25519.NewKeyFromSeed(fixedSeed).Public()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	leafDER := ca.issue(t, pub)
	tests := []struct {
		name      string
		pem       []byte
		wantErr   string
		wantChain int
	}{
		{"leaf", pemCerts(leafDER), "", 1},
		{"leaf and intermediate", pemCerts(inter.issue(t, pub), inter.cert.Raw), "", 2},
		{"other CA is fine at load time", pemCerts(other.issue(t, pub)), "", 1},
		{"mismatching key", pemCerts(ca.issue(t, otherPub)), "is for node " + string(IDOf(otherPub.(ed25519.PublicKey))), 0},
		{"intermediate first", pemCerts(inter.cert.Raw, inter.issue(t, pub)), "is for node", 0},
		{"ecdsa leaf", pemCerts(ca.issue(t, ecKey.Public())), "*ecdsa.PublicKey key, want ed25519", 0},
		{"no certificate", []byte("nothing here\n"), "holds no PEM certificate", 0},
		{"key in cert file", append(pemCerts(leafDER), pemPKCS8(t, node.Key)...), `PEM block 2 is "PRIVATE KEY"`, 0},
		{"corrupt certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), "certificate 1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPath := filepath.Join(t.TempDir(), "node.crt")
			if err := os.WriteFile(certPath, tt.pem, 0o644); err != nil {
				t.Fatal(err)
			}
			id, err := LoadOrCreate(keyPath, certPath)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), certPath) {
					t.Fatalf("error = %v, want one naming %s and containing %q", err, certPath, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.ID != node.ID {
				t.Errorf("ID = %s, want %s", id.ID, node.ID)
			}
			if len(id.Cert.Certificate) != tt.wantChain {
				t.Errorf("chain length = %d, want %d", len(id.Cert.Certificate), tt.wantChain)
			}
			if id.Cert.Leaf == nil || !pub.Equal(id.Cert.Leaf.PublicKey) {
				t.Error("Cert.Leaf does not carry the node key")
			}
		})
	}

	t.Run("missing cert file", func(t *testing.T) {
		certPath := filepath.Join(t.TempDir(), "absent.crt")
		_, err := LoadOrCreate(keyPath, certPath)
		if err == nil || !strings.Contains(err.Error(), "read node certificate "+certPath) {
			t.Fatalf("error = %v, want one naming the missing file", err)
		}
	})
}

func TestLoadCA(t *testing.T) {
	ca := newCA(t, "test ca", newEd25519(t))
	other := newCA(t, "other ca", newECDSA(t))
	tests := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"one root", pemCerts(ca.cert.Raw), ""},
		{"bundle", pemCerts(ca.cert.Raw, other.cert.Raw), ""},
		{"empty", nil, "holds no PEM certificate"},
		{"text only", []byte("# roots go here\n"), "holds no PEM certificate"},
		{"key instead", pemPKCS8(t, ed25519.NewKeyFromSeed(fixedSeed)), `PEM block 1 is "PRIVATE KEY"`},
		{"corrupt second", append(pemCerts(ca.cert.Raw), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})...), "certificate 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(path, tt.pem, 0o644); err != nil {
				t.Fatal(err)
			}
			pool, err := LoadCA(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error = %v, want one naming %s and containing %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pool == nil {
				t.Fatal("nil pool")
			}
		})
	}
}

func pemPKCS8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pemCerts(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// TestLoadNeverCreates: Load reads a key LoadOrCreate made, and reports a
// missing one as a *MissingKeyError naming the path, creating nothing (not
// even the key's directory).
func TestLoadNeverCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	keyPath := filepath.Join(dir, "keys", "node.key")

	_, err := Load(keyPath, "")
	var missing *MissingKeyError
	if !errors.As(err, &missing) || missing.Path != keyPath || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key = %v (%T), want a *MissingKeyError for %s", err, err, keyPath)
	}
	if want := "no node key at " + keyPath; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load created %s (stat: %v)", dir, err)
	}

	made, err := LoadOrCreate(keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != made.ID || !got.Key.Equal(made.Key) || got.Cert.Leaf == nil {
		t.Errorf("Load gave node %s, want %s with a certificate", got.ID, made.ID)
	}

	// Every other problem is reported as LoadOrCreate reports it.
	if runtime.GOOS == "windows" {
		return // no permission bits to check there
	}
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(keyPath, ""); err == nil || errors.As(err, &missing) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Load of a key others may read = %v", err)
	}
}
