// Package job is one processor run: take exactly one message, store it, ack it, do the work.
//
// Order matters. MongoDB is pinged before the queue is touched, so a database outage does not use
// up messages' attempts. The message is acked right after the store write (the record is safe), so
// KEDA's amqp count (ready messages only) no longer includes it: the chart pairs this with the
// ScaledJob "accurate" strategy.
package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/processor/internal/config"
)

// Exit codes, documented in the README and relied on by the chart.
const (
	ExitOK          = 0  // stored (or queue empty, or a poison message dead-lettered)
	ExitFailure     = 1  // anything unexpected
	ExitConfig      = 2  // invalid configuration
	ExitBroker      = 69 // RabbitMQ unreachable (EX_UNAVAILABLE); no message was taken
	ExitStoreFailed = 75 // MongoDB unreachable or the write failed (EX_TEMPFAIL); the message is kept for a retry
)

// Outcome names what happened to the message; every run logs exactly one.
type Outcome string

const (
	Empty          Outcome = "queue-empty"
	Stored         Outcome = "stored"
	Duplicate      Outcome = "already-stored" // a redelivery of a message stored before
	Poison         Outcome = "dead-lettered-invalid"
	Retried        Outcome = "store-failed-requeued"
	Exhausted      Outcome = "store-failed-dead-lettered"
	StoreDown      Outcome = "mongodb-unavailable"
	BrokerDown     Outcome = "broker-unavailable"
	Unacknowledged Outcome = "failed-unacknowledged"
)

// afterStore lets fault-injection builds stop the run between the store write and the ack
// (see hook_faultinject.go); it does nothing otherwise.
var afterStore = func() {}

// Runner runs the job.
type Runner struct {
	Cfg      config.Config
	Log      *slog.Logger
	Hostname string
}

// Run takes one message and returns the process exit code. It logs one line with the outcome.
func (r Runner) Run(ctx context.Context) int {
	start := time.Now()
	res := r.run(ctx)
	attrs := []any{
		"outcome", string(res.outcome), "message_id", res.id, "attempt", res.attempt,
		"store_ms", ms(res.storeTime), "work_ms", ms(res.workTime), "total_ms", ms(time.Since(start)),
		"exit_code", res.code,
	}
	if kib, ok := peakRSSKiB(); ok {
		attrs = append(attrs, "peak_rss_kib", kib)
	}
	if res.interrupted {
		attrs = append(attrs, "work_interrupted", true)
	}
	if res.err != nil {
		r.Log.Error("message not processed", append(attrs, "error", res.err.Error())...)
	} else {
		r.Log.Info("message processed", attrs...)
	}
	return res.code
}

type result struct {
	outcome     Outcome
	code        int
	id          string
	attempt     int
	storeTime   time.Duration
	workTime    time.Duration
	interrupted bool
	err         error
}

func (r Runner) run(ctx context.Context) result {
	st, err := mongostore.Open(r.Cfg.Mongo)
	if err != nil {
		return result{outcome: StoreDown, code: ExitStoreFailed, err: err}
	}
	defer func() { _ = st.Close(context.Background()) }()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = st.Ping(pctx)
	cancel()
	if err != nil {
		return result{outcome: StoreDown, code: ExitStoreFailed, err: err}
	}

	conn, err := rabbitqueue.Dial(r.Cfg.Broker, "keda-demo-processor")
	if err != nil {
		return result{outcome: BrokerDown, code: ExitBroker, err: err}
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return result{outcome: BrokerDown, code: ExitBroker, err: fmt.Errorf("open channel: %w", err)}
	}
	top := r.Cfg.Broker.Topology
	d, ok, err := ch.Get(top.Queue, false)
	if err != nil {
		return result{outcome: BrokerDown, code: ExitBroker, err: fmt.Errorf("basic.get from %q: %w", top.Queue, err)}
	}
	if !ok {
		return result{outcome: Empty, code: ExitOK}
	}
	res := result{id: d.MessageId, attempt: contract.Attempt(d.Headers)}

	msg, err := contract.Decode(d.Body)
	if err == nil && d.MessageId == "" {
		err = &contract.FieldError{Field: "message-id", Reason: "required: it is the record id"}
	}
	if err != nil {
		// A poison message goes to the dead-letter queue at once; requeueing it would make KEDA
		// start Jobs for it forever.
		return r.settle(res, Poison, ExitOK, d.Reject(false), err)
	}

	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	inserted, err := st.Upsert(wctx, mongostore.Record{
		ID: d.MessageId, Name: msg.Name, Content: msg.Content,
		CreatedAt:   contract.CreatedAt(d.Headers, d.Timestamp),
		ProcessedAt: time.Now().UTC(), ProcessedBy: r.Hostname, Job: r.Cfg.JobName,
	})
	cancel()
	res.storeTime = time.Since(t0)
	if err != nil {
		return r.storeFailed(ctx, conn, d, res, err)
	}
	afterStore()
	if err := d.Ack(false); err != nil {
		// Stored but not acked: the broker redelivers it, and the upsert makes that harmless.
		return r.settle(res, Unacknowledged, ExitFailure, nil, fmt.Errorf("ack: %w", err))
	}
	res.outcome, res.code = Stored, ExitOK
	if !inserted {
		res.outcome = Duplicate
	}
	// Free the broker connection before the long work.
	_ = ch.Close()
	_ = conn.Close()

	t1 := time.Now()
	select {
	case <-ctx.Done(): // SIGTERM: the record is safe, exit promptly and cleanly
		res.interrupted = true
	case <-time.After(r.Cfg.WorkDuration):
		// The end of the work is what tells "processing" from "done" on the live page. The record
		// and the ack are safe already, so a failed write is logged, not fatal.
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := st.WorkDone(dctx, d.MessageId, time.Now()); err != nil {
			r.Log.Warn("work end not recorded", "message_id", d.MessageId, "error", err.Error())
		}
		cancel()
	}
	res.workTime = time.Since(t1)
	return res
}

// storeFailed keeps the message for another attempt, counting attempts in a header because
// classic queues keep no delivery count and quorum queues count differently across versions.
func (r Runner) storeFailed(ctx context.Context, conn *amqp.Connection, d amqp.Delivery, res result, cause error) result {
	if res.attempt >= r.Cfg.MaxDeliveries {
		return r.settle(res, Exhausted, ExitStoreFailed, d.Reject(false), cause)
	}
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[contract.HeaderAttempt] = int32(res.attempt + 1)
	retry := contract.Republishing(d, headers)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rabbitqueue.PublishConfirmed(pctx, conn, r.Cfg.Broker.Topology.Queue, retry); err != nil {
		// Not republished: put the original back untouched (its attempt is not counted).
		return r.settle(res, Retried, ExitStoreFailed, d.Nack(false, true), errors.Join(cause, fmt.Errorf("republish: %w", err)))
	}
	return r.settle(res, Retried, ExitStoreFailed, d.Ack(false), cause)
}

// settle records the outcome and any error from the final ack/nack/reject.
func (r Runner) settle(res result, o Outcome, code int, settleErr, cause error) result {
	res.outcome, res.code, res.err = o, code, cause
	if settleErr != nil {
		res.code, res.err = ExitFailure, errors.Join(cause, fmt.Errorf("settle message: %w", settleErr))
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// peakRSSKiB is this process's resident-memory high-water mark (Linux VmHWM). getrusage would
// not do: its maxrss carries over the parent's memory across fork+exec.
func peakRSSKiB() (int, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n, err == nil
		}
	}
	return 0, false
}
