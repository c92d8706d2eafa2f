package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string // substring of the error; "" means success
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"1B", 1, ""},
		{"1KB", 1000, ""},
		{"1MB", 1000_000, ""},
		{"1GB", 1000_000_000, ""},
		{"1TB", 1000_000_000_000, ""},
		{"1KiB", 1 << 10, ""},
		{"16MiB", 16 << 20, ""},
		{"4GiB", 4 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"1.5GiB", 3 << 29, ""},
		{"0.5KiB", 512, ""},
		{"16 MiB", 16 << 20, ""},
		{"18446744073709551615", math.MaxUint64, ""},
		{"16777216TiB", 0, "does not fit in 64 bits"},
		{"18446744073709551616", 0, "does not fit in 64 bits"},
		{"99999999999999999999999999B", 0, "does not fit in 64 bits"},
		{"-1", 0, "cannot be negative"},
		{"-16MiB", 0, "cannot be negative"},
		{"1.3B", 0, "not a whole number of bytes"},
		{"0.1KB", 100, ""},
		{"0.0001KB", 0, "not a whole number of bytes"},
		{"", 0, `"" is not a size (use e.g. 512KiB, 16MiB)`},
		{"MiB", 0, "is not a size"},
		{"16XB", 0, `"16XB" is not a size (use e.g. 512KiB, 16MiB)`},
		{"16mib", 0, "is not a size"}, // units are case-sensitive
		{"16kb", 0, "is not a size"},
		{"16Mb", 0, "is not a size"},
		{"1.", 0, "is not a size"},
		{"1.MiB", 0, "is not a size"},
		{".5MiB", 0, "is not a size"},
		{"+1MiB", 0, "is not a size"},
		{"1e3", 0, "is not a size"},
		{"1/2", 0, "is not a size"},
		{" 1MiB", 0, "is not a size"},
		{"1MiB ", 0, "is not a size"},
		{"1 2MiB", 0, "is not a size"},
		{"0x10", 0, "is not a size"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{999, "999B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1500, "1500B"},
		{64 << 10, "64KiB"},
		{16 << 20, "16MiB"},
		{1 << 20, "1MiB"},
		{4 << 30, "4GiB"},
		{2_000_000_000, "2GB"},
		{1536 << 20, "1536MiB"},
		{1024_000, "1024KB"},    // shorter than "1000KiB"
		{1000 << 20, "1000MiB"}, // not a whole number of MB or GB
		{1 << 40, "1TiB"},
		{1 << 50, "1024TiB"},
		{math.MaxUint64, "18446744073709551615B"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Millisecond, "1ms"},
		{1500 * time.Millisecond, "1.5s"},
		{5 * time.Second, "5s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{2*time.Hour + 5*time.Minute, "2h5m"},
		{0, "0s"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.in); got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := time.ParseDuration(formatDuration(tt.in)); err != nil || back != tt.in {
			t.Errorf("ParseDuration(formatDuration(%v)) = %v, %v", tt.in, back, err)
		}
	}
}

// FuzzParseSize checks that ParseSize never panics, and that whatever it
// accepts survives a round trip through FormatSize.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "16MiB", "1.5GiB", "16XB", "-1", "18446744073709551616", "1 KB", "0.5KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "not a size") {
				t.Fatalf("ParseSize(%q): error %q does not say it is not a size", s, err)
			}
			return
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	})
}

func TestFormatSizeRoundTrip(t *testing.T) {
	for _, n := range []uint64{0, 1, 1000, 1023, 1024, 1025, 1 << 20, 3 << 29, 2_000_000_000, math.MaxUint64, math.MaxUint64 - 1023} {
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, FormatSize(n), back, err)
		}
	}
}
