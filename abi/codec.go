package abi

import (
	"fmt"
	"strings"
)

// Codec plugins (SPEC.md section 14): a module that converts a payload
// between declared pairs of media types (content-type) or of content
// codings (content-encoding). Same module rules as a handler; told apart
// by its exports (KindOf).

const (
	// ExportCodecPairs: () -> i32. Called once per loaded version, on one
	// instance, before the plugin serves: the plugin sets its pairs text
	// (ParseCodecPairs) with ImportReply and returns StatusOK.
	ExportCodecPairs = "pycomms_codec_pairs"
	// ExportCodecConvert: (ptr, from_len, to_len, data_len i32) -> i32.
	// Converts one payload laid out at ptr as from, to, data (from and to
	// are the pair's names); the output is set with ImportReply. Returns
	// StatusOK, StatusInvalid for input that is not valid from data (the
	// reply text is the error), or another status that fails the
	// conversion.
	ExportCodecConvert = "pycomms_codec_convert"
)

// PluginCodec is the kind of a codec plugin.
const PluginCodec PluginKind = "codec"

// Limits of a codec's pairs text.
const (
	// MaxCodecPairs is the most pairs one codec declares.
	MaxCodecPairs = 64
	// MaxCodecPairsText is the largest pairs text, in bytes.
	MaxCodecPairsText = 4 << 10
)

// CodecMayImport lists the imports a codec plugin may use; every other
// import is refused at load: a codec converts bytes, it does not message.
func CodecMayImport() []string {
	return []string{ImportReply, ImportLog, ImportConfig, ImportConfigGet}
}

// CodecPairKind says what a codec pair converts.
type CodecPairKind string

// Codec pair kinds: the first word of a pairs line.
const (
	CodecType     CodecPairKind = "type"     // media types (content-type)
	CodecEncoding CodecPairKind = "encoding" // content codings (content-encoding)
)

// Identity is the content coding "no encoding".
const Identity = "identity"

// CodecPair is one conversion a codec declares.
type CodecPair struct {
	Kind     CodecPairKind
	From, To string
}

func (p CodecPair) String() string { return string(p.Kind) + " " + p.From + " " + p.To }

// ParseCodecPairs parses the pairs text of a codec (SPEC.md section 14.2)
// strictly: every problem is an error naming its line (1-based).
func ParseCodecPairs(text []byte) ([]CodecPair, error) {
	if len(text) > MaxCodecPairsText {
		return nil, fmt.Errorf("pairs text is %d bytes, more than %d", len(text), MaxCodecPairsText)
	}
	s := string(text)
	if s == "" {
		return nil, fmt.Errorf("pairs text is empty: a codec declares at least one pair")
	}
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > MaxCodecPairs {
		return nil, fmt.Errorf("%d pairs, more than %d", len(lines), MaxCodecPairs)
	}
	out := make([]CodecPair, 0, len(lines))
	seen := map[CodecPair]int{}
	for i, line := range lines {
		n := i + 1
		f := strings.Split(line, " ")
		if line == "" {
			return nil, fmt.Errorf("line %d is empty", n)
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d %q: want 3 fields separated by single spaces (kind from to), got %d", n, line, len(f))
		}
		p := CodecPair{Kind: CodecPairKind(f[0]), From: f[1], To: f[2]}
		switch p.Kind {
		case CodecType:
			for _, t := range []string{p.From, p.To} {
				if err := CheckMediaType(t); err != nil {
					return nil, fmt.Errorf("line %d %q: %w", n, line, err)
				}
			}
		case CodecEncoding:
			for _, t := range []string{p.From, p.To} {
				if !isToken(t) {
					return nil, fmt.Errorf("line %d %q: %q is not a lower-case content-coding token", n, line, t)
				}
			}
			if (p.From == Identity) == (p.To == Identity) {
				return nil, fmt.Errorf("line %d %q: exactly one of from and to must be %q (a codec encodes or decodes one coding)", n, line, Identity)
			}
		default:
			return nil, fmt.Errorf("line %d %q: unknown kind %q (want %q or %q)", n, line, f[0], CodecType, CodecEncoding)
		}
		if p.From == p.To {
			return nil, fmt.Errorf("line %d %q: from and to are the same", n, line)
		}
		if prev, dup := seen[p]; dup {
			return nil, fmt.Errorf("line %d %q: duplicate of line %d", n, line, prev)
		}
		seen[p] = n
		out = append(out, p)
	}
	return out, nil
}

// CheckMediaType accepts a media type as pairs and the accepts key spell
// it: lower-case type/subtype, no parameters, no wildcards.
func CheckMediaType(t string) error {
	typ, sub, ok := strings.Cut(t, "/")
	if !ok || !isToken(typ) || !isToken(sub) {
		return fmt.Errorf("%q is not a media type: want lower-case type/subtype without parameters or wildcards", t)
	}
	return nil
}

// isToken reports whether s is a non-empty lower-case RFC 9110 token
// without '*' (wildcards are no type).
func isToken(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
