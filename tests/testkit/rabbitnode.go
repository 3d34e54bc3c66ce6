package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mrand "math/rand/v2"

	"github.com/stretchr/testify/require"
)

// RabbitNode is a RabbitMQ node of the test's own (cluster/rabbitmq-node.sh: own node name,
// ports, epmd, Erlang cookie and data folder), which a test may crash, stop, starve or freeze
// without touching the broker other packages share (Broker). It is stopped when the test ends.
type RabbitNode struct {
	t    testing.TB
	dir  string
	port int
	env  []string
	// URL is the AMQP URL (guest may log in from anywhere on this node).
	URL string
	// TLSURL is the amqps:// URL when the node was started with a TLS listener.
	TLSURL string
}

// NodeOption configures StartRabbitNode.
type NodeOption func(*RabbitNode)

// WithTLS adds a TLS listener on the next port, serving certDir's cert.pem and key.pem and
// trusting ca.pem for client certificates (none are required).
func WithTLS(certDir string) NodeOption {
	return func(b *RabbitNode) { b.env = append(b.env, "RMQ_TLS_DIR="+certDir) }
}

// StartRabbitNode starts a node on free ports and waits until it is ready (seconds under load).
// Without rabbitmq-server the test is skipped, except under CI=true, where it fails.
func StartRabbitNode(t testing.TB, opts ...NodeOption) *RabbitNode {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rabbitmq-server is required in CI for tests on a RabbitMQ node of their own: %v", err)
		}
		t.Skipf("no RabbitMQ node of the test's own: rabbitmq-server is not installed (%v)", err)
	}
	// The test's temporary folder can be too long a path for the node's Unix sockets.
	dir, err := os.MkdirTemp("", "kdemo-rmq-")
	require.NoError(t, err)
	b := &RabbitNode{t: t, dir: dir, port: freeNodePort(t)}
	for _, o := range opts {
		o(b)
	}
	b.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", b.port)
	if len(b.env) > 0 {
		b.TLSURL = fmt.Sprintf("amqps://guest:guest@127.0.0.1:%d/", b.port+1)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.logTail()
		}
		b.signal(syscall.SIGCONT) // a frozen node cannot stop
		if out, err := b.script("stop", dir); err != nil {
			t.Logf("stop RabbitMQ node: %v: %s", err, out)
		}
		_ = os.RemoveAll(dir)
	})
	b.Start()
	return b
}

// Start starts the node again after Kill9 (the data folder is kept); it is a no-op while it runs.
func (b *RabbitNode) Start() {
	b.t.Helper()
	out, err := b.script("start", b.dir, strconv.Itoa(b.port))
	require.NoError(b.t, err, "start RabbitMQ node: %s", out)
}

// logTail logs the end of the node's log, for a failed test.
func (b *RabbitNode) logTail() {
	raw, err := os.ReadFile(filepath.Join(b.dir, "log", fmt.Sprintf("kdemo-%d@localhost.log", b.port)))
	if err != nil {
		b.t.Logf("broker log: %v", err)
		return
	}
	lines := strings.Split(string(raw), "\n")
	b.t.Logf("broker log (last 60 lines):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
}

// Kill9 kills the broker's VM with SIGKILL: a crash, with no goodbye to any client. It returns
// once the VM and its wrapper script are gone, so that Start starts a new node.
func (b *RabbitNode) Kill9() {
	b.t.Helper()
	b.signal(syscall.SIGKILL)
	for _, f := range []string{"vm.pid", "node.pid"} {
		pid := b.pid(f)
		require.Eventually(b.t, func() bool { return pid == 0 || syscall.Kill(pid, 0) != nil }, 10*time.Second, 20*time.Millisecond,
			"%s %d outlived kill -9", f, pid)
	}
}

// Freeze stops the VM (SIGSTOP): connections stay open and nothing answers. Thaw resumes it.
func (b *RabbitNode) Freeze() { b.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen VM.
func (b *RabbitNode) Thaw() { b.signal(syscall.SIGCONT) }

// StopApp stops RabbitMQ inside a running VM (rabbitmqctl stop_app): clients are disconnected
// and reconnects are refused until StartApp.
func (b *RabbitNode) StopApp() { b.ctl("stop_app") }

// StartApp starts RabbitMQ again after StopApp.
func (b *RabbitNode) StartApp() { b.ctl("start_app") }

// MemoryAlarm raises (on) or clears the memory alarm: while it is raised the broker blocks every
// publishing connection (connection.blocked).
func (b *RabbitNode) MemoryAlarm(on bool) {
	if on {
		b.ctl("set_vm_memory_high_watermark", "absolute", "10MB")
	} else {
		b.ctl("set_vm_memory_high_watermark", "0.4")
	}
}

// TriggerElection makes the quorum queue's member on this node stand for leader. A single-node
// quorum queue can come back from a crash with no leader, and stay so
// (rabbitmq/rabbitmq-server#10070); this is that workaround.
func (b *RabbitNode) TriggerElection(queue string) {
	b.t.Helper()
	b.ctl("eval", fmt.Sprintf("ra:trigger_election({'%%2F_%s', node()}).", queue))
}

// Ctl runs rabbitmqctl against the node and returns its output.
func (b *RabbitNode) Ctl(args ...string) string {
	b.t.Helper()
	out, err := b.script(append([]string{"ctl", b.dir}, args...)...)
	require.NoError(b.t, err, "rabbitmqctl %v: %s", args, out)
	return out
}

func (b *RabbitNode) ctl(args ...string) { b.t.Helper(); b.Ctl(args...) }

// pid reads one of the script's PID files; 0 when there is none.
func (b *RabbitNode) pid(file string) int {
	raw, err := os.ReadFile(filepath.Join(b.dir, file))
	if err != nil {
		return 0 // not started (yet), or stopped
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(b.t, err, file)
	return pid
}

func (b *RabbitNode) signal(sig syscall.Signal) {
	b.t.Helper()
	pid := b.pid("vm.pid")
	if pid == 0 {
		return
	}
	if err := syscall.Kill(pid, sig); err != nil && sig != syscall.SIGCONT {
		b.t.Fatalf("signal %v to the broker VM %d: %v", sig, pid, err)
	}
}

func (b *RabbitNode) script(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{nodeScript()}, args...)...)
	cmd.Env = append(os.Environ(), b.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// nodeScript is cluster/rabbitmq-node.sh of this repository, the helper `task up` uses too.
func nodeScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "cluster", "rabbitmq-node.sh")
}

// freeNodePort finds a port whose neighbours the node also needs (AMQP, TLS, epmd at +10000,
// distribution at +20000) free on loopback right now.
func freeNodePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + mrand.IntN(10000)
		if portsFree(p, p+1, p+10000, p+20000) {
			return p
		}
	}
	t.Fatal("no free port set for a RabbitMQ node")
	return 0
}

func portsFree(ports ...int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}
