package identity

import (
	"bytes"
	"crypto/tls"
	"testing"
)

func TestProof(t *testing.T) {
	a, b := newNode(t), newNode(t)
	var open Policy

	// Two real sessions between the same pair of nodes: the second one is
	// where a captured proof would be replayed.
	ekm := func() (cli, srv []byte) {
		s, c := handshake(t, open.ServerTLS(b), open.ClientTLS(a))
		if s.err != nil || c.err != nil {
			t.Fatalf("handshake: server %v, client %v", s.err, c.err)
		}
		return exportEKM(t, c.state), exportEKM(t, s.state)
	}
	cliEKM, srvEKM := ekm()
	if !bytes.Equal(cliEKM, srvEKM) {
		t.Fatal("the two ends of one session export different keying material")
	}
	otherEKM, _ := ekm()
	if bytes.Equal(cliEKM, otherEKM) {
		t.Fatal("two sessions export the same keying material")
	}

	secret := []byte("0123456789abcdef0123456789abcdef")
	dialerProof := Proof(secret, cliEKM, RoleDialer, a.ID)
	acceptorProof := Proof(secret, srvEKM, RoleAcceptor, b.ID)

	tests := []struct {
		name   string
		secret []byte
		ekm    []byte
		role   byte
		sender ID
		proof  []byte
		want   bool
	}{
		{"acceptor verifies dialer", secret, srvEKM, RoleDialer, a.ID, dialerProof, true},
		{"dialer verifies acceptor", secret, cliEKM, RoleAcceptor, b.ID, acceptorProof, true},
		{"wrong secret", []byte("0123456789abcdef0123456789abcdeX"), srvEKM, RoleDialer, a.ID, dialerProof, false},
		{"reflected to the dialer", secret, cliEKM, RoleAcceptor, a.ID, dialerProof, false},
		{"reflected as acceptor proof", secret, cliEKM, RoleAcceptor, b.ID, dialerProof, false},
		{"replayed on another session", secret, otherEKM, RoleDialer, a.ID, dialerProof, false},
		{"claimed by another node", secret, srvEKM, RoleDialer, b.ID, dialerProof, false},
		{"truncated", secret, srvEKM, RoleDialer, a.ID, dialerProof[:16], false},
		{"empty", secret, srvEKM, RoleDialer, a.ID, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyProof(tt.secret, tt.ekm, tt.role, tt.sender, tt.proof); got != tt.want {
				t.Fatalf("VerifyProof = %v, want %v", got, tt.want)
			}
		})
	}

	if len(dialerProof) != 32 {
		t.Errorf("proof is %d bytes, want 32 (HMAC-SHA256)", len(dialerProof))
	}
	if bytes.Contains(dialerProof, secret) {
		t.Error("proof contains the secret")
	}
}

func exportEKM(t *testing.T, cs tls.ConnectionState) []byte {
	t.Helper()
	ekm, err := cs.ExportKeyingMaterial(ExporterLabel, nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	return ekm
}
