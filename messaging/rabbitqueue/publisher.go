package rabbitqueue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keda-demo/keda-demo/messaging/contract"
)

// Publisher keeps one connection to the broker alive, redeclares the topology on every
// (re)connect, and publishes with confirms over one pipelined channel, many publishes in flight
// (one channel lets the broker ack them in batches). While the broker is down or
// blocks publishers, Publish fails at once (ErrUnavailable, ErrBlocked) instead of queueing
// callers; otherwise it returns by its context's deadline whatever the broker does.
type Publisher struct {
	broker Broker
	log    *slog.Logger
	// OnState is called with true after every successful connect and false after every loss.
	OnState func(up bool)

	blocked  atomic.Bool // connection.blocked received and not yet unblocked
	mu       sync.Mutex  // guards conn and slot; never held across a network round trip
	conn     *amqp.Connection
	slot     *slot         // the current connection's pipeline
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
	p.conn, p.slot = conn, &slot{}
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
	p.conn, p.slot = nil, nil
	p.mu.Unlock()
	if conn != nil {
		// A frozen broker never answers connection.close: do not wait for it.
		_ = conn.CloseDeadline(time.Now().Add(time.Second))
	}
}

// Publish sends msg to the work queue as the persistent message id, created at createdAt (see
// contract.Publishing), and returns nil only once the broker has confirmed it and not returned it.
// It returns by the time ctx ends (ErrTimeout once the message may have been sent, ErrUnavailable
// or ErrBlocked before), even when a write or a channel open is stuck on the broker: the stuck
// attempt finishes in the background.
func (p *Publisher) Publish(ctx context.Context, id string, msg contract.Message, createdAt time.Time) error {
	pub, err := contract.Publishing(id, msg, createdAt)
	if err != nil {
		return err
	}
	if p.blocked.Load() {
		return fmt.Errorf("%w: publish to %s", ErrBlocked, p.broker.Redacted())
	}
	s, conn, err := p.current()
	if err != nil {
		return err
	}
	var sent atomic.Bool
	done := make(chan error, 1)
	go func() {
		f, err := s.publish(ctx, conn, p.broker.Topology.Queue, pub, &sent)
		if err != nil {
			done <- err
			return
		}
		select {
		case err := <-f.result:
			done <- err
		case <-ctx.Done(): // the flight stays in its pipeline until its confirm or the channel's end
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done: // settled as the deadline passed: the outcome is known
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

// current returns the connection and its pipeline's slot.
func (p *Publisher) current() (*slot, *amqp.Connection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		return nil, nil, fmt.Errorf("%w: not connected to %s", ErrUnavailable, p.broker.Redacted())
	}
	return p.slot, p.conn, nil
}

// slot holds a connection's pipeline, opened on first use and again after its channel closed. Its
// mutex is held across the open (a round trip), which callers wait out only as long as their
// context lets them: Publish returns by its deadline. Each connection gets a new slot, so an open
// stuck on a lost connection holds up no publish on the next one.
type slot struct {
	mu sync.Mutex
	pl *pipeline
}

func (s *slot) publish(ctx context.Context, conn *amqp.Connection, queue string, msg amqp.Publishing, sent *atomic.Bool) (*flight, error) {
	s.mu.Lock()
	if s.pl == nil || s.pl.isDead() {
		pl, err := openPipeline(conn)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.pl = pl
	}
	pl := s.pl
	s.mu.Unlock()
	return pl.publish(ctx, queue, msg, sent)
}
