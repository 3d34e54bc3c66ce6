package testkit

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProcessCPUCountsThisProcessWork(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	require.NoError(t, err)
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := ProcessCPU(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, after-before, 100*time.Millisecond, "200 ms of spinning shows as CPU time")

	_, err = ProcessCPU(1 << 30)
	require.Error(t, err, "a process that does not exist")
}
