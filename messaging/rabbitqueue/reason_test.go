package rabbitqueue_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want rabbitqueue.Reason
	}{
		{"not connected", fmt.Errorf("%w: not connected to amqp://guest@mq:5672/prod", rabbitqueue.ErrUnavailable), rabbitqueue.ReasonUnavailable},
		{"blocked", fmt.Errorf("publish: %w", rabbitqueue.ErrBlocked), rabbitqueue.ReasonBlocked},
		{"timeout", rabbitqueue.ErrTimeout, rabbitqueue.ReasonConfirmTimeout},
		{"nack", rabbitqueue.ErrNacked, rabbitqueue.ReasonNacked},
		{"returned", fmt.Errorf("%w (312 NO_ROUTE)", rabbitqueue.ErrReturned), rabbitqueue.ReasonUnroutable},
		{"confirm lost", rabbitqueue.ErrConfirmLost, rabbitqueue.ReasonConfirmLost},
		{"anything else", errors.New("surprise"), rabbitqueue.ReasonUnavailable},
		{"a bare context error", context.DeadlineExceeded, rabbitqueue.ReasonUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, rabbitqueue.Classify(tc.err))
		})
	}
}

// Reasons are metric label values and JSON words: short snake_case, distinct, each with a
// sentence of its own.
func TestReasonsAreLabelsWithSentences(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range rabbitqueue.Reasons {
		require.Regexp(t, `^[a-z]+(_[a-z]+)*$`, string(r))
		require.False(t, seen[r.Sentence()], "%s shares its sentence", r)
		seen[r.Sentence()] = true
		require.NotContains(t, r.Sentence(), "amqp")
	}
	require.Len(t, rabbitqueue.Reasons, 6)
}
