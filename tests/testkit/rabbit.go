// Package testkit gives tests the real services they need: a RabbitMQ broker (from RABBITMQ_URL,
// or a local Debian rabbitmq-server started on demand), an in-process FerretDB as the MongoDB-wire
// server, and a TCP proxy that can cut a connection the way an outage would.
package testkit

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
)

const localURL = "amqp://guest:guest@127.0.0.1:5672/"

var (
	brokerOnce sync.Once
	brokerURL  string
	brokerErr  string
)

// RabbitURL returns the URL of a running broker. It uses RABBITMQ_URL when set, else starts the
// local rabbitmq-server if one is installed. Without either the test is skipped, except under
// CI=true, where a missing broker fails the run.
func RabbitURL(t testing.TB) string {
	t.Helper()
	brokerOnce.Do(func() { brokerURL, brokerErr = findBroker() })
	if brokerErr != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ is required in CI: %s", brokerErr)
		}
		t.Skipf("no RabbitMQ: %s (set RABBITMQ_URL or install rabbitmq-server)", brokerErr)
	}
	return brokerURL
}

func findBroker() (string, string) {
	if u := os.Getenv("RABBITMQ_URL"); u != "" {
		if err := ping(u); err != nil {
			return "", "RABBITMQ_URL does not answer: " + err.Error()
		}
		return u, ""
	}
	if ping(localURL) == nil {
		return localURL, ""
	}
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		return "", "RABBITMQ_URL is not set and rabbitmq-server is not installed"
	}
	if out, err := exec.Command("rabbitmq-server", "-detached").CombinedOutput(); err != nil {
		return "", "rabbitmq-server -detached: " + err.Error() + ": " + string(out)
	}
	// await_startup fails at once until the node has registered, so retry it.
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command("rabbitmqctl", "-q", "await_startup", "--timeout", "30").Run() == nil && ping(localURL) == nil {
			return localURL, ""
		}
		time.Sleep(time.Second)
	}
	return "", "started rabbitmq-server but it was not ready within 90s"
}

func ping(url string) error {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// UniqueName returns a name for a queue or record that no other test uses.
func UniqueName(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return "test-" + strings.ToLower(name) + "-" + hex.EncodeToString(b)
}

// Broker is a test's own view of the real broker: a connection plus helpers, with the test's
// queues deleted at cleanup.
type Broker struct {
	t    testing.TB
	URL  string
	Conn *amqp.Connection
}

// NewBroker connects to the test broker and deletes topology's queues when the test ends.
func NewBroker(t testing.TB, topology contract.Topology) *Broker {
	t.Helper()
	url := RabbitURL(t)
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	b := &Broker{t: t, URL: url, Conn: conn}
	t.Cleanup(func() {
		for _, q := range []string{topology.Queue, topology.DeadLetterQueue()} {
			// A channel each: a failed delete closes its channel.
			ch, err := conn.Channel()
			if err == nil {
				_, err = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
			if err != nil {
				t.Logf("delete test queue %q: %v", q, err)
			}
		}
		_ = conn.Close()
	})
	return b
}

// Depth returns the number of ready messages in queue (what KEDA's amqp scaler counts).
func (b *Broker) Depth(queue string) int {
	b.t.Helper()
	ch, err := b.Conn.Channel() // a passive declare of a missing queue closes its channel
	require.NoError(b.t, err)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(b.t, err, "queue %q", queue)
	return q.Messages
}

// WaitDepth waits until queue holds want ready messages.
func (b *Broker) WaitDepth(queue string, want int) {
	b.t.Helper()
	require.Eventually(b.t, func() bool { return b.Depth(queue) == want }, 10*time.Second, 20*time.Millisecond,
		"queue %q never held %d ready messages", queue, want)
}

// Get takes one message (manual ack) and acks it, failing the test when the queue is empty.
func (b *Broker) Get(queue string) amqp.Delivery {
	b.t.Helper()
	ch, err := b.Conn.Channel()
	require.NoError(b.t, err)
	defer ch.Close()
	d, ok, err := ch.Get(queue, false)
	require.NoError(b.t, err)
	require.True(b.t, ok, "queue %q is empty", queue)
	require.NoError(b.t, d.Ack(false))
	return d
}

// PublishRaw publishes body as-is to queue with confirms (for poison-message tests).
func (b *Broker) PublishRaw(queue string, msg amqp.Publishing) {
	b.t.Helper()
	ch, err := b.Conn.Channel()
	require.NoError(b.t, err)
	defer ch.Close()
	require.NoError(b.t, ch.Confirm(false))
	dc, err := ch.PublishWithDeferredConfirm("", queue, true, false, msg)
	require.NoError(b.t, err)
	require.True(b.t, dc.Wait(), "broker nacked")
}
