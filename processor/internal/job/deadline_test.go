package job_test

import (
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/processor/internal/job"
)

// stallProxy forwards a loopback port to target until Stall: from then on it swallows what the
// client sends and forwards nothing, keeping the connections open: a broker that hangs without
// closing anything (no error, no reset, heartbeats lost only after tens of seconds).
type stallProxy struct {
	addr    string
	stalled atomic.Bool
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &stallProxy{addr: l.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !p.stalled.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = dst.Close()
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return p
}

func (e *env) stalledBrokerURL(t *testing.T) (string, *stallProxy) {
	u, err := url.Parse(e.broker.URL)
	require.NoError(t, err)
	p := startStallProxy(t, u.Host)
	u.Host = p.addr
	return u.String(), p
}

// A broker that stops answering while the processor waits for basic.get: at the deadline of the
// steps before the work (RUN_TIMEOUT − WORK_DURATION − 5 s) the connection is cut and the run ends
// as broker-unavailable, long before any heartbeat would notice; the message is still queued.
func TestHungBrokerIsCutAtTheSetupDeadline(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	brokerURL, proxy := e.stalledBrokerURL(t)
	start := time.Now()
	p := e.start(map[string]string{"RABBITMQ_URL": brokerURL, "PROCESSOR_FAULT": "pause-before-get", "RUN_TIMEOUT": "10s"})
	p.waitMark(t)
	proxy.stalled.Store(true) // basic.get is sent into the void
	p.wait(t, 15*time.Second)
	took := time.Since(start)

	require.Equal(t, job.ExitBroker, p.cmd.ProcessState.ExitCode(), p.output())
	require.Contains(t, p.output(), `"outcome":"broker-unavailable"`)
	require.Contains(t, p.output(), "cut at the deadline of the steps before the work")
	require.GreaterOrEqual(t, took, 5*time.Second, "not before the setup deadline")
	require.Less(t, took, 9*time.Second, "the cut, not RUN_TIMEOUT, ended it")
	e.broker.WaitDepth(e.top.Queue, 1)

	r := e.run(nil)
	require.Equal(t, job.ExitOK, r.code, r.raw)
	require.Equal(t, string(job.Stored), r.log.Outcome)
}

// A step deaf to every deadline (the fault hook hangs before basic.get) still ends the process at
// RUN_TIMEOUT, with exit 1 and the outcome run-timeout.
func TestRunTimeoutEndsAHungRun(t *testing.T) {
	e := newEnv(t)
	e.publish("m1", `{"name":"n","content":"c"}`)
	start := time.Now()
	p := e.start(map[string]string{"PROCESSOR_FAULT": "hang-before-get", "RUN_TIMEOUT": "10s"})
	p.waitMark(t)
	p.wait(t, 20*time.Second)
	took := time.Since(start)

	require.Equal(t, job.ExitFailure, p.cmd.ProcessState.ExitCode(), p.output())
	require.Contains(t, p.output(), `"outcome":"run-timeout"`)
	require.Contains(t, p.output(), "RUN_TIMEOUT=10s")
	require.GreaterOrEqual(t, took, 10*time.Second)
	require.Less(t, took, 13*time.Second)
	e.broker.WaitDepth(e.top.Queue, 1)
}

func TestRunTimeoutConfig(t *testing.T) {
	e := newEnv(t)
	r := e.run(map[string]string{"WORK_DURATION": "20s", "RUN_TIMEOUT": "25s"})
	require.Equal(t, job.ExitConfig, r.code, r.raw)
	require.Contains(t, r.raw, `RUN_TIMEOUT="25s" must be at least WORK_DURATION + 10s (30s)`)
}
