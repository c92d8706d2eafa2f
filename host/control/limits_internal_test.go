package control

import "testing"

// The default connection cap leaves three quarters of the open-file limit
// to the rest of the node, within a floor and a ceiling.
func TestDefaultMaxConns(t *testing.T) {
	for _, tt := range []struct {
		nofile uint64
		want   int64
	}{
		{0, DefaultMaxConns}, // unknown
		{1 << 20, DefaultMaxConns},
		{20000, DefaultMaxConns},
		{4096, DefaultMaxConns},
		{2048, 512},
		{256, 64},
		{40, minMaxConns},
	} {
		if got := defaultMaxConns(tt.nofile); got != tt.want {
			t.Errorf("defaultMaxConns(%d) = %d, want %d", tt.nofile, got, tt.want)
		}
	}
}

// A budget smaller than the largest body is raised to it, so that the
// largest body is too_large only above the limit and never busy when alone.
func TestBodyBudgetCoversLargestBody(t *testing.T) {
	s := NewServer(nil, VersionInfo{}, nil, WithMaxBody(1<<20), WithBodyBudget(1024))
	if s.bodyBudget.size < 1<<20 {
		t.Errorf("budget %d below the largest body %d", s.bodyBudget.size, 1<<20)
	}
}
