package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// maxFree bounds the idle channels the publisher keeps for reuse.
const maxFree = 64

// Publisher keeps one connection to the broker alive, redeclares the topology on every
// (re)connect, and publishes with confirms over a pool of channels. While the broker is down or
// blocks publishers, Publish fails at once (ErrUnavailable, ErrBlocked) instead of queueing
// callers; otherwise it returns by its context's deadline whatever the broker does.
type Publisher struct {
	broker Broker
	log    *slog.Logger
	// OnState is called with true after every successful connect and false after every loss.
	OnState func(up bool)

	blocked  atomic.Bool // connection.blocked received and not yet unblocked
	mu       sync.Mutex  // guards conn and free; never held across a network round trip
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

// Blocked reports whether the broker currently blocks this publisher's connection (a memory or
// disk alarm).
func (p *Publisher) Blocked() bool { return p.blocked.Load() }

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
		_ = conn.CloseDeadline(time.Now().Add(time.Second))
		return nil, err
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	go p.watchBlocked(conn.NotifyBlocked(make(chan amqp.Blocking, 1)))
	p.mu.Lock()
	p.conn = conn
	p.mu.Unlock()
	p.once.Do(func() { close(p.declared) })
	return closed, nil
}

// watchBlocked follows connection.blocked/unblocked until the connection closes (which closes
// the channel).
func (p *Publisher) watchBlocked(blocks <-chan amqp.Blocking) {
	for b := range blocks {
		p.blocked.Store(b.Active)
		if b.Active {
			p.log.Warn("broker blocks publishers", "reason", b.Reason)
		} else {
			p.log.Info("broker unblocked publishers")
		}
	}
	p.blocked.Store(false)
}

func (p *Publisher) drop() {
	p.mu.Lock()
	conn := p.conn
	p.conn, p.free = nil, nil
	p.mu.Unlock()
	if conn != nil {
		// A frozen broker never answers connection.close: do not wait for it.
		_ = conn.CloseDeadline(time.Now().Add(time.Second))
	}
}

// Publish sends msg to the work queue and returns nil only once the broker has confirmed it and
// not returned it. It returns by the time ctx ends (ErrTimeout once the message may have been
// sent, ErrUnavailable before), even when a write or a channel open is stuck on the broker: the
// stuck attempt finishes in the background and its channel is discarded.
func (p *Publisher) Publish(ctx context.Context, msg amqp.Publishing) error {
	if p.blocked.Load() {
		return fmt.Errorf("%w: publish to %s", ErrBlocked, p.broker.Redacted())
	}
	conn, err := p.connection()
	if err != nil {
		return err
	}
	var sent atomic.Bool
	done := make(chan error, 1)
	go func() { done <- p.publish(ctx, conn, msg, &sent) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done: // finished as the deadline passed: the outcome is known
		return err
	default:
	}
	switch {
	case sent.Load():
		return ErrTimeout
	case p.blocked.Load(): // a blocked connection does not open channels either
		return fmt.Errorf("%w: no channel to %s within the publish timeout", ErrBlocked, p.broker.Redacted())
	default:
		return fmt.Errorf("%w: no channel to %s within the publish timeout", ErrUnavailable, p.broker.Redacted())
	}
}

// publish takes a channel, publishes on it and gives it back or discards it.
func (p *Publisher) publish(ctx context.Context, conn *amqp.Connection, msg amqp.Publishing, sent *atomic.Bool) error {
	c, err := p.channel(conn)
	if err != nil {
		return err
	}
	if ctx.Err() != nil { // the caller gave up while the channel opened: keep it, send nothing
		p.release(c, conn)
		return ErrTimeout
	}
	sent.Store(true)
	err = c.Publish(ctx, p.broker.Topology.Queue, msg)
	if err == nil || errors.Is(err, ErrReturned) || errors.Is(err, ErrNacked) {
		p.release(c, conn)
	} else {
		// A timed-out confirm may still arrive; that channel's sequence is no longer ours to
		// read. Closing waits for the broker, so it happens off the caller's path.
		go func() { _ = c.Ch.Close() }()
	}
	return err
}

func (p *Publisher) connection() (*amqp.Connection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		return nil, fmt.Errorf("%w: not connected to %s", ErrUnavailable, p.broker.Redacted())
	}
	return p.conn, nil
}

// channel takes an idle channel of conn or opens one; the open (a round trip) runs unlocked.
func (p *Publisher) channel(conn *amqp.Connection) (*ConfirmChannel, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 && p.conn == conn {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return NewConfirmChannel(conn)
}

func (p *Publisher) release(c *ConfirmChannel, conn *amqp.Connection) {
	p.mu.Lock()
	if p.conn == conn && !c.Ch.IsClosed() && len(p.free) < maxFree {
		p.free = append(p.free, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	go func() { _ = c.Ch.Close() }()
}
