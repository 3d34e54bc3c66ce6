package queue_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/queue"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want queue.Reason
	}{
		{"not connected", fmt.Errorf("%w: not connected to amqp://guest@mq:5672/prod", queue.ErrUnavailable), queue.ReasonUnavailable},
		{"blocked", fmt.Errorf("publish: %w", queue.ErrBlocked), queue.ReasonBlocked},
		{"timeout", queue.ErrTimeout, queue.ReasonConfirmTimeout},
		{"nack", queue.ErrNacked, queue.ReasonNacked},
		{"returned", fmt.Errorf("%w (312 NO_ROUTE)", queue.ErrReturned), queue.ReasonUnroutable},
		{"confirm lost", queue.ErrConfirmLost, queue.ReasonConfirmLost},
		{"anything else", errors.New("surprise"), queue.ReasonUnavailable},
		{"a bare context error", context.DeadlineExceeded, queue.ReasonUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, queue.Classify(tc.err))
		})
	}
}

// Reasons are metric label values and JSON words: short snake_case, distinct, each with a
// sentence of its own.
func TestReasonsAreLabelsWithSentences(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range queue.Reasons {
		require.Regexp(t, `^[a-z]+(_[a-z]+)*$`, string(r))
		require.False(t, seen[r.Sentence()], "%s shares its sentence", r)
		seen[r.Sentence()] = true
		require.NotContains(t, r.Sentence(), "amqp")
	}
	require.Len(t, queue.Reasons, 6)
}
