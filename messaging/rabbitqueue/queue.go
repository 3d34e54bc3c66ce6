// Package rabbitqueue is the one place that talks AMQP: dialling, declaring the topology and publishing
// with publisher confirms. The app publishes through a Publisher; the processor and its
// requeue-dead command use Dial and PublishConfirmed directly.
package rabbitqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keda-demo/keda-demo/messaging/contract"
)

// Errors callers tell apart (Classify maps them to a Reason). Each means the broker did not take
// the message, or, for ErrTimeout and ErrConfirmLost, that nobody knows whether it did.
var (
	ErrUnavailable = errors.New("broker unavailable")
	ErrBlocked     = errors.New("broker blocks publishers (resource alarm)")
	ErrNacked      = errors.New("broker refused the message (nack)")
	ErrReturned    = errors.New("broker returned the message as unroutable: the queue does not exist")
	ErrTimeout     = errors.New("timed out waiting for the broker's confirm")
	ErrConfirmLost = errors.New("channel closed before the broker's confirm")
)

// Dial connects to the broker, over TLS when the configuration asks for it.
func Dial(b Broker, name string) (*amqp.Connection, error) {
	cfg := amqp.Config{
		Heartbeat:       10 * time.Second,
		Locale:          "en_US",
		TLSClientConfig: b.TLS,
		Properties:      amqp.Table{"connection_name": name},
		Dial:            amqp.DefaultDial(5 * time.Second),
	}
	conn, err := amqp.DialConfig(b.URL, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnavailable, b.Redacted(), err)
	}
	return conn, nil
}

// Declare declares the work queue and its dead-letter queue. It is idempotent: redeclaring with the
// same arguments is a no-op on the broker.
func Declare(ch *amqp.Channel, t contract.Topology) error {
	if _, err := ch.QueueDeclare(t.DeadLetterQueue(), true, false, false, false, t.DeadLetterArgs()); err != nil {
		return fmt.Errorf("declare dead-letter queue %q: %w", t.DeadLetterQueue(), err)
	}
	if _, err := ch.QueueDeclare(t.Queue, true, false, false, false, t.QueueArgs()); err != nil {
		return fmt.Errorf("declare queue %q: %w", t.Queue, err)
	}
	return nil
}

// ConfirmChannel is a channel in confirm mode with its return listener. It carries one publish at
// a time: the broker sends basic.return before the basic.ack of the same message, and the library
// delivers both in that order from one goroutine, so after the ack a buffered return is already
// there to be seen. The processor publishes this way; the app's Publisher keeps many in flight on
// a pipeline instead.
type ConfirmChannel struct {
	Ch      *amqp.Channel
	returns chan amqp.Return
}

// NewConfirmChannel opens a channel on conn and puts it in confirm mode.
func NewConfirmChannel(conn *amqp.Connection) (*ConfirmChannel, error) {
	ch, err := openConfirmMode(conn)
	if err != nil {
		return nil, err
	}
	return &ConfirmChannel{Ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1))}, nil
}

func openConfirmMode(conn *amqp.Connection) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: open channel: %w", ErrUnavailable, err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("%w: confirm mode: %w", ErrUnavailable, err)
	}
	return ch, nil
}

// Publish sends msg to queue with mandatory set and waits for the broker's confirm. It returns nil
// only when the broker acked the message and did not return it as unroutable.
func (c *ConfirmChannel) Publish(ctx context.Context, queue string, msg amqp.Publishing) error {
	dc, err := c.Ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		return fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
	}
	acked, err := dc.WaitContext(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return ErrTimeout
	case err != nil:
		return fmt.Errorf("%w: confirm: %w", ErrUnavailable, err)
	case !acked && c.Ch.IsClosed():
		// amqp091-go settles every outstanding confirmation as a nack when the channel shuts down
		// (it marks the channel closed first), so a closed channel means the confirm was lost, not
		// refused: the broker may have queued the message.
		return ErrConfirmLost
	case !acked:
		return ErrNacked
	}
	select {
	case r := <-c.returns:
		return fmt.Errorf("%w (%d %s)", ErrReturned, r.ReplyCode, r.ReplyText)
	default:
		return nil
	}
}

// PublishConfirmed opens a confirm channel on conn, publishes one message and closes the channel.
func PublishConfirmed(ctx context.Context, conn *amqp.Connection, queue string, msg amqp.Publishing) error {
	c, err := NewConfirmChannel(conn)
	if err != nil {
		return err
	}
	defer c.Ch.Close()
	return c.Publish(ctx, queue, msg)
}
