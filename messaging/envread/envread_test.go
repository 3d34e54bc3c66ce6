package envread_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/envread"
)

func TestScalars(t *testing.T) {
	r := envread.NewReader(envread.Map(map[string]string{"D": "1m30s", "N": "7", "BAD_D": "-1s", "BAD_N": "x"}))
	require.Equal(t, 90*time.Second, r.Duration("D", time.Second, 0))
	require.Equal(t, 20*time.Second, r.Duration("UNSET", 20*time.Second, 0))
	require.Equal(t, 7, r.Int("N", 1, 1, 10))
	require.NoError(t, r.Err())
	r.Duration("BAD_D", time.Second, 0)
	r.Int("BAD_N", 1, 1, 10)
	require.ErrorContains(t, r.Err(), `BAD_D="-1s" must be a Go duration`)
	require.ErrorContains(t, r.Err(), `BAD_N="x" must be an integer from 1 to 10`)
}
