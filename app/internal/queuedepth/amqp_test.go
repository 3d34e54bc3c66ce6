package queuedepth

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// Against a real broker behind a cuttable proxy: counts, a missing queue, an outage, recovery.
func TestAMQPReadsDepthsAndRecovers(t *testing.T) {
	top := contract.Topology{Queue: testkit.UniqueName(t)}
	b := testkit.NewBroker(t, top)
	brokerURL, proxy := testkit.ProxyURL(t, b.URL)
	r := &AMQP{
		Dial: func() (*amqp.Connection, error) {
			return rabbitqueue.Dial(rabbitqueue.Broker{URL: brokerURL}, "depth-test")
		},
		Queue: top.Queue, DeadLetterQueue: top.DeadLetterQueue(),
	}
	t.Cleanup(func() { _ = r.Close() })
	depths := func() (int, int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return r.Depths(ctx)
	}

	_, _, err := depths()
	require.ErrorContains(t, err, top.Queue, "the queues are not declared yet")

	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbitqueue.Declare(ch, top))
	_ = ch.Close()
	for range 2 {
		b.PublishRaw(top.Queue, amqp.Publishing{Body: []byte("{}")})
	}
	b.PublishRaw(top.DeadLetterQueue(), amqp.Publishing{Body: []byte("{}")})
	work, dead, err := depths()
	require.NoError(t, err, "a failed read does not spoil the next")
	require.Equal(t, [2]int{2, 1}, [2]int{work, dead})

	proxy.Cut()
	_, _, err = depths()
	require.Error(t, err)
	proxy.Restore()
	require.Eventually(t, func() bool { w, d, err := depths(); return err == nil && w == 2 && d == 1 }, 10*time.Second, 50*time.Millisecond)
}
