package job_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/processor/internal/job"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// bin is the processor binary, built with the fault-injection hook.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "processor-bin-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "processor")
	out, err := exec.Command("go", "build", "-tags", "faultinject", "-o", bin, "github.com/keda-demo/keda-demo/processor/cmd/processor").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build processor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// env is a test's broker queue and MongoDB, and the processor environment pointing at them.
type env struct {
	t      testing.TB
	broker *testkit.Broker
	mongo  *testkit.FerretDB
	top    contract.Topology
	vars   map[string]string
	store  *mongostore.Store
}

func newEnv(t testing.TB) *env {
	top := contract.Topology{Queue: testkit.UniqueName(t)}
	b := testkit.NewBroker(t, top)
	f := testkit.StartFerretDB(t)
	st, err := mongostore.Open(mongostore.Mongo{URI: f.URI(), Database: "keda_demo", Collection: "records"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	e := &env{t: t, broker: b, mongo: f, top: top, store: st, vars: map[string]string{
		"RABBITMQ_URL": b.URL, "QUEUE_NAME": top.Queue, "MONGODB_URI": f.URI(), "WORK_DURATION": "0",
	}}
	// The app declares the topology in production; here the test does, through the same code.
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbitqueue.Declare(ch, top))
	_ = ch.Close()
	return e
}

func (e *env) publish(id, body string) {
	e.broker.PublishRaw(e.top.Queue, amqp.Publishing{MessageId: id, DeliveryMode: amqp.Persistent, Body: []byte(body),
		Headers: amqp.Table{contract.HeaderCreatedAt: time.Now().UnixMilli()}})
}

// logLine is the processor's one outcome line.
type logLine struct {
	Msg       string  `json:"msg"`
	Outcome   string  `json:"outcome"`
	MessageID string  `json:"message_id"`
	Attempt   int     `json:"attempt"`
	TotalMS   float64 `json:"total_ms"`
	Error     string  `json:"error"`
	Moved     int     `json:"moved"`
}

type run struct {
	code int
	log  logLine
	raw  string
}

// run starts the processor binary with the env (plus extra vars) and waits for it to exit.
func (e *env) run(extra map[string]string, args ...string) run {
	e.t.Helper()
	cmd := e.cmd(extra, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := run{code: cmd.ProcessState.ExitCode(), raw: out.String()}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		e.t.Fatalf("run processor: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	_ = json.Unmarshal([]byte(lines[len(lines)-1]), &r.log)
	return r
}

func (e *env) cmd(extra map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range e.vars {
		if _, override := extra[k]; !override {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func (e *env) records() []mongostore.Record {
	e.t.Helper()
	recs, _, err := e.store.List(context.Background(), 1000, nil)
	require.NoError(e.t, err)
	return recs
}

func TestEmptyQueueExitsZero(t *testing.T) {
	e := newEnv(t)
	r := e.run(nil)
	require.Equal(t, job.ExitOK, r.code, r.raw)
	require.Equal(t, string(job.Empty), r.log.Outcome, r.raw)
	t.Logf("empty queue: process ran %.1f ms", r.log.TotalMS)
}

func TestStoresOneMessageAndAcks(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"record1","content":"content1"}`)
	e.publish("m2", `{"name":"record2","content":"content2"}`)
	r := e.run(map[string]string{"JOB_NAME": "keda-demo-processor-x7k2p"})
	require.Equal(t, job.ExitOK, r.code, r.raw)
	require.Equal(t, string(job.Stored), r.log.Outcome)
	require.Equal(t, "m1", r.log.MessageID)
	e.broker.WaitDepth(e.top.Queue, 1) // exactly one message taken
	recs := e.records()
	require.Len(t, recs, 1)
	require.Equal(t, "record1", recs[0].Name)
	require.Equal(t, "content1", recs[0].Content)
	require.NotEmpty(t, recs[0].ProcessedBy)
	require.Equal(t, "keda-demo-processor-x7k2p", recs[0].Job)
	require.False(t, recs[0].WorkDoneAt.Before(recs[0].ProcessedAt), "the work ends after the store write: %+v", recs[0])
}

func TestKilledAfterStoreBeforeAckStoresOnce(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	r := e.run(map[string]string{"PROCESSOR_FAULT": "kill-after-store"})
	require.Equal(t, -1, r.code, "killed by a signal: %s", r.raw)
	require.Len(t, e.records(), 1)
	e.broker.WaitDepth(e.top.Queue, 1) // the unacked message is back

	r = e.run(nil)
	require.Equal(t, job.ExitOK, r.code, r.raw)
	require.Equal(t, string(job.Duplicate), r.log.Outcome)
	e.broker.WaitDepth(e.top.Queue, 0)
	require.Len(t, e.records(), 1)
}

// The e2e's processor-kill-before-ack: the message's own content picks the fault, once.
func TestKillOnFirstDeliveryByContent(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"`+job.KillOnFirstDelivery+`"}`)
	r := e.run(nil)
	require.Equal(t, -1, r.code, "killed by a signal: %s", r.raw)
	require.Len(t, e.records(), 1)
	e.broker.WaitDepth(e.top.Queue, 1)

	r = e.run(nil) // the redelivery is processed normally
	require.Equal(t, job.ExitOK, r.code, r.raw)
	require.Equal(t, string(job.Duplicate), r.log.Outcome)
	e.broker.WaitDepth(e.top.Queue, 0)
	require.Len(t, e.records(), 1)
}

func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":      `hello`,
		"missing field": `{"name":"n"}`,
		"empty field":   `{"name":"","content":"c"}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("bad", body)
			r := e.run(nil)
			require.Equal(t, job.ExitOK, r.code, r.raw)
			require.Equal(t, string(job.Poison), r.log.Outcome)
			require.NotEmpty(t, r.log.Error)
			e.broker.WaitDepth(e.top.Queue, 0)
			e.broker.WaitDepth(e.top.DeadLetterQueue(), 1)
			require.Empty(t, e.records())
		})
	}
}

func TestMongoDownLeavesMessageQueued(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	e.mongo.Stop()
	r := e.run(nil)
	require.Equal(t, job.ExitStoreFailed, r.code, r.raw)
	require.Equal(t, string(job.StoreDown), r.log.Outcome)
	e.broker.WaitDepth(e.top.Queue, 1) // untouched: no attempt used

	e.mongo.Start()
	r = e.run(nil)
	require.Equal(t, job.ExitOK, r.code, r.raw)
	require.Equal(t, 1, r.log.Attempt)
	require.Len(t, e.records(), 1)
}

// A write that fails after the message was taken is retried through a republish with an attempt
// header, and dead-lettered at MAX_DELIVERIES; requeue-dead brings it back after the fix.
func TestFailedWritesAreCountedThenDeadLetteredThenRequeued(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	// MongoDB answers the ping but refuses the write: '$' is not allowed in a collection name.
	broken := map[string]string{"MONGODB_COLLECTION": "bad$name", "MAX_DELIVERIES": "3"}
	for attempt := 1; attempt <= 2; attempt++ {
		r := e.run(broken)
		require.Equal(t, job.ExitStoreFailed, r.code, r.raw)
		require.Equal(t, string(job.Retried), r.log.Outcome, r.raw)
		require.Equal(t, attempt, r.log.Attempt)
		e.broker.WaitDepth(e.top.Queue, 1)
	}
	r := e.run(broken)
	require.Equal(t, job.ExitStoreFailed, r.code, r.raw)
	require.Equal(t, string(job.Exhausted), r.log.Outcome)
	require.Equal(t, 3, r.log.Attempt)
	e.broker.WaitDepth(e.top.Queue, 0)
	e.broker.WaitDepth(e.top.DeadLetterQueue(), 1)

	r = e.run(nil, "requeue-dead", "--limit", "10")
	require.Equal(t, 0, r.code, r.raw)
	require.Equal(t, 1, r.log.Moved)
	e.broker.WaitDepth(e.top.DeadLetterQueue(), 0)
	r = e.run(nil)
	require.Equal(t, job.ExitOK, r.code, r.raw)
	require.Equal(t, string(job.Stored), r.log.Outcome)
	require.Equal(t, 1, r.log.Attempt, "requeue-dead starts the count afresh")
	require.Len(t, e.records(), 1)
}

func TestRequeueDeadHonoursLimit(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.broker.PublishRaw(e.top.DeadLetterQueue(), amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte(`{"name":"n","content":"c"}`)})
	}
	r := e.run(nil, "requeue-dead", "--limit", "2")
	require.Equal(t, 0, r.code, r.raw)
	require.Equal(t, 2, r.log.Moved)
	e.broker.WaitDepth(e.top.Queue, 2)
	e.broker.WaitDepth(e.top.DeadLetterQueue(), 1)
}

func TestSIGTERMDuringWorkExitsZero(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	cmd := e.cmd(map[string]string{"WORK_DURATION": "1m"})
	var out bytes.Buffer
	cmd.Stdout = &out
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return len(e.records()) == 1 }, 10*time.Second, 10*time.Millisecond)
	e.broker.WaitDepth(e.top.Queue, 0)
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), out.String())
	require.Less(t, time.Since(start), 5*time.Second)
	require.Contains(t, out.String(), `"work_interrupted":true`)
	require.True(t, e.records()[0].WorkDoneAt.IsZero(), "interrupted work is not reported done")
}

func TestUnreachableDependenciesAndBadConfig(t *testing.T) {
	e := newEnv(t)
	r := e.run(map[string]string{"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/"})
	require.Equal(t, job.ExitBroker, r.code, r.raw)
	require.Equal(t, string(job.BrokerDown), r.log.Outcome)

	r = e.run(map[string]string{"WORK_DURATION": "forever", "RABBITMQ_HOST": "also-set"})
	require.Equal(t, job.ExitConfig, r.code, r.raw)
	require.Contains(t, r.raw, `WORK_DURATION="forever"`)
	require.Contains(t, r.raw, "RABBITMQ_URL and RABBITMQ_HOST are both set")
}

// BenchmarkProcessOneMessage runs the processor binary on one queued message with WORK_DURATION=0,
// from process start to exit (which follows the ack). It reports the median and the peak RSS over
// b.N runs (the processor's own VmHWM, from its log line). Goal: median <= 50 ms on loopback, peak RSS <= 30 MiB.
// Run: go test -run '^$' -bench ProcessOneMessage -benchtime 50x ./processor/internal/job/
func BenchmarkProcessOneMessage(b *testing.B) {
	e := newEnv(b)
	var times []time.Duration
	var peakKiB int
	for i := range b.N {
		b.StopTimer()
		e.publish(fmt.Sprint("bench-", i), `{"name":"record1","content":"content1"}`)
		cmd := e.cmd(nil)
		b.StartTimer()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		times = append(times, time.Since(start))
		require.NoError(b, err, string(out))
		var line struct {
			Outcome    string `json:"outcome"`
			PeakRSSKiB int    `json:"peak_rss_kib"`
		}
		require.NoError(b, json.Unmarshal(out, &line), string(out))
		require.Equal(b, "stored", line.Outcome)
		require.Positive(b, line.PeakRSSKiB)
		peakKiB = max(peakKiB, line.PeakRSSKiB)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(peakKiB)/1024, "peak-RSS-MiB")
}
