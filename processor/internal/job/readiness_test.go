package job_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/processor/internal/job"
)

// beforeGetMark is what PROCESSOR_FAULT=pause-before-get / hang-before-get print on stderr right
// before basic.get (hook_faultinject.go).
const beforeGetMark = "faultinject: before basic.get"

// freeAddr is a loopback address nothing listens on (a port the kernel just gave out and took back).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// started is a processor run in the background.
type started struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer // stdout and stderr, complete once done is closed
	mu     sync.Mutex
	marked chan struct{} // closed when the before-get mark was printed
	done   chan struct{} // closed when the process exited
}

// start runs the processor with extra vars, noticing the fault hook's mark on stderr.
func (e *env) start(extra map[string]string) *started {
	e.t.Helper()
	s := &started{cmd: e.cmd(extra), out: &bytes.Buffer{}, marked: make(chan struct{}), done: make(chan struct{})}
	s.cmd.Stdout = &lockedWriter{s: s}
	stderr, err := s.cmd.StderrPipe()
	require.NoError(e.t, err)
	require.NoError(e.t, s.cmd.Start())
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			_, _ = (&lockedWriter{s: s}).Write([]byte(line + "\n"))
			if line == beforeGetMark {
				once.Do(func() { close(s.marked) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-copied // Wait closes the pipe: read it to the end first
		_ = s.cmd.Wait()
		close(s.done)
	}()
	e.t.Cleanup(func() { _ = s.cmd.Process.Kill(); <-s.done })
	return s
}

type lockedWriter struct{ s *started }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(p)
}

func (s *started) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *started) wait(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(within):
		t.Fatalf("the processor still runs after %s:\n%s", within, s.output())
	}
}

func (s *started) waitMark(t *testing.T) {
	t.Helper()
	select {
	case <-s.marked:
	case <-s.done:
		t.Fatalf("the processor exited before basic.get:\n%s", s.output())
	case <-time.After(20 * time.Second):
		t.Fatalf("no %q:\n%s", beforeGetMark, s.output())
	}
}

var probeClient = &http.Client{Timeout: time.Second}

// taken asks GET /taken once, as the kubelet does; 0 when nothing answers.
func taken(url string) int {
	resp, err := probeClient.Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestTakenOnlyOnceTheMessageIsHeld: the readiness endpoint answers 503 until basic.get returned
// the message, then 200 until the process ends. KEDA (pendingPodConditions [Ready]) counts the Job
// as pending exactly while its message is still in the ready count it reads.
func TestTakenOnlyOnceTheMessageIsHeld(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	addr := freeAddr(t)
	url := "http://" + addr + "/taken"
	p := e.start(map[string]string{"PROBE_ADDR": addr, "PROCESSOR_FAULT": "pause-before-get", "WORK_DURATION": "2s"})

	p.waitMark(t)
	require.Equal(t, http.StatusServiceUnavailable, taken(url), "before basic.get")
	require.Equal(t, 1, e.broker.Depth(e.top.Queue), "the message is still ready")

	require.Eventually(t, func() bool { return taken(url) == http.StatusOK }, 10*time.Second, 10*time.Millisecond, p.output())
	require.Equal(t, 0, e.broker.Depth(e.top.Queue), "200 only once the message has left the ready count")

	// From then on 200, through the store, the ack and the work, until the process ends.
	var after []int
	for {
		select {
		case <-p.done:
		default:
			if code := taken(url); code != 0 {
				after = append(after, code)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		break
	}
	require.NotEmpty(t, after)
	for _, code := range after {
		require.Equal(t, http.StatusOK, code, "readiness went back after the message was taken: %v", after)
	}
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), p.output())
	require.Contains(t, p.output(), `"outcome":"stored"`)
	require.Len(t, e.records(), 1)
	require.Zero(t, taken(url), "the endpoint is shut down with the process")
}

// TestTakenNeverForAnEmptyQueue: a Job that finds the queue empty never turns Ready, so KEDA counts
// it as pending (not as one that took a message) until it is gone.
func TestTakenNeverForAnEmptyQueue(t *testing.T) {
	e := newEnv(t)
	addr := freeAddr(t)
	url := "http://" + addr + "/taken"
	p := e.start(map[string]string{"PROBE_ADDR": addr, "PROCESSOR_FAULT": "pause-before-get"})
	p.waitMark(t)
	var seen []int
	for {
		select {
		case <-p.done:
		default:
			if code := taken(url); code != 0 {
				seen = append(seen, code)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		break
	}
	require.NotEmpty(t, seen)
	for _, code := range seen {
		require.Equal(t, http.StatusServiceUnavailable, code, "seen: %v", seen)
	}
	require.Equal(t, job.ExitOK, p.cmd.ProcessState.ExitCode(), p.output())
	require.Contains(t, p.output(), `"outcome":"queue-empty"`)
}

// Without PROBE_ADDR there is no endpoint, so processors side by side on one host (this test, the
// system test, a developer's shell) never compete for a port; the chart sets it in the pod.
func TestNoProbeByDefault(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	e.publish("m2", `{"name":"n","content":"c"}`)
	var wg sync.WaitGroup
	runs := make([]run, 2)
	for i := range runs {
		wg.Go(func() { runs[i] = e.run(map[string]string{"LOG_LEVEL": "debug"}) })
	}
	wg.Wait()
	for _, r := range runs {
		require.Equal(t, job.ExitOK, r.code, r.raw)
		require.NotContains(t, r.raw, "readiness endpoint")
	}
	require.Len(t, e.records(), 2)
}

// PROBE_ADDR set but not bindable is a configuration error, reported before the queue is touched.
func TestBusyProbeAddrIsAConfigError(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = busy.Close() }()
	r := e.run(map[string]string{"PROBE_ADDR": busy.Addr().String()})
	require.Equal(t, job.ExitConfig, r.code, r.raw)
	require.Contains(t, r.raw, "PROBE_ADDR=")
	require.True(t, strings.Contains(r.raw, "address already in use"), r.raw)
	require.Equal(t, 1, e.broker.Depth(e.top.Queue), "the message is untouched")

	r = e.run(map[string]string{"PROBE_ADDR": "8081"})
	require.Equal(t, job.ExitConfig, r.code, r.raw)
	require.Contains(t, r.raw, `PROBE_ADDR="8081" must be host:port or :port`)
}
