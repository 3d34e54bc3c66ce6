package rabbitqueue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

func setup(t *testing.T) (*testkit.Broker, rabbitqueue.Broker) {
	top := contract.Topology{Queue: testkit.UniqueName(t)}
	b := testkit.NewBroker(t, top)
	return b, rabbitqueue.Broker{URL: b.URL, Topology: top}
}

func startPublisher(t *testing.T, cfg rabbitqueue.Broker) *rabbitqueue.Publisher {
	p := rabbitqueue.NewPublisher(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-p.Declared():
	case <-time.After(10 * time.Second):
		t.Fatal("topology never declared")
	}
	return p
}

func publish(t *testing.T, p *rabbitqueue.Publisher, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Publish(ctx, id, contract.Message{Name: id, Content: "c"}, time.Now())
}

func TestPublishConfirmedAndDeclaredIdempotently(t *testing.T) {
	b, cfg := setup(t)
	p := startPublisher(t, cfg)
	for i := range 3 {
		require.NoError(t, publish(t, p, "m"+string(rune('0'+i))))
	}
	b.WaitDepth(cfg.Topology.Queue, 3)
	b.WaitDepth(cfg.Topology.DeadLetterQueue(), 0)

	// A second declaration with the same arguments (another app replica, a restart) is a no-op.
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbitqueue.Declare(ch, cfg.Topology))
	b.WaitDepth(cfg.Topology.Queue, 3)
	d := b.Get(cfg.Topology.Queue)
	require.Equal(t, "m0", d.MessageId)
}

func TestPublishToDeletedQueueIsReturned(t *testing.T) {
	b, cfg := setup(t)
	p := startPublisher(t, cfg)
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDelete(cfg.Topology.Queue, false, false, false)
	require.NoError(t, err)
	// The broker confirms an unroutable mandatory message after returning it: it is gone.
	require.ErrorIs(t, publish(t, p, "lost"), rabbitqueue.ErrReturned)
	// The channel stays usable once the queue exists again.
	require.NoError(t, rabbitqueue.Declare(ch, cfg.Topology))
	require.NoError(t, publish(t, p, "kept"))
	b.WaitDepth(cfg.Topology.Queue, 1)
}

func TestPublisherReconnectsAfterOutage(t *testing.T) {
	b, cfg := setup(t)
	var proxy *testkit.Proxy
	cfg.URL, proxy = testkit.ProxyURL(t, b.URL)

	states := make(chan bool, 16)
	p := rabbitqueue.NewPublisher(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.OnState = func(up bool) { states <- up }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	require.True(t, <-states)
	require.NoError(t, publish(t, p, "before"))

	proxy.Cut()
	require.False(t, <-states)
	require.ErrorIs(t, publish(t, p, "during"), rabbitqueue.ErrUnavailable)

	proxy.Restore()
	select {
	case up := <-states:
		require.True(t, up)
	case <-time.After(15 * time.Second):
		t.Fatal("publisher did not reconnect")
	}
	require.NoError(t, publish(t, p, "after"))
	b.WaitDepth(cfg.Topology.Queue, 2)
}

// A real basic.nack (a full queue that rejects publishes) is ErrNacked, not a lost confirm: the
// channel stays open.
func TestFullQueueNacks(t *testing.T) {
	b, cfg := setup(t)
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(cfg.Topology.Queue, false, true, false, false, amqp.Table{"x-max-length": 0, "x-overflow": "reject-publish"})
	require.NoError(t, err)
	c, err := rabbitqueue.NewConfirmChannel(b.Conn)
	require.NoError(t, err)
	defer c.Ch.Close()
	msg, err := contract.Publishing("full", contract.Message{Name: "n", Content: "c"}, time.Now())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.Publish(ctx, cfg.Topology.Queue, msg)
	require.ErrorIs(t, err, rabbitqueue.ErrNacked)
	require.Equal(t, rabbitqueue.ReasonNacked, rabbitqueue.Classify(err))
	require.False(t, c.Ch.IsClosed())
}

// Many publishes in flight on the publisher's pipelined channel each get their own outcome: of 40
// sent at once to a queue that holds 10 and rejects the rest, exactly 10 are confirmed and the
// others nacked; the same id sent many times at once is confirmed each time; and after the queue
// is deleted, every one is returned as unroutable.
func TestPipelinedPublishesGetEachTheirOwnOutcome(t *testing.T) {
	b, cfg := setup(t)
	p := startPublisher(t, cfg)
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	replace := func(args amqp.Table) {
		_, err := ch.QueueDelete(cfg.Topology.Queue, false, false, false)
		require.NoError(t, err)
		_, err = ch.QueueDeclare(cfg.Topology.Queue, false, false, false, false, args)
		require.NoError(t, err)
	}
	burst := func(n int, id func(i int) string) map[rabbitqueue.Reason]int {
		var mu sync.Mutex
		got := map[rabbitqueue.Reason]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := publish(t, p, id(i))
				r := rabbitqueue.Reason("ok")
				if err != nil {
					r = rabbitqueue.Classify(err)
				}
				mu.Lock()
				got[r]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return got
	}
	distinct := func(i int) string { return fmt.Sprintf("m%d", i) }

	replace(amqp.Table{"x-max-length": 10, "x-overflow": "reject-publish"})
	require.Equal(t, map[rabbitqueue.Reason]int{"ok": 10, rabbitqueue.ReasonNacked: 30}, burst(40, distinct))
	b.WaitDepth(cfg.Topology.Queue, 10)

	replace(nil)
	require.Equal(t, map[rabbitqueue.Reason]int{"ok": 20}, burst(20, func(int) string { return "same-key" }))
	b.WaitDepth(cfg.Topology.Queue, 20)

	_, err = ch.QueueDelete(cfg.Topology.Queue, false, false, false)
	require.NoError(t, err)
	require.Equal(t, map[rabbitqueue.Reason]int{rabbitqueue.ReasonUnroutable: 20}, burst(20, func(i int) string { return distinct(i % 5) }))
}

// A failed dial is ErrUnavailable and keeps its cause for errors.Is and errors.As: the network
// error of a refused connection, the broker's ACCESS_REFUSED for a wrong password (which the
// message never shows).
func TestDialErrorKeepsItsCause(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := l.Addr().String()
	require.NoError(t, l.Close())
	_, err = rabbitqueue.Dial(rabbitqueue.Broker{URL: "amqp://guest:guest@" + closedPort + "/"}, "dial-test")
	require.ErrorIs(t, err, rabbitqueue.ErrUnavailable)
	var opErr *net.OpError
	require.ErrorAs(t, err, &opErr)
	require.Equal(t, rabbitqueue.ReasonUnavailable, rabbitqueue.Classify(err))

	b, _ := setup(t)
	u, err := url.Parse(b.URL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	_, err = rabbitqueue.Dial(rabbitqueue.Broker{URL: u.String()}, "dial-test")
	require.ErrorIs(t, err, rabbitqueue.ErrUnavailable)
	var amqpErr *amqp.Error
	require.True(t, errors.As(err, &amqpErr), "%v (%T) does not reach an *amqp.Error", err, errors.Unwrap(err))
	require.Equal(t, amqp.AccessRefused, amqpErr.Code)
	require.NotContains(t, err.Error(), "not-the-password")
	require.Equal(t, rabbitqueue.ReasonUnavailable, rabbitqueue.Classify(err))
}
