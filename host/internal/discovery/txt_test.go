package discovery

import (
	"slices"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/host/internal/identity"
)

const (
	testID  = "abcdefghijklmnopqrstuvwxyz234567"
	testID2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestTXTRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{ID: testID, Name: "node-a", TCPPort: 7400, QUICPort: 7400, MinProto: 1, MaxProto: 1},
		{ID: testID2, Name: "x", QUICPort: 1, MinProto: 0, MaxProto: 65535},
		{ID: testID, Name: "only.tcp_host-1", TCPPort: 65535, MinProto: 3, MaxProto: 7},
		{ID: testID, Name: strings.Repeat("n", 63), TCPPort: 1, QUICPort: 65535, MinProto: 1, MaxProto: 2},
	} {
		txt := r.TXT()
		got, err := ParseTXT(txt)
		if err != nil {
			t.Errorf("ParseTXT(%q): %v", txt, err)
			continue
		}
		if got != r {
			t.Errorf("round trip of %+v gave %+v (TXT %q)", r, got, txt)
		}
		if err := r.validate(); err != nil {
			t.Errorf("validate(%+v): %v", r, err)
		}
	}
}

func TestTXTFormat(t *testing.T) {
	r := Record{ID: testID, Name: "a", QUICPort: 7401, MinProto: 1, MaxProto: 1}
	want := []string{"id=" + testID, "name=a", "quic=7401", "proto=1-1"}
	if got := r.TXT(); !slices.Equal(got, want) {
		t.Errorf("TXT() = %q, want %q (tcp left out when TCP is off)", got, want)
	}
	r.TCPPort = 7400
	want = []string{"id=" + testID, "name=a", "tcp=7400", "quic=7401", "proto=1-1"}
	if got := r.TXT(); !slices.Equal(got, want) {
		t.Errorf("TXT() = %q, want %q", got, want)
	}
}

func TestParseTXTLenient(t *testing.T) {
	base := []string{"id=" + testID, "name=a", "tcp=7400", "proto=1-1"}
	want := Record{ID: testID, Name: "a", TCPPort: 7400, MinProto: 1, MaxProto: 1}
	for _, extra := range [][]string{
		{"future=1"},                    // unknown key
		{"future"},                      // unknown boolean attribute
		{"=orphan"},                     // empty key: ignored (RFC 6763 6.4)
		{""},                            // empty string
		{"future=1", "future=2"},        // unknown keys may repeat
		{"txtvers=1", "x=" + "\x00"},    // odd bytes in unknown keys' values
		{"path=/a=b", "Info=any=thing"}, // '=' inside values of unknown keys
	} {
		got, err := ParseTXT(append(slices.Clone(base), extra...))
		if err != nil || got != want {
			t.Errorf("with extra %q: got %+v, %v; want %+v", extra, got, err, want)
		}
	}
	// Keys are case-insensitive.
	got, err := ParseTXT([]string{"ID=" + testID, "Name=a", "TCP=7400", "PROTO=1-1"})
	if err != nil || got != want {
		t.Errorf("upper-case keys: got %+v, %v; want %+v", got, err, want)
	}
	// Values equal to a boundary.
	got, err = ParseTXT([]string{"id=" + testID, "name=" + strings.Repeat("Z", 63), "quic=65535", "tcp=1", "proto=0-0"})
	if err != nil || got.QUICPort != 65535 || got.TCPPort != 1 || got.MaxProto != 0 {
		t.Errorf("boundaries: got %+v, %v", got, err)
	}
}

