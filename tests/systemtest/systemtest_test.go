package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

var appBin, processorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keda-demo-bin-")
	if err != nil {
		panic(err)
	}
	appBin, processorBin = filepath.Join(dir, "app"), filepath.Join(dir, "processor")
	for bin, pkg := range map[string]string{appBin: "github.com/keda-demo/keda-demo/app/cmd/app", processorBin: "github.com/keda-demo/keda-demo/processor/cmd/processor"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// stack is the app binary running against the test broker (through a cuttable proxy) and FerretDB.
type stack struct {
	t      *testing.T
	URL    string
	env    []string
	top    contract.Topology
	broker *testkit.Broker
	proxy  *testkit.Proxy
	app    *exec.Cmd
	appOut *testkit.SyncBuffer
}

func startStack(t *testing.T) *stack {
	top := contract.Topology{Queue: testkit.UniqueName(t)}
	b := testkit.NewBroker(t, top)
	u, err := url.Parse(b.URL)
	require.NoError(t, err)
	proxy := testkit.StartProxy(t, u.Host)
	f := testkit.StartFerretDB(t)
	host, port, _ := net.SplitHostPort(proxy.Addr)
	s := launch(t, top, append(mongoEnv(f), "RABBITMQ_HOST="+host, "RABBITMQ_PORT="+port, "RABBITMQ_USERNAME=guest", "RABBITMQ_PASSWORD=guest"))
	s.broker, s.proxy = b, proxy
	s.waitReady()
	return s
}

// startNodeStack is the app on a RabbitMQ node of the test's own (testkit.RabbitNode), which the
// test may crash, stop or starve, and no proxy; FerretDB as ever.
func startNodeStack(t *testing.T, rmq *testkit.RabbitNode, extra ...string) *stack {
	top := contract.Topology{Queue: testkit.UniqueName(t)}
	s := launch(t, top, append(append(mongoEnv(testkit.StartFerretDB(t)), "RABBITMQ_URL="+rmq.URL), extra...))
	s.waitReady()
	return s
}

func mongoEnv(f *testkit.FerretDB) []string {
	host, port, _ := net.SplitHostPort(f.Addr)
	return []string{"MONGODB_HOST=" + host, "MONGODB_PORT=" + port}
}

// launch starts the app binary with env (how to reach the broker and MongoDB) and returns without
// waiting for it to be ready.
func launch(t *testing.T, top contract.Topology, env []string) *stack {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	// Parts, as the chart passes them; the programs build and escape the URLs.
	s := &stack{t: t, URL: "http://" + addr, top: top, appOut: &testkit.SyncBuffer{}, env: append(env,
		"QUEUE_NAME="+top.Queue, "HTTP_ADDR="+addr, "WORK_DURATION=0", "SHUTDOWN_TIMEOUT=5s")}
	s.app = exec.Command(appBin)
	s.app.Env, s.app.Stdout, s.app.Stderr = s.env, s.appOut, s.appOut
	require.NoError(t, s.app.Start())
	t.Cleanup(func() {
		if s.app.ProcessState == nil {
			_ = s.app.Process.Kill()
			_ = s.app.Wait()
		}
		if t.Failed() {
			t.Logf("app output:\n%s", s.appOut.String())
		}
	})
	return s
}

func (s *stack) waitReady() {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}, 30*time.Second, 20*time.Millisecond, "app never ready")
}

// send POSTs a record as the tutorial's curl does and returns the status and message id.
func (s *stack) send(name, content string) (int, string) {
	resp, err := http.Post(s.URL+"/send?"+url.Values{"name": {name}, "content": {content}}.Encode(), "", nil)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var r struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r.ID
}

type record struct{ ID, Name, Content, ProcessedBy string }

func (s *stack) data() []record {
	resp, err := http.Get(s.URL + "/data?limit=1000")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, 200, resp.StatusCode)
	var recs []record
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&recs))
	return recs
}

// process runs the processor binary once, as one KEDA Job would, and returns its outcome.
func (s *stack) process() (int, string) {
	cmd := exec.Command(processorBin)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		s.t.Fatalf("processor: %v", err)
	}
	var line struct{ Outcome string }
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	_ = json.Unmarshal([]byte(lines[len(lines)-1]), &line)
	return cmd.ProcessState.ExitCode(), line.Outcome
}

