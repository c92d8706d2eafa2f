package discovery

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pycomms/pycomms-host/host/internal/identity"
)

// The TXT keys of an announcement (RFC 6763 section 6: "key=value", keys
// compared case-insensitively).
const (
	keyID    = "id"
	keyName  = "name"
	keyTCP   = "tcp"
	keyQUIC  = "quic"
	keyProto = "proto"
)

// maxName is the longest node name an announcement may carry.
const maxName = 63

// Record is what a host announces, as the TXT record of its DNS-SD
// instance:
//
//	id=<node id>  name=<node name>  tcp=<port>  quic=<port>  proto=<min>-<max>
//
// tcp or quic is left out when that transport is off (port 0); at least one
// of them must be on.
type Record struct {
	ID       string // node id: 32 characters of a-z2-7 (see identity.ParseID)
	Name     string // node name: 1 to 63 characters of A-Z a-z 0-9 . _ -
	TCPPort  int    // TLS-over-TCP listener port; 0 when TCP is off
	QUICPort int    // QUIC listener port; 0 when QUIC is off

	// MinProto and MaxProto are the lowest and highest host-to-host wire
	// protocol versions the host speaks (abi/PROTOCOL.md).
	MinProto, MaxProto uint16
}

// TXT returns the TXT strings announcing r, in a fixed order. It does not
// validate r; ParseTXT(r.TXT()) does.
func (r Record) TXT() []string {
	txt := []string{keyID + "=" + r.ID, keyName + "=" + r.Name}
	if r.TCPPort != 0 {
		txt = append(txt, keyTCP+"="+strconv.Itoa(r.TCPPort))
	}
	if r.QUICPort != 0 {
		txt = append(txt, keyQUIC+"="+strconv.Itoa(r.QUICPort))
	}
	return append(txt, fmt.Sprintf("%s=%d-%d", keyProto, r.MinProto, r.MaxProto))
}

// validate reports whether r is a record ParseTXT would accept back
// unchanged, i.e. whether it may be announced.
func (r Record) validate() error {
	back, err := ParseTXT(r.TXT())
	if err != nil {
		return err
	}
	if back != r {
		// Only reachable through values TXT cannot express, such as a
		// negative port, which ParseTXT already refuses; kept as a guard.
		return fmt.Errorf("record %+v does not survive a TXT round trip (got %+v)", r, back)
	}
	return nil
}

// ParseTXT decodes and validates the TXT strings of an announcement. They
// come from the network, so nothing is assumed about them:
//
//   - a string is "key=value", the key before the first '='; keys are
//     case-insensitive (RFC 6763 section 6.4); unknown keys, and strings
//     with an empty key, are ignored;
//   - each known key appears at most once and has a value;
//   - id is a valid node id (identity.ParseID);
//   - name is 1 to 63 characters of A-Z a-z 0-9 . _ -;
//   - tcp and quic are ports, 1 to 65535 in plain decimal (no sign, no
//     leading zero); either may be absent, not both;
//   - proto is "a-b", two such decimal uint16 version numbers with a <= b.
//
// id, name and proto are required. An error names the key and quotes the
// offending value (shortened when long).
func ParseTXT(txt []string) (Record, error) {
	var r Record
	seen := map[string]string{}
	for _, s := range txt {
		k, v, hasValue := strings.Cut(s, "=")
		if k == "" {
			continue
		}
		key := strings.ToLower(k)
		switch key {
		case keyID, keyName, keyTCP, keyQUIC, keyProto:
		default:
			continue
		}
		if !hasValue {
			return Record{}, fmt.Errorf("TXT key %s has no value (want %s=...)", quoteValue(k), key)
		}
		if prev, ok := seen[key]; ok {
			return Record{}, fmt.Errorf("TXT key %q appears twice (values %s and %s)", key, quoteValue(prev), quoteValue(v))
		}
		seen[key] = v
		var err error
		switch key {
		case keyID:
			var id identity.ID
			id, err = identity.ParseID(v)
			r.ID = string(id)
		case keyName:
			err = checkName(v)
			r.Name = v
		case keyTCP:
			r.TCPPort, err = parsePort(v)
		case keyQUIC:
			r.QUICPort, err = parsePort(v)
		case keyProto:
			r.MinProto, r.MaxProto, err = parseProto(v)
		}
		if err != nil {
			return Record{}, fmt.Errorf("TXT key %q: value %s: %w", key, quoteValue(v), err)
		}
	}
	for _, key := range []string{keyID, keyName, keyProto} {
		if _, ok := seen[key]; !ok {
			return Record{}, fmt.Errorf("TXT key %q is missing", key)
		}
	}
	if r.TCPPort == 0 && r.QUICPort == 0 {
		return Record{}, fmt.Errorf("TXT keys %q and %q are both missing: the host announces no listener", keyTCP, keyQUIC)
	}
	return r, nil
}

// quoteValue quotes a value from the network for an error message, cut
// short so that a hostile record cannot flood the log.
func quoteValue(v string) string {
	const max = 48
	if len(v) > max {
		return strconv.Quote(v[:max]) + fmt.Sprintf("... (%d bytes)", len(v))
	}
	return strconv.Quote(v)
}

func checkName(v string) error {
	if v == "" {
		return errors.New("the node name is empty")
	}
	if len(v) > maxName {
		return fmt.Errorf("the node name is %d bytes long, at most %d allowed", len(v), maxName)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("character %q at position %d is not allowed in a node name (A-Z a-z 0-9 . _ -)", c, i)
		}
	}
	return nil
}

// parseUint parses plain decimal: digits only, no leading zero (except "0"
// itself), at most max.
func parseUint(v string, max uint64) (uint64, bool) {
	if v == "" || len(v) > 20 || (len(v) > 1 && v[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		return 0, false
	}
	return n, true
}

func parsePort(v string) (int, error) {
	n, ok := parseUint(v, 65535)
	if !ok || n == 0 {
		return 0, errors.New("not a port number from 1 to 65535 (leave the key out when the transport is off)")
	}
	return int(n), nil
}

func parseProto(v string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, errors.New(`not a version range "min-max", e.g. "1-1"`)
	}
	x, okA := parseUint(a, 65535)
	y, okB := parseUint(b, 65535)
	if !okA || !okB {
		return 0, 0, errors.New(`not a version range "min-max" of two numbers from 0 to 65535, e.g. "1-1"`)
	}
	if x > y {
		return 0, 0, fmt.Errorf("the lowest version %d is above the highest %d", x, y)
	}
	return uint16(x), uint16(y), nil
}