func TestParseTXTRejects(t *testing.T) {
	id := "id=" + testID
	tests := []struct {
		name string
		txt  []string
		want []string // substrings of the error: the key and the value
	}{
		{"nil", nil, []string{`"id" is missing`}},
		{"missing id", []string{"name=a", "tcp=1", "proto=1-1"}, []string{`"id" is missing`}},
		{"missing name", []string{id, "tcp=1", "proto=1-1"}, []string{`"name" is missing`}},
		{"missing proto", []string{id, "name=a", "tcp=1"}, []string{`"proto" is missing`}},
		{"no ports", []string{id, "name=a", "proto=1-1"}, []string{`"tcp"`, `"quic"`, "both missing"}},

		{"id without value", []string{"id", "name=a", "tcp=1", "proto=1-1"}, []string{`"id"`, "no value"}},
		{"tcp without value", []string{id, "name=a", "tcp", "proto=1-1"}, []string{`"tcp"`, "no value"}},
		{"id twice", []string{id, "name=a", "tcp=1", "proto=1-1", "id=" + testID2}, []string{`"id" appears twice`, testID, testID2}},
		{"id twice same", []string{id, id, "name=a", "tcp=1", "proto=1-1"}, []string{`"id" appears twice`}},
		{"id twice other case", []string{id, "ID=" + testID, "name=a", "tcp=1", "proto=1-1"}, []string{`"id" appears twice`}},
		{"name twice", []string{id, "name=a", "name=b", "tcp=1", "proto=1-1"}, []string{`"name" appears twice`, `"a"`, `"b"`}},
		{"tcp twice", []string{id, "name=a", "tcp=1", "tcp=2", "proto=1-1"}, []string{`"tcp" appears twice`}},
		{"quic twice", []string{id, "name=a", "quic=1", "quic=1", "proto=1-1"}, []string{`"quic" appears twice`}},
		{"proto twice", []string{id, "name=a", "tcp=1", "proto=1-1", "proto=1-2"}, []string{`"proto" appears twice`}},

		{"id short", []string{"id=abc", "name=a", "tcp=1", "proto=1-1"}, []string{`"id"`, `"abc"`, "32"}},
		{"id upper", []string{"id=" + strings.ToUpper(testID), "name=a", "tcp=1", "proto=1-1"}, []string{`"id"`, "upper-case"}},
		{"id bad char", []string{"id=" + testID[:31] + "1", "name=a", "tcp=1", "proto=1-1"}, []string{`"id"`, "not in a-z2-7"}},
		{"id empty", []string{"id=", "name=a", "tcp=1", "proto=1-1"}, []string{`"id"`, `""`}},

		{"name empty", []string{id, "name=", "tcp=1", "proto=1-1"}, []string{`"name"`, "empty"}},
		{"name long", []string{id, "name=" + strings.Repeat("a", 64), "tcp=1", "proto=1-1"}, []string{`"name"`, "64 bytes"}},
		{"name space", []string{id, "name=a b", "tcp=1", "proto=1-1"}, []string{`"name"`, `"a b"`, `' '`}},
		{"name slash", []string{id, "name=a/b", "tcp=1", "proto=1-1"}, []string{`"name"`, `'/'`}},
		{"name unicode", []string{id, "name=né", "tcp=1", "proto=1-1"}, []string{`"name"`}},
		{"name control", []string{id, "name=a\nb", "tcp=1", "proto=1-1"}, []string{`"name"`, `"a\nb"`}},

		{"tcp zero", []string{id, "name=a", "tcp=0", "proto=1-1"}, []string{`"tcp"`, `"0"`, "1 to 65535"}},
		{"tcp too big", []string{id, "name=a", "tcp=65536", "proto=1-1"}, []string{`"tcp"`, `"65536"`}},
		{"tcp huge", []string{id, "name=a", "tcp=99999999999999999999999", "proto=1-1"}, []string{`"tcp"`}},
		{"tcp negative", []string{id, "name=a", "tcp=-1", "proto=1-1"}, []string{`"tcp"`, `"-1"`}},
		{"tcp plus", []string{id, "name=a", "tcp=+80", "proto=1-1"}, []string{`"tcp"`, `"+80"`}},
		{"tcp leading zero", []string{id, "name=a", "tcp=080", "proto=1-1"}, []string{`"tcp"`, `"080"`}},
		{"tcp empty", []string{id, "name=a", "tcp=", "proto=1-1"}, []string{`"tcp"`, `""`}},
		{"tcp space", []string{id, "name=a", "tcp= 80", "proto=1-1"}, []string{`"tcp"`, `" 80"`}},
		{"tcp hex", []string{id, "name=a", "tcp=0x50", "proto=1-1"}, []string{`"tcp"`, `"0x50"`}},
		{"quic zero", []string{id, "name=a", "quic=0", "proto=1-1"}, []string{`"quic"`, `"0"`}},
		{"quic too big", []string{id, "name=a", "quic=70000", "proto=1-1"}, []string{`"quic"`, `"70000"`}},
		{"quic letters", []string{id, "name=a", "quic=http", "proto=1-1"}, []string{`"quic"`, `"http"`}},

		{"proto single", []string{id, "name=a", "tcp=1", "proto=1"}, []string{`"proto"`, `"1"`, "min-max"}},
		{"proto reversed", []string{id, "name=a", "tcp=1", "proto=2-1"}, []string{`"proto"`, `"2-1"`, "above"}},
		{"proto too big", []string{id, "name=a", "tcp=1", "proto=1-65536"}, []string{`"proto"`, `"1-65536"`}},
		{"proto negative", []string{id, "name=a", "tcp=1", "proto=-1-1"}, []string{`"proto"`}},
		{"proto three", []string{id, "name=a", "tcp=1", "proto=1-2-3"}, []string{`"proto"`, `"1-2-3"`}},
		{"proto empty halves", []string{id, "name=a", "tcp=1", "proto=-"}, []string{`"proto"`, `"-"`}},
		{"proto empty", []string{id, "name=a", "tcp=1", "proto="}, []string{`"proto"`, `""`}},
		{"proto spaces", []string{id, "name=a", "tcp=1", "proto=1 - 1"}, []string{`"proto"`}},
		{"proto leading zero", []string{id, "name=a", "tcp=1", "proto=01-1"}, []string{`"proto"`, `"01-1"`}},

		{"long value is cut", []string{id, "name=" + strings.Repeat("x", 5000), "tcp=1", "proto=1-1"}, []string{`"name"`, "(5000 bytes)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseTXT(tt.txt)
			if err == nil {
				t.Fatalf("ParseTXT(%q) = %+v, want an error", tt.txt, r)
			}
			if r != (Record{}) {
				t.Errorf("on error the record is %+v, want zero", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

// FuzzParseTXT feeds ParseTXT TXT strings separated by newlines. Whatever
// it accepts must be a valid record that survives a TXT round trip.
func FuzzParseTXT(f *testing.F) {
	f.Add("id=" + testID + "\nname=a\ntcp=7400\nquic=7400\nproto=1-1")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTXT(strings.Split(s, "\n"))
		if err != nil {
			if r != (Record{}) {
				t.Fatalf("error %v with non-zero record %+v", err, r)
			}
			return
		}
		if _, err := identity.ParseID(r.ID); err != nil {
			t.Fatalf("accepted id %q: %v", r.ID, err)
		}
		if len(r.Name) < 1 || len(r.Name) > 63 || checkName(r.Name) != nil {
			t.Fatalf("accepted name %q", r.Name)
		}
		if r.TCPPort < 0 || r.TCPPort > 65535 || r.QUICPort < 0 || r.QUICPort > 65535 || r.TCPPort+r.QUICPort == 0 {
			t.Fatalf("accepted ports %d, %d", r.TCPPort, r.QUICPort)
		}
		if r.MinProto > r.MaxProto {
			t.Fatalf("accepted proto %d-%d", r.MinProto, r.MaxProto)
		}
		back, err := ParseTXT(r.TXT())
		if err != nil || back != r {
			t.Fatalf("round trip of %+v: %+v, %v", r, back, err)
		}
	})
}
