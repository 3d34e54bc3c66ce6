package rabbitqueue

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// pipeline is a confirm channel with many publishes in flight, their confirms collected as they
// come (the broker may ack several at once). A basic.return names no delivery tag, only the
// message, so a pipeline holds at most one message per MessageId in flight (a second waits for
// the first) and tells returns apart by MessageId: the broker sends a message's basic.return
// before its basic.ack, and collect sees them in that order (see there).
type pipeline struct {
	ch *amqp.Channel

	mu      sync.Mutex
	pending map[uint64]*flight // by delivery tag
	byID    map[string]*flight
	dead    bool
}

// flight is one message in a pipeline: result gets its outcome once; settled closes then.
type flight struct {
	id       string
	returned *amqp.Return
	result   chan error
	settled  chan struct{}
}

// confirmBuffer is how many confirms the library may hand over before collect takes them.
const confirmBuffer = 256

func openPipeline(conn *amqp.Connection) (*pipeline, error) {
	ch, err := openConfirmMode(conn)
	if err != nil {
		return nil, err
	}
	p := &pipeline{ch: ch, pending: map[uint64]*flight{}, byID: map[string]*flight{}}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, confirmBuffer))
	// Unbuffered: the library's reader hands a return over only when collect takes it, so collect
	// has recorded the return before the reader can even pass on the ack that follows it.
	returns := ch.NotifyReturn(make(chan amqp.Return))
	go p.collect(confirms, returns)
	return p, nil
}

// publish sends msg with mandatory set and returns its flight; the error is the broker not
// taking the write or ctx ending first (while the channel opened or an earlier message of the
// same id was in flight). sent is set just before the write: from then on the message may be
// queued.
func (p *pipeline) publish(ctx context.Context, queue string, msg amqp.Publishing, sent *atomic.Bool) (*flight, error) {
	for {
		p.mu.Lock()
		if p.dead {
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: channel closed", ErrUnavailable)
		}
		prev := p.byID[msg.MessageId]
		if prev == nil {
			break // p.mu stays locked: the tag read below is the one the publish gets
		}
		p.mu.Unlock()
		select {
		case <-prev.settled:
		case <-ctx.Done():
			return nil, ErrTimeout
		}
	}
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return nil, ErrTimeout
	}
	sent.Store(true)
	tag := p.ch.GetNextPublishSeqNo()
	if err := p.ch.PublishWithContext(ctx, "", queue, true, false, msg); err != nil {
		return nil, fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
	}
	f := &flight{id: msg.MessageId, result: make(chan error, 1), settled: make(chan struct{})}
	p.pending[tag], p.byID[msg.MessageId] = f, f
	return f, nil
}

// collect settles flights from confirms and returns until the channel closes; then every flight
// still pending lost its confirm.
func (p *pipeline) collect(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.mu.Lock()
			if f := p.byID[r.MessageId]; f != nil && f.returned == nil {
				f.returned = &r
			}
			p.mu.Unlock()
		case c, ok := <-confirms:
			if !ok {
				p.fail()
				return
			}
			p.settle(c)
		}
	}
}

func (p *pipeline) settle(c amqp.Confirmation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.pending[c.DeliveryTag]
	if f == nil {
		return
	}
	delete(p.pending, c.DeliveryTag)
	delete(p.byID, f.id)
	switch {
	case !c.Ack:
		f.result <- ErrNacked
	case f.returned != nil:
		f.result <- fmt.Errorf("%w (%d %s)", ErrReturned, f.returned.ReplyCode, f.returned.ReplyText)
	default:
		f.result <- nil
	}
	close(f.settled)
}

func (p *pipeline) fail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dead = true
	for _, f := range p.pending {
		f.result <- ErrConfirmLost
		close(f.settled)
	}
	p.pending, p.byID = map[uint64]*flight{}, map[string]*flight{}
}

func (p *pipeline) isDead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead || p.ch.IsClosed()
}
