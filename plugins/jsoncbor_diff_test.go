package plugins

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Differential check of the json-cbor conversions (compiled natively)
// against Go's encoding/json and fxamacker/cbor on random values: every
// value the generator makes is convertible, so each conversion must
// succeed, give data the Go libraries read back, and keep the value as
// plugins/jsoncbor/README.md says (integers exact, floats bit for bit, byte
// strings as base64url, integer keys as their decimal text, tags dropped,
// bignums as decimal numbers).
//
// JC_SEED=N replays a run; the seed is logged.

const jcDiffCases = 1500

func jcSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JC_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JC_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with JC_SEED=%d)", seed, seed)
	return seed
}

// expInt and expFloat are the numbers of an expected value: an integer
// must come out exactly, a float as the same float64.
type (
	expInt   struct{ v *big.Int }
	expFloat struct{ v float64 }
)

type jcGen struct {
	r    *rand.Rand
	cbor bool // generate CBOR-only values too (byte strings, tags, int keys, bignums, NaN)
}

func (g *jcGen) str() string {
	var b strings.Builder
	for n := g.r.IntN(12); n > 0; n-- {
		switch g.r.IntN(6) {
		case 0:
			b.WriteRune(rune(g.r.IntN(0x20))) // control characters
		case 1:
			b.WriteByte("\"\\/<>&\x7f"[g.r.IntN(7)])
		case 2:
			b.WriteRune(rune(0x80 + g.r.IntN(0x780)))
		case 3:
			r := rune(0x800 + g.r.IntN(0xf800))
			if r >= 0xd800 && r <= 0xdfff {
				r = 0x2028
			}
			b.WriteRune(r)
		case 4:
			b.WriteRune(rune(0x10000 + g.r.IntN(0x100000)))
		default:
			b.WriteByte(byte('a' + g.r.IntN(26)))
		}
	}
	return b.String()
}

func (g *jcGen) float() float64 {
	switch g.r.IntN(8) {
	case 0:
		for {
			f := math.Float64frombits(g.r.Uint64())
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	case 1:
		return float64(g.r.IntN(2000)-1000) / 8 // exact in float16
	case 2:
		return float64(float32(g.r.NormFloat64())) // exact in float32
	case 3:
		return math.Copysign(0, -1)
	case 4:
		return math.Ldexp(g.r.Float64(), -1060+g.r.IntN(60)) // subnormal
	case 5:
		return float64(g.r.IntN(1 << 20)) // integral
	default:
		return g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(40)-20))
	}
}

// value returns a random value (to encode with Go) and what the converted
// data must hold (maps as map[string]any, numbers as expInt or expFloat).
func (g *jcGen) value(depth int) (any, any) {
	k := g.r.IntN(14)
	if depth > 5 && k >= 10 {
		k = g.r.IntN(10)
	}
	switch k {
	case 0:
		return nil, nil
	case 1:
		b := g.r.IntN(2) == 0
		return b, b
	case 2:
		v := g.r.Int64() >> g.r.IntN(64)
		if g.r.IntN(2) == 0 {
			v = -v - 1
		}
		return v, expInt{big.NewInt(v)}
	case 3:
		v := g.r.Uint64()
		return v, expInt{new(big.Int).SetUint64(v)}
	case 4:
		f := g.float()
		return f, expFloat{f}
	case 5:
		s := g.str()
		return s, s
	case 6:
		if g.cbor {
			b := make([]byte, g.r.IntN(10))
			for i := range b {
				b[i] = byte(g.r.Uint32())
			}
			return b, base64.RawURLEncoding.EncodeToString(b)
		}
		s := g.str()
		return s, s
	case 7:
		if g.cbor {
			// beyond the 64-bit range: fxamacker writes a bignum (tag 2 or 3)
			v := new(big.Int).Lsh(big.NewInt(g.r.Int64N(1<<40)+1), uint(64+g.r.IntN(300)))
			if g.r.IntN(2) == 0 {
				v.Neg(v)
			}
			return v, expInt{v}
		}
		return nil, nil
	case 8:
		if g.cbor {
			in, want := g.value(depth + 1)
			return cbor.Tag{Number: 1000 + g.r.Uint64N(1<<40), Content: in}, want
		}
		return true, true
	case 9:
		if g.cbor {
			switch g.r.IntN(3) {
			case 0:
				return math.NaN(), nil
			case 1:
				return math.Inf(1), nil
			}
			return math.Inf(-1), nil
		}
		return false, false
	case 10, 11:
		n := g.r.IntN(5)
		in, want := make([]any, n), make([]any, n)
		for i := range in {
			in[i], want[i] = g.value(depth + 1)
		}
		return in, want
	default:
		n := g.r.IntN(5)
		in, want := map[any]any{}, map[string]any{}
		for len(want) < n {
			var key any
			var wkey string
			if g.cbor && g.r.IntN(3) == 0 {
				i := g.r.Int64() >> g.r.IntN(64)
				key, wkey = i, strconv.FormatInt(i, 10)
			} else {
				s := "k" + g.str() // never the text of an integer key
				key, wkey = s, s
			}
			if _, dup := want[wkey]; dup {
				continue
			}
			in[key], want[wkey] = g.value(depth + 1)
		}
		if !g.cbor {
			m := map[string]any{}
			for k, v := range in {
				m[k.(string)] = v
			}
			return m, want
		}
		return in, want
	}
}

