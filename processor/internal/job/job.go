// Package job is one processor run: take exactly one message, store it, ack it, do the work.
//
// Order matters. MongoDB is pinged before the queue is touched, so a database outage does not use
// up messages' attempts. The message is acked right after the store write (the record is safe), so
// KEDA's amqp count (ready messages only) no longer includes it: the chart pairs this with the
// ScaledJob "accurate" strategy. Once the run holds its message it tells the readiness endpoint
// (package probe), so that KEDA stops counting the Job as pending only then.
//
// The whole run is bounded by RUN_TIMEOUT from the program's start (config.RunMargin): the steps
// before the work have a deadline that leaves the work its whole WORK_DURATION, and at RUN_TIMEOUT
// Run returns whatever a step is doing, so a hung dependency still ends the pod.
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
	"github.com/keda-demo/keda-demo/processor/internal/probe"
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
	RunTimeout     Outcome = "run-timeout" // a step hung past its own deadline until RUN_TIMEOUT
)

// afterStore lets fault-injection builds stop the run between the store write and the ack
// (see hook_faultinject.go); it does nothing otherwise.
var afterStore = func(amqp.Delivery) {}

// KillOnFirstDelivery is the content of a message that a fault-injection build kills itself on,
// after the store write and before the ack, on its first delivery (the redelivery is processed
// normally): the e2e's processor-kill-before-ack, which cannot set one Job's environment.
const KillOnFirstDelivery = "faultinject:kill-after-store"

// beforeGet lets fault-injection builds pause or hang the run right before basic.get; it does
// nothing otherwise.
var beforeGet = func() {}

// Runner runs the job.
type Runner struct {
	Cfg      config.Config
	Log      *slog.Logger
	Hostname string
	// Start is when the program started, which RUN_TIMEOUT counts from (now when zero).
	Start time.Time
	// Probe is told when the run holds its message; nil when PROBE_ADDR is empty.
	Probe *probe.Server
}

// Run takes one message and returns the process exit code. It logs one line with the outcome. It
// returns by RUN_TIMEOUT after the start even when a step ignores its deadline: the caller then
// exits, and the broker puts back a message that was taken and not acked.
func (r Runner) Run(ctx context.Context) int {
	start := r.Start
	if start.IsZero() {
		start = time.Now()
	}
	if r.Cfg.RunTimeout <= 0 { // a Config not made by config.Load
		r.Cfg.RunTimeout = r.Cfg.WorkDuration + config.RunMargin
	}
	deadline := start.Add(r.Cfg.RunTimeout)
	done := make(chan result, 1)
	go func() { done <- r.run(ctx, start, deadline) }()
	hardStop := time.NewTimer(time.Until(deadline))
	defer hardStop.Stop()
	var res result
	select {
	case res = <-done:
	case <-hardStop.C:
		res = result{outcome: RunTimeout, code: ExitFailure,
			err: fmt.Errorf("the run did not end within RUN_TIMEOUT=%s of its start: a step hung past its own deadline", r.Cfg.RunTimeout)}
	}
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

func (r Runner) run(ctx context.Context, start, deadline time.Time) result {
	// The steps before the work end by setupEnd (config.RunMargin); sctx carries it to MongoDB.
	setupEnd := start.Add(r.Cfg.SetupBound())
	sctx, cancel := context.WithDeadline(ctx, setupEnd)
	defer cancel()
	cut := func(err error) error {
		if ctx.Err() == nil && !time.Now().Before(setupEnd) {
			return fmt.Errorf("%w (cut at the deadline of the steps before the work, RUN_TIMEOUT − WORK_DURATION − %s = %s after the start)",
				err, config.WorkEndReserve, r.Cfg.SetupBound())
		}
		return err
	}

	st, err := mongostore.Open(r.Cfg.Mongo)
	if err != nil {
		return result{outcome: StoreDown, code: ExitStoreFailed, err: err}
	}
	defer func() { _ = st.Close(context.Background()) }()
	pctx, cancelPing := context.WithTimeout(sctx, 10*time.Second)
	err = st.Ping(pctx)
	cancelPing()
	if err != nil {
		return result{outcome: StoreDown, code: ExitStoreFailed, err: cut(err)}
	}

	conn, err := rabbitqueue.Dial(r.Cfg.Broker, "keda-demo-processor")
	if err != nil {
		return result{outcome: BrokerDown, code: ExitBroker, err: err}
	}
	defer conn.Close()
	// A broker call still waiting at setupEnd (basic.get takes no context) is cut off by closing
	// the connection; the broker then puts back a message taken and not acked, its attempt not
	// counted. Only the deadline does this: SIGTERM lets the steps end on their own.
	cutConn := time.AfterFunc(time.Until(setupEnd), func() { _ = conn.CloseDeadline(time.Now().Add(time.Second)) })
	defer cutConn.Stop()
	ch, err := conn.Channel()
	if err != nil {
		return result{outcome: BrokerDown, code: ExitBroker, err: cut(fmt.Errorf("open channel: %w", err))}
	}
	top := r.Cfg.Broker.Topology
	beforeGet()
	d, ok, err := ch.Get(top.Queue, false)
	if err != nil {
		return result{outcome: BrokerDown, code: ExitBroker, err: cut(fmt.Errorf("basic.get from %q: %w", top.Queue, err))}
	}
	if !ok {
		return result{outcome: Empty, code: ExitOK}
	}
	// The message has left the queue's ready count: from now on this Job is no longer pending.
	r.Probe.Taken()
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
	wctx, cancelWrite := context.WithTimeout(sctx, 15*time.Second)
	inserted, err := st.Upsert(wctx, mongostore.Record{
		ID: d.MessageId, Name: msg.Name, Content: msg.Content,
		CreatedAt:   contract.CreatedAt(d.Headers, d.Timestamp),
		ProcessedAt: time.Now().UTC(), ProcessedBy: r.Hostname, Job: r.Cfg.JobName,
	})
	cancelWrite()
	res.storeTime = time.Since(t0)
	if err != nil {
		return r.storeFailed(sctx, conn, d, res, cut(err))
	}
	afterStore(d)
	if err := d.Ack(false); err != nil {
		// Stored but not acked: the broker redelivers it, and the upsert makes that harmless.
		return r.settle(res, Unacknowledged, ExitFailure, nil, cut(fmt.Errorf("ack: %w", err)))
	}
	cutConn.Stop()
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
		// and the ack are safe already, so a failed write is logged, not fatal. It ends a second
		// before RUN_TIMEOUT, and has at least config.WorkEndReserve minus that second.
		end := time.Now().Add(10 * time.Second)
		if last := deadline.Add(-time.Second); last.Before(end) {
			end = last
		}
		dctx, cancel := context.WithDeadline(ctx, end)
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
