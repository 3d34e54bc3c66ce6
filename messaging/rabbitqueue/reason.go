package rabbitqueue

import "errors"

// Reason is why the broker did not take a message, in one short word: the value of the
// kedademo_publish_failures_total{reason} label and of the "reason" field of a 503 answer, so a
// client's error and the dashboard use the same words. Reasons never carry addresses or
// credentials; the error they classify (which may) belongs in the log.
type Reason string

// Every reason a publish can fail for.
const (
	// ReasonUnavailable: no connection or channel to the broker (down, unreachable, refused login).
	ReasonUnavailable Reason = "broker_unavailable"
	// ReasonBlocked: the broker blocks publishers (connection.blocked: memory or disk alarm).
	ReasonBlocked Reason = "broker_blocked"
	// ReasonConfirmTimeout: the publish timeout ended before the broker confirmed.
	ReasonConfirmTimeout Reason = "confirm_timeout"
	// ReasonNacked: the broker refused the message (basic.nack).
	ReasonNacked Reason = "nacked"
	// ReasonUnroutable: the broker returned the message: the queue does not exist.
	ReasonUnroutable Reason = "unroutable"
	// ReasonConfirmLost: the channel or connection closed before the confirm came.
	ReasonConfirmLost Reason = "confirm_lost"
)

// Reasons lists every Reason, e.g. to start each metric series at zero.
var Reasons = []Reason{ReasonUnavailable, ReasonBlocked, ReasonConfirmTimeout, ReasonNacked, ReasonUnroutable, ReasonConfirmLost}

var sentences = map[Reason]string{
	ReasonUnavailable:    "the message broker is unavailable",
	ReasonBlocked:        "the message broker is blocking publishers (it is low on memory or disk)",
	ReasonConfirmTimeout: "the message broker did not confirm the message in time; it may or may not be queued",
	ReasonNacked:         "the message broker refused the message",
	ReasonUnroutable:     "the message broker could not route the message: the work queue does not exist",
	ReasonConfirmLost:    "the connection to the message broker closed before it confirmed the message; it may or may not be queued",
}

// Sentence explains the reason to a client, without any address.
func (r Reason) Sentence() string {
	if s, ok := sentences[r]; ok {
		return s
	}
	return sentences[ReasonUnavailable]
}

// Classify returns the reason of an error from Publish. An error this package did not make
// counts as the broker being unavailable: whatever it was, the broker did not take the message.
func Classify(err error) Reason {
	switch {
	case errors.Is(err, ErrReturned):
		return ReasonUnroutable
	case errors.Is(err, ErrNacked):
		return ReasonNacked
	case errors.Is(err, ErrConfirmLost):
		return ReasonConfirmLost
	case errors.Is(err, ErrTimeout):
		return ReasonConfirmTimeout
	case errors.Is(err, ErrBlocked):
		return ReasonBlocked
	default:
		return ReasonUnavailable
	}
}
