package httpapi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A body's read deadline is the allowance plus its declared length at minBodyRate, bounded by the
// largest accepted body; a body that declares no length (chunked) gets the largest one's.
func TestBodyTimeout(t *testing.T) {
	const maxBody = 6<<20 + 4096 // the default MAX_CONTENT_BYTES' largest body
	tests := []struct {
		name     string
		declared int64
		want     time.Duration
	}{
		{"no body", 0, bodyAllowance},
		{"stalled 100-byte body", 100, bodyAllowance + 100*time.Second/minBodyRate}, // 10.0004 s
		{"1 MiB", 1 << 20, bodyAllowance + 4*time.Second},
		{"the largest body", maxBody, bodyAllowance + maxBody*time.Second/minBodyRate},
		{"over the largest: bounded by it", 1 << 40, bodyAllowance + maxBody*time.Second/minBodyRate},
		{"chunked: the largest body's, as before", -1, bodyAllowance + maxBody*time.Second/minBodyRate}, // 34.0156 s
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, bodyTimeout(bodyAllowance, tc.declared, maxBody))
		})
	}
	require.Less(t, bodyTimeout(bodyAllowance, 100, maxBody), 11*time.Second)
	require.Greater(t, bodyTimeout(bodyAllowance, -1, maxBody), 34*time.Second)
}
