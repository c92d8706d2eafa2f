//go:build wasip1

// Command gzip is the gzip content-coding codec (builtin:gzip): pairs
// "encoding identity gzip" and "encoding gzip identity", with compress/gzip
// from the standard library. Decoding stops at max_output bytes of output
// (plugin config, default 1 MiB) with too_large, so a small bomb cannot
// fill the instance's memory; corrupt input is invalid. See README.md.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pycomms/pycomms-host/sdk/go/codec"
)

// defaultMaxOutput is the default of max_output: the host's default
// limits.max_reply, since more could not be replied anyway.
const defaultMaxOutput = 1 << 20

// maxOutput is read from the plugin config once, on the first conversion.
var maxOutput int64 = -1

func limit() (int64, error) {
	if maxOutput >= 0 {
		return maxOutput, nil
	}
	maxOutput = defaultMaxOutput
	if s, ok := codec.ConfigString("max_output"); ok {
		n, err := parseSize(s)
		if err != nil {
			maxOutput = -1
			return 0, fmt.Errorf("gzip: config max_output: %w", err)
		}
		maxOutput = n
	}
	return maxOutput, nil
}

// parseSize reads a byte count as the host's size keys are written: a
// number, optionally followed by KiB, MiB or GiB.
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("%q is not a size between 1 byte and 2GiB (a number, optionally with KiB, MiB or GiB)", s)
	}
	return n * mult, nil
}

func convert(from, to string, data []byte) ([]byte, error) {
	switch {
	case from == "identity" && to == "gzip":
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		if _, err := w.Write(data); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return b.Bytes(), nil
	case from == "gzip" && to == "identity":
		return gunzip(data)
	}
	return nil, fmt.Errorf("gzip: no conversion %s -> %s", from, to)
}

// gunzip decodes data (one or more concatenated gzip members), reading at
// most max+1 bytes so that a bomb stops as soon as it passes max.
func gunzip(data []byte) ([]byte, error) {
	max, err := limit()
	if err != nil {
		return nil, err
	}
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, codec.Invalid("gzip: not gzip data: " + err.Error())
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(r, max+1))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, codec.Invalid(fmt.Sprintf("gzip: truncated after %d bytes of output", n))
		}
		return nil, codec.Invalid(fmt.Sprintf("gzip: corrupt after %d bytes of output: %v", n, err))
	}
	if n > max {
		return nil, codec.TooLarge(fmt.Sprintf("gzip: decoded output exceeds max_output (%d bytes)", max))
	}
	return out.Bytes(), nil
}

func init() {
	codec.Register([]codec.Pair{
		{Kind: codec.Encoding, From: "identity", To: "gzip"},
		{Kind: codec.Encoding, From: "gzip", To: "identity"},
	}, convert)
}

func main() {}