// jcMatch compares a decoded value (got) with an expected one.
func jcMatch(path string, got, want any) error {
	switch w := want.(type) {
	case expInt:
		var g *big.Int
		switch x := got.(type) {
		case json.Number:
			if strings.ContainsAny(string(x), ".eE") {
				return fmt.Errorf("%s: got %s, want the integer %s", path, x, w.v)
			}
			g, _ = new(big.Int).SetString(string(x), 10)
		case uint64:
			g = new(big.Int).SetUint64(x)
		case int64:
			g = big.NewInt(x)
		case big.Int:
			g = &x
		}
		if g == nil || g.Cmp(w.v) != 0 {
			return fmt.Errorf("%s: got %v (%T), want the integer %s", path, got, got, w.v)
		}
	case expFloat:
		var g float64
		switch x := got.(type) {
		case json.Number:
			f, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				return fmt.Errorf("%s: got %s: %v", path, x, err)
			}
			g = f
		case float64:
			g = x
		default:
			return fmt.Errorf("%s: got %v (%T), want the float %v", path, got, got, w.v)
		}
		if math.Float64bits(g) != math.Float64bits(w.v) {
			return fmt.Errorf("%s: got %v, want the float %v (%x)", path, g, w.v, math.Float64bits(w.v))
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: got %v, want an array of %d", path, got, len(w))
		}
		for i := range w {
			if err := jcMatch(fmt.Sprintf("%s[%d]", path, i), g[i], w[i]); err != nil {
				return err
			}
		}
	case map[string]any:
		g := map[string]any{}
		switch x := got.(type) {
		case map[string]any:
			g = x
		case map[any]any:
			for k, v := range x {
				ks, ok := k.(string)
				if !ok {
					return fmt.Errorf("%s: key %v (%T) is not text", path, k, k)
				}
				g[ks] = v
			}
		default:
			return fmt.Errorf("%s: got %v (%T), want a map", path, got, got)
		}
		if len(g) != len(w) {
			return fmt.Errorf("%s: got %d members, want %d", path, len(g), len(w))
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s: no member %q", path, k)
			}
			if err := jcMatch(path+"."+strconv.Quote(k), gv, wv); err != nil {
				return err
			}
		}
	default:
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s: got %#v, want %#v", path, got, want)
		}
	}
	return nil
}

// jcExpectFromJSON is what JSON text b must become in CBOR, as read by
// encoding/json: a number written as an integer in the int64 or uint64
// range is an integer, any other a float64.
func jcExpectFromJSON(t *testing.T, b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot read back %s: %v", b, err)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case json.Number:
			if i, ok := new(big.Int).SetString(string(x), 10); ok && i.Cmp(big.NewInt(math.MinInt64)) >= 0 && i.Cmp(new(big.Int).SetUint64(math.MaxUint64)) <= 0 {
				return expInt{i}
			}
			f, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				t.Fatalf("%s: %v", x, err)
			}
			return expFloat{f}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = walk(x[k])
			}
		}
		return v
	}
	return walk(v)
}

func TestJSONCBORDifferential(t *testing.T) {
	run := jcDriver(t)
	r := rand.New(rand.NewPCG(jcSeed(t), 1))
	dec, err := cbor.DecOptions{DefaultMapType: reflect.TypeOf(map[any]any(nil))}.DecMode()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := cbor.EncOptions{ShortestFloat: cbor.ShortestFloat16, NaNConvert: cbor.NaNConvertNone, InfConvert: cbor.InfConvertNone}.EncMode()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("json to cbor", func(t *testing.T) {
		g := &jcGen{r: r}
		var dirs []string
		var ins [][]byte
		var wants []any
		for range jcDiffCases {
			v, _ := g.value(0)
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			dirs, ins, wants = append(dirs, "j"), append(ins, b), append(wants, jcExpectFromJSON(t, b))
		}
		for i, got := range run(dirs, ins) {
			out, ok := strings.CutPrefix(got, "= ")
			if !ok {
				t.Errorf("%s: %s", ins[i], got)
				continue
			}
			b, _ := hex.DecodeString(out)
			if err := cbor.Wellformed(b); err != nil {
				t.Errorf("%s: output %x is not well-formed CBOR: %v", ins[i], b, err)
				continue
			}
			var v any
			if err := dec.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: output %x: fxamacker/cbor: %v", ins[i], b, err)
				continue
			}
			if err := jcMatch("$", v, wants[i]); err != nil {
				t.Errorf("%s -> %x: %v", ins[i], b, err)
			}
		}
	})

	t.Run("cbor to json", func(t *testing.T) {
		g := &jcGen{r: r, cbor: true}
		var dirs []string
		var ins [][]byte
		var wants []any
		for range jcDiffCases {
			v, want := g.value(0)
			b, err := enc.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			dirs, ins, wants = append(dirs, "c"), append(ins, b), append(wants, want)
		}
		for i, got := range run(dirs, ins) {
			out, ok := strings.CutPrefix(got, "= ")
			if !ok {
				t.Errorf("%x: %s", ins[i], got)
				continue
			}
			if !json.Valid([]byte(out)) {
				t.Errorf("%x: output %q is not valid JSON", ins[i], out)
				continue
			}
			d := json.NewDecoder(bytes.NewReader([]byte(out)))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				t.Errorf("%x: output %q: %v", ins[i], out, err)
				continue
			}
			if err := jcMatch("$", v, wants[i]); err != nil {
				t.Errorf("%x -> %s: %v", ins[i], out, err)
			}
		}
	})
}
