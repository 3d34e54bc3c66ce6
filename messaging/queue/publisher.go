package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Publisher keeps one connection to the broker alive, redeclares the topology on every
// (re)connect, and publishes with confirms over a pool of channels. While the broker is down,
// Publish fails at once with ErrUnavailable instead of queueing callers.
type Publisher struct {
	broker Broker
	log    *slog.Logger
	// OnState is called with true after every successful connect and false after every loss.
	OnState func(up bool)

	mu       sync.Mutex
	conn     *amqp.Connection
	free     []*ConfirmChannel
	declared chan struct{} // closed after the topology was first declared
	once     sync.Once
}

// NewPublisher returns a Publisher; call Run to connect.
func NewPublisher(b Broker, log *slog.Logger) *Publisher {
	return &Publisher{broker: b, log: log, OnState: func(bool) {}, declared: make(chan struct{})}
}

// Declared is closed once the topology has been declared for the first time.
func (p *Publisher) Declared() <-chan struct{} { return p.declared }

// Run connects, declares the topology and reconnects after every loss, with capped backoff, until
// ctx ends. It then closes the connection.
func (p *Publisher) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		closed, err := p.connect()
		if err != nil {
			p.log.Warn("broker connect failed", "broker", p.broker.Redacted(), "error", err.Error(), "retry_in", backoff.String())
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		p.log.Info("broker connected", "broker", p.broker.Redacted(), "queue", p.broker.Topology.Queue)
		p.OnState(true)
		select {
		case <-ctx.Done():
		case err := <-closed:
			p.log.Warn("broker connection lost", "error", fmt.Sprint(err))
		}
		p.drop()
		p.OnState(false)
	}
}

func (p *Publisher) connect() (chan *amqp.Error, error) {
	conn, err := Dial(p.broker, "keda-demo-app")
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = Declare(ch, p.broker.Topology)
		_ = ch.Close()
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	p.mu.Lock()
	p.conn = conn
	p.mu.Unlock()
	p.once.Do(func() { close(p.declared) })
	return closed, nil
}

func (p *Publisher) drop() {
	p.mu.Lock()
	conn := p.conn
	p.conn, p.free = nil, nil
	p.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

// Publish sends msg to the work queue and returns nil only once the broker has confirmed it and
// not returned it. It gives up when ctx ends (ErrTimeout).
func (p *Publisher) Publish(ctx context.Context, msg amqp.Publishing) error {
	c, conn, err := p.channel()
	if err != nil {
		return err
	}
	err = c.Publish(ctx, p.broker.Topology.Queue, msg)
	if err == nil || errors.Is(err, ErrReturned) || errors.Is(err, ErrNacked) {
		p.release(c, conn)
	} else {
		// A timed-out confirm may still arrive; that channel's sequence is no longer ours to read.
		_ = c.Ch.Close()
	}
	return err
}

func (p *Publisher) channel() (*ConfirmChannel, *amqp.Connection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		return nil, nil, fmt.Errorf("%w: not connected to %s", ErrUnavailable, p.broker.Redacted())
	}
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		return c, p.conn, nil
	}
	c, err := NewConfirmChannel(p.conn)
	return c, p.conn, err
}

func (p *Publisher) release(c *ConfirmChannel, conn *amqp.Connection) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == conn && !c.Ch.IsClosed() && len(p.free) < 64 {
		p.free = append(p.free, c)
		return
	}
	_ = c.Ch.Close()
}