// Five POSTs, the processor run five times as separate processes (one per message, as KEDA's
// Jobs run it), and GET /data holds exactly those five records. A sixth run finds the queue
// empty and exits 0.
func TestFiveMessagesFiveRuns(t *testing.T) {
	s := startStack(t)
	for i := 1; i <= 5; i++ {
		code, _ := s.send(fmt.Sprintf("record%d", i), fmt.Sprintf("content%d", i))
		require.Equal(t, http.StatusAccepted, code)
	}
	for range 5 {
		code, outcome := s.process()
		require.Equal(t, 0, code)
		require.Equal(t, "stored", outcome)
	}
	code, outcome := s.process()
	require.Equal(t, 0, code)
	require.Equal(t, "queue-empty", outcome)

	got := map[string]string{}
	for _, r := range s.data() {
		got[r.Name] = r.Content
	}
	require.Equal(t, map[string]string{
		"record1": "content1", "record2": "content2", "record3": "content3", "record4": "content4", "record5": "content5",
	}, got)

	// SIGTERM: the app stops accepting, finishes in-flight requests and exits 0 within its timeout.
	start := time.Now()
	require.NoError(t, s.app.Process.Signal(syscall.SIGTERM))
	require.NoError(t, s.app.Wait())
	require.Less(t, time.Since(start), 5*time.Second)
}

// The broker goes away in the middle of a burst: every message answered 202 ends up stored.
func TestBrokerOutageMidBurstLosesNothing(t *testing.T) {
	s := startStack(t)
	var (
		mu       sync.Mutex
		accepted []string
		refused  int
		wg       sync.WaitGroup
		cut      sync.Once
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				code, id := s.send(fmt.Sprintf("burst-%d-%d", w, i), "c")
				mu.Lock()
				if code == http.StatusAccepted {
					accepted = append(accepted, id)
				} else {
					require.Equal(t, http.StatusServiceUnavailable, code)
					refused++
				}
				n := len(accepted)
				mu.Unlock()
				if n == 10 {
					cut.Do(s.proxy.Cut)
				}
			}
		}()
	}
	wg.Wait()
	require.Greater(t, refused, 0)
	s.proxy.Restore()
	require.Eventually(t, func() bool {
		code, id := s.send("after", "c")
		ok := code == 202
		if ok {
			accepted = append(accepted, id)
		}
		return ok
	},
		20*time.Second, 50*time.Millisecond)

	for {
		code, outcome := s.process()
		require.Equal(t, 0, code, outcome)
		if outcome == "queue-empty" {
			break
		}
	}
	stored := map[string]bool{}
	for _, r := range s.data() {
		stored[r.ID] = true
	}
	for _, id := range accepted {
		require.True(t, stored[id], "message %s was answered 202 but never stored", id)
	}
	t.Logf("%d accepted, %d refused with 503, %d stored", len(accepted), refused, len(stored))
}

// `app smoke` (what helm test runs) passes once a processor stores its record, and fails with a
// clear reason when nothing processes the queue.
func TestSmoke(t *testing.T) {
	s := startStack(t)
	smoke := func(timeout string) (int, string) {
		cmd := exec.Command(appBin, "smoke", "--url", s.URL, "--timeout", timeout, "--name-prefix", "helm-test-", "--interval", "100ms")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		// Stand in for KEDA: run the processor while the smoke check polls.
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for ctx.Err() == nil && timeout != "1s" {
				s.process()
				time.Sleep(100 * time.Millisecond)
			}
		}()
		err := cmd.Wait()
		cancel()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}
	code, out := smoke("1s")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "never appeared in GET /data")

	code, out = smoke("30s")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "smoke: OK")
	var names []string
	for _, r := range s.data() {
		names = append(names, r.Name)
	}
	require.Len(t, names, 2) // the failed run's record was stored later, by the second run's processor
	for _, n := range names {
		require.True(t, strings.HasPrefix(n, "helm-test-"), n)
	}
}

// `processor requeue-dead` runs with the broker settings alone: no MONGODB_* variable at all.
func TestRequeueDeadWithoutMongoDB(t *testing.T) {
	top := contract.Topology{Queue: testkit.UniqueName(t)}
	b := testkit.NewBroker(t, top)
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbitqueue.Declare(ch, top))
	require.NoError(t, ch.Close())
	msg, err := contract.Publishing("dead-1", contract.Message{Name: "n", Content: "c"}, time.Now())
	require.NoError(t, err)
	b.PublishRaw(top.DeadLetterQueue(), msg)
	b.WaitDepth(top.DeadLetterQueue(), 1)

	cmd := exec.Command(processorBin, "requeue-dead")
	cmd.Env = []string{"RABBITMQ_URL=" + b.URL, "QUEUE_NAME=" + top.Queue}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"moved":1`)
	b.WaitDepth(top.DeadLetterQueue(), 0)
	require.Equal(t, "dead-1", b.Get(top.Queue).MessageId)
}
