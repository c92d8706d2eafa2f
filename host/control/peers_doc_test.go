package control_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pycomms/pycomms-host/host/control"
)

// TestPeersDoc keeps API.md's /v1/peers table and PeerInfo in step: every
// JSON field of PeerInfo is documented and every documented field exists,
// and the `state` row names exactly the PeerState constants.
func TestPeersDoc(t *testing.T) {
	doc, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "\n### Peers\n")
	if !ok {
		t.Fatal("API.md has no ### Peers section")
	}
	sec, _, _ = strings.Cut(sec, "\n#")
	row := regexp.MustCompile("(?m)^\\| (`[a-z_]+`(?:, `[a-z_]+`)*) \\| (.*) \\|$")
	name := regexp.MustCompile("`([a-z_]+)`")
	var documented []string
	var stateRow string
	for _, m := range row.FindAllStringSubmatch(sec, -1) {
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			documented = append(documented, n[1])
			if n[1] == "state" {
				stateRow = m[2]
			}
		}
	}
	var fields []string
	typ := reflect.TypeFor[control.PeerInfo]()
	for i := range typ.NumField() {
		tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		fields = append(fields, tag)
	}
	slices.Sort(documented)
	slices.Sort(fields)
	if !slices.Equal(documented, fields) {
		t.Errorf("API.md documents the peer fields %v, PeerInfo has %v", documented, fields)
	}

	// The state row names each state once in backquotes, before its
	// explanation in parentheses; other backquoted words there (`error`)
	// sit inside those parentheses.
	var states []string
	depth := 0
	for i, r := range stateRow {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case '`':
			if depth == 0 && (i == 0 || stateRow[i-1] != '`') {
				if m := name.FindStringSubmatch(stateRow[i:]); m != nil && strings.HasPrefix(stateRow[i:], m[0]) {
					states = append(states, m[1])
				}
			}
		}
	}
	want := []control.PeerState{control.PeerUp, control.PeerLeaving, control.PeerConnecting, control.PeerRetrying,
		control.PeerStopped, control.PeerRelayed, control.PeerMember, control.PeerLost, control.PeerLeft}
	var wantS []string
	for _, s := range want {
		wantS = append(wantS, string(s))
	}
	if !slices.Equal(states, wantS) {
		t.Errorf("API.md's state row names %v, the PeerState constants are %v", states, wantS)
	}
}
