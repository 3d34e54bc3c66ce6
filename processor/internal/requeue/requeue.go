// Package requeue is `processor requeue-dead`: it moves dead-lettered messages back to the work
// queue, after whatever made them fail has been fixed.
//
// Each message is republished with confirms before its dead-letter copy is acked, so an
// interruption can at worst leave a message in both queues — never in neither. The processor's
// upsert by message id makes such a duplicate harmless.
package requeue

import (
	"context"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

// Move moves up to limit messages (all when limit <= 0) from the dead-letter queue to the work
// queue and returns how many it moved. It stops early, between messages, when ctx ends.
func Move(ctx context.Context, conn *amqp.Connection, top contract.Topology, limit int) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	pub, err := rabbitqueue.NewConfirmChannel(conn)
	if err != nil {
		return 0, err
	}
	defer pub.Ch.Close()

	moved := 0
	for (limit <= 0 || moved < limit) && ctx.Err() == nil {
		d, ok, err := ch.Get(top.DeadLetterQueue(), false)
		if err != nil {
			return moved, fmt.Errorf("basic.get from %q: %w", top.DeadLetterQueue(), err)
		}
		if !ok {
			break
		}
		if err := pub.Publish(ctx, top.Queue, fresh(d)); err != nil {
			_ = d.Nack(false, true)
			return moved, fmt.Errorf("republish message %q: %w", d.MessageId, err)
		}
		if err := d.Ack(false); err != nil {
			return moved, fmt.Errorf("ack dead-lettered message %q: %w", d.MessageId, err)
		}
		moved++
	}
	return moved, nil
}

// fresh is the message as first published: a new attempt count, without dead-lettering history.
func fresh(d amqp.Delivery) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		if k == contract.HeaderAttempt || k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			continue
		}
		h[k] = v
	}
	return contract.Republishing(d, h)
}
