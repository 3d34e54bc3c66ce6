package queuedepth

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP reads the depths with passive queue declarations on a connection of its own, so a page
// that is watched never competes with POST /send for the publisher's channels.
type AMQP struct {
	// Dial opens a connection (rabbitqueue.Dial with the app's broker settings).
	Dial                   func() (*amqp.Connection, error)
	Queue, DeadLetterQueue string

	mu   sync.Mutex
	conn *amqp.Connection
	ch   *amqp.Channel
}

// Depths implements Reader. The AMQP calls have no context of their own: ctx is honoured by
// closing the connection when it ends first, which unblocks them.
func (a *AMQP) Depths(ctx context.Context) (int, int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.open(); err != nil {
		return 0, 0, err
	}
	conn := a.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	counts := make([]int, 2)
	for i, name := range []string{a.Queue, a.DeadLetterQueue} {
		q, err := a.ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			a.reset() // a failed passive declare closes the channel
			return 0, 0, fmt.Errorf("read depth of queue %q: %w", name, err)
		}
		counts[i] = q.Messages
	}
	return counts[0], counts[1], nil
}

func (a *AMQP) open() error {
	if a.conn == nil || a.conn.IsClosed() {
		a.reset()
		conn, err := a.Dial()
		if err != nil {
			return err
		}
		a.conn = conn
	}
	if a.ch == nil || a.ch.IsClosed() {
		ch, err := a.conn.Channel()
		if err != nil {
			a.reset()
			return fmt.Errorf("open channel for queue depths: %w", err)
		}
		a.ch = ch
	}
	return nil
}

func (a *AMQP) reset() {
	if a.ch != nil {
		_ = a.ch.Close()
	}
	a.ch = nil
	if a.conn != nil && a.conn.IsClosed() { // a closed channel alone keeps the connection
		a.conn = nil
	}
}

// Close closes the connection.
func (a *AMQP) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch != nil {
		_ = a.ch.Close()
	}
	if a.conn != nil {
		return a.conn.Close()
	}
	return nil
}
