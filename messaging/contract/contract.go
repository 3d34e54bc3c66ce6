// Package contract is the one definition of what travels between the app and the processor:
// the message body, its AMQP properties and headers, and the queue topology with its arguments.
//
// Queue arguments live here, in code, and never in configuration: RabbitMQ makes them immutable,
// so a changed argument makes every later declaration fail with PRECONDITION_FAILED.
package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultQueue is the work queue used when QUEUE_NAME is not set.
const DefaultQueue = "keda-demo"

// MaxNameBytes is the largest accepted record name.
const MaxNameBytes = 256

// ContentType of every message body.
const ContentType = "application/json"

// Header names carried by every message besides the body.
const (
	// HeaderCreatedAt holds when the app accepted the message, as Unix milliseconds (int64).
	// The AMQP timestamp property has only one-second resolution, too coarse to order records.
	HeaderCreatedAt = "x-created-at-ms"
	// HeaderAttempt counts store attempts. The processor republishes a message whose store write
	// failed with this header incremented, because classic queues keep no delivery count and quorum
	// queues count differently across RabbitMQ versions.
	HeaderAttempt = "x-attempt"
)

// Message is the JSON body published by the app and consumed by the processor.
type Message struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// FieldError names the field that failed validation. Err, when set, is the cause a caller may
// test with errors.Is (ErrTooLarge); Reason is the text for people.
type FieldError struct {
	Field  string
	Reason string
	Err    error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns the cause, so errors.Is(err, ErrTooLarge) sees through the FieldError.
func (e *FieldError) Unwrap() error { return e.Err }

// ErrTooLarge is wrapped by the FieldError for a field or body above its size limit.
var ErrTooLarge = errors.New("too large")

// Validate checks the fields of a message. maxContent <= 0 disables the content size check.
func (m Message) Validate(maxContent int) error {
	if err := checkText("name", m.Name, MaxNameBytes); err != nil {
		return err
	}
	return checkText("content", m.Content, maxContent)
}

func checkText(field, v string, max int) error {
	switch {
	case v == "":
		return &FieldError{Field: field, Reason: "required and must not be empty"}
	case !utf8.ValidString(v):
		return &FieldError{Field: field, Reason: "must be valid UTF-8"}
	case max > 0 && len(v) > max:
		return &FieldError{Field: field, Reason: fmt.Sprintf("%v: %d bytes, at most %d", ErrTooLarge, len(v), max), Err: ErrTooLarge}
	}
	return nil
}

// Decode parses and validates a message body strictly: unknown fields and trailing data are errors.
func Decode(body []byte) (Message, error) {
	var m Message
	if !utf8.Valid(body) {
		return m, &FieldError{Field: "body", Reason: "must be valid UTF-8"}
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, &FieldError{Field: "body", Reason: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return m, &FieldError{Field: "body", Reason: "unexpected data after the JSON object"}
	}
	return m, m.Validate(0)
}

// Publishing builds the persistent AMQP message for m.
func Publishing(id string, m Message, createdAt time.Time) (amqp.Publishing, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("encode message: %w", err)
	}
	return amqp.Publishing{
		ContentType:  ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Timestamp:    createdAt,
		Headers:      amqp.Table{HeaderCreatedAt: createdAt.UnixMilli()},
		Body:         body,
	}, nil
}

// Republishing is delivery d published again, as it was (persistent, same id, timestamp and body),
// with the given headers: how a retry and a move out of the dead-letter queue resend a message.
func Republishing(d amqp.Delivery, headers amqp.Table) amqp.Publishing {
	return amqp.Publishing{
		Headers: headers, ContentType: d.ContentType, DeliveryMode: amqp.Persistent,
		MessageId: d.MessageId, Timestamp: d.Timestamp, Body: d.Body,
	}
}

// CreatedAt reads the creation time of a delivery, falling back to its AMQP timestamp.
func CreatedAt(headers amqp.Table, fallback time.Time) time.Time {
	if ms, ok := intHeader(headers, HeaderCreatedAt); ok {
		return time.UnixMilli(ms).UTC()
	}
	return fallback.UTC()
}

// Attempt returns the store attempt a delivery is on: 1 for a message never retried.
func Attempt(headers amqp.Table) int {
	if n, ok := intHeader(headers, HeaderAttempt); ok && n >= 1 {
		return int(n)
	}
	return 1
}

func intHeader(headers amqp.Table, key string) (int64, bool) {
	switch v := headers[key].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int:
		return int64(v), true
	}
	return 0, false
}

// Topology is the work queue and its dead-letter queue.
type Topology struct {
	Queue string
}

// DeadLetterQueue receives poison messages and messages out of attempts.
func (t Topology) DeadLetterQueue() string { return t.Queue + ".dead-letter" }

// QueueArgs are the work queue's arguments. A quorum queue is replicated and durable on every
// RabbitMQ from 3.8 on; rejected messages go through the default exchange to the dead-letter queue.
func (t Topology) QueueArgs() amqp.Table {
	return amqp.Table{
		"x-queue-type":              "quorum",
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": t.DeadLetterQueue(),
	}
}

// DeadLetterArgs are the dead-letter queue's arguments.
func (t Topology) DeadLetterArgs() amqp.Table {
	return amqp.Table{"x-queue-type": "quorum"}
}
