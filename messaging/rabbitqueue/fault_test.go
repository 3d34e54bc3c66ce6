package rabbitqueue_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// boundedPublishes runs n concurrent publishes with timeout each and returns their errors. Each
// must return within timeout + 1 s whatever the broker does; one that does not fails the test
// instead of hanging it.
func boundedPublishes(t *testing.T, p *rabbitqueue.Publisher, n int, timeout time.Duration) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			errs[i] = p.Publish(ctx, "bounded", contract.Message{Name: "n", Content: "c"}, time.Now())
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout + time.Second):
		t.Fatalf("a publish did not return within its timeout (%v) + 1 s", timeout)
	}
	return errs
}

// A broker that blocks publishers (memory alarm) or does not answer at all (frozen VM) cannot
// hold a publish past its deadline; while the broker blocks, publishes fail at once as blocked.
func TestPublishIsBoundedWhateverTheBrokerDoes(t *testing.T) {
	rmq := testkit.StartRabbitNode(t)
	cfg := rabbitqueue.Broker{URL: rmq.URL, Topology: contract.Topology{Queue: "bounded"}}
	p := startPublisher(t, cfg)
	require.NoError(t, publish(t, p, "before"))
	const timeout = time.Second

	rmq.MemoryAlarm(true)
	for _, err := range boundedPublishes(t, p, 4, timeout) {
		require.Error(t, err)
		require.Contains(t, []rabbitqueue.Reason{rabbitqueue.ReasonBlocked, rabbitqueue.ReasonConfirmTimeout}, rabbitqueue.Classify(err), err.Error())
	}
	require.Eventually(t, p.Blocked, 10*time.Second, 50*time.Millisecond, "connection.blocked never seen")
	for _, err := range boundedPublishes(t, p, 4, timeout) {
		require.ErrorIs(t, err, rabbitqueue.ErrBlocked)
	}
	rmq.MemoryAlarm(false)
	require.Eventually(t, func() bool { return publish(t, p, "unblocked") == nil }, 15*time.Second, 100*time.Millisecond)
	require.False(t, p.Blocked())

	rmq.Freeze()
	for _, err := range boundedPublishes(t, p, 8, timeout) {
		require.Error(t, err)
		require.Contains(t, []rabbitqueue.Reason{rabbitqueue.ReasonConfirmTimeout, rabbitqueue.ReasonUnavailable}, rabbitqueue.Classify(err), err.Error())
	}
	rmq.Thaw()
	require.Eventually(t, func() bool { return publish(t, p, "thawed") == nil }, 40*time.Second, 100*time.Millisecond)
}

// A confirm lost with the connection (the broker crashes while the message is in flight) is
// confirm_lost, never a nack: the broker may have queued the message.
func TestConfirmLostWithTheConnectionIsNotANack(t *testing.T) {
	rmq := testkit.StartRabbitNode(t)
	cfg := rabbitqueue.Broker{URL: rmq.URL, Topology: contract.Topology{Queue: "lost"}}
	p := rabbitqueue.NewPublisher(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	<-p.Declared()
	require.NoError(t, publish(t, p, "warm"))

	rmq.Freeze() // the publish is written and nothing confirms it
	errc := make(chan error, 1)
	go func() { errc <- publish(t, p, "in-flight") }()
	time.Sleep(300 * time.Millisecond)
	rmq.Kill9() // the kernel resets the connection: the confirm is lost with it
	err := <-errc
	require.ErrorIs(t, err, rabbitqueue.ErrConfirmLost)
	require.Equal(t, rabbitqueue.ReasonConfirmLost, rabbitqueue.Classify(err))
}
