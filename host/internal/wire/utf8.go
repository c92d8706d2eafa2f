package wire

import (
	"encoding/binary"
	"unicode/utf8"
)

// Almost every string on the wire is ASCII: node ids, subjects, header
// names. Checking eight bytes at a time and leaving only what follows the
// first non-ASCII byte to package utf8 roughly halves the cost of the check
// for the short strings an envelope carries.

const highBits = 0x8080808080808080

func validUTF8(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&highBits != 0 {
			return utf8.Valid(b[i:])
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return utf8.Valid(b[i:])
		}
	}
	return true
}

func validString(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		// The conversion of eight bytes does not allocate: the compiler
		// turns it into a load.
		if binary.LittleEndian.Uint64([]byte(s[i:i+8]))&highBits != 0 {
			return utf8.ValidString(s[i:])
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.ValidString(s[i:])
		}
	}
	return true
}
