package contract_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantErr  string
		tooLarge bool
	}{
		{"valid", `{"name":"record1","content":"content1"}`, "", false},
		{"not JSON", `hello`, "body: invalid JSON", false},
		{"missing content", `{"name":"a"}`, "content: required", false},
		{"empty name", `{"name":"","content":"x"}`, "name: required", false},
		{"unknown field", `{"name":"a","content":"b","x":1}`, "unknown field", false},
		{"trailing data", `{"name":"a","content":"b"}{}`, "unexpected data", false},
		{"invalid UTF-8", "{\"name\":\"\xff\",\"content\":\"b\"}", "body: must be valid UTF-8", false},
		{"name too long", `{"name":"` + strings.Repeat("n", 257) + `","content":"b"}`, "name: too large: 257 bytes, at most 256", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := contract.Decode([]byte(tc.body))
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			// Callers tell "too large" (413) from the rest (400) by the cause, not by the text.
			require.Equal(t, tc.tooLarge, errors.Is(err, contract.ErrTooLarge))
			var fe *contract.FieldError
			require.ErrorAs(t, err, &fe)
		})
	}
}

func TestPublishingRoundTrip(t *testing.T) {
	at := time.UnixMilli(1764180000123)
	p, err := contract.Publishing("id-1", contract.Message{Name: "n", Content: "c"}, at)
	require.NoError(t, err)
	require.Equal(t, amqp.Persistent, p.DeliveryMode)
	require.Equal(t, contract.ContentType, p.ContentType)
	require.Equal(t, "id-1", p.MessageId)
	require.JSONEq(t, `{"name":"n","content":"c"}`, string(p.Body))
	require.Equal(t, at.UTC(), contract.CreatedAt(p.Headers, time.Time{}))
	require.Equal(t, 1, contract.Attempt(p.Headers))
	require.Equal(t, 3, contract.Attempt(amqp.Table{contract.HeaderAttempt: int32(3)}))
}

func TestTopology(t *testing.T) {
	top := contract.Topology{Queue: "jobs"}
	require.Equal(t, "jobs.dead-letter", top.DeadLetterQueue())
	require.Equal(t, "jobs.dead-letter", top.QueueArgs()["x-dead-letter-routing-key"])
	require.Equal(t, "quorum", top.QueueArgs()["x-queue-type"])
}

func TestValidateContentLimitWrapsErrTooLarge(t *testing.T) {
	err := contract.Message{Name: "n", Content: "12345"}.Validate(4)
	require.ErrorIs(t, err, contract.ErrTooLarge)
	require.EqualError(t, err, "content: too large: 5 bytes, at most 4")
	require.NoError(t, contract.Message{Name: "n", Content: "1234"}.Validate(4))
	require.NoError(t, contract.Message{Name: "n", Content: "12345"}.Validate(0))
}
