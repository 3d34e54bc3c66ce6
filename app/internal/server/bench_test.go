package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

const benchMessages = 2000

// BenchmarkSendVsRawPublish measures POST /send of the app binary, run as its own process and
// connected straight to the broker, against raw amqp091-go publish+confirm (each sender on its
// own channel, one confirm in flight), with the same payload, senders and broker, in the same
// run, at 1, 4, 16 and 64 senders. It reports both rates, their ratio (goal: >= 0.8 at 16) and
// the app's CPU time (user+system, from /proc) per 1,000 requests. BENCH_APP_BIN runs another
// build of the app (e.g. an older one, for a before/after).
// Run: go test -run '^$' -bench SendVsRaw -benchtime 5x ./app/internal/server/
func BenchmarkSendVsRawPublish(b *testing.B) {
	top := contract.Topology{Queue: testkit.UniqueName(b)}
	broker := testkit.NewBroker(b, top)
	app := startAppProcess(b, broker.URL, top)
	payload := contract.Message{Name: "bench", Content: "content1"}
	purge := func() {
		ch, err := broker.Conn.Channel()
		require.NoError(b, err)
		_, err = ch.QueuePurge(top.Queue, false)
		require.NoError(b, err)
		_ = ch.Close()
	}
	for _, senders := range []int{1, 4, 16, 64} {
		b.Run("senders="+strconv.Itoa(senders), func(b *testing.B) {
			raw := rawPublisher(b, broker.URL, top.Queue, payload, senders)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
			sendURL := app.url + "/send?name=" + payload.Name + "&content=" + payload.Content
			viaHTTP := func(int) error {
				resp, err := client.Post(sendURL, "", nil)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					return fmt.Errorf("POST /send: %s", resp.Status)
				}
				return nil
			}
			parallel(b, senders, raw) // warm up both paths once
			parallel(b, senders, viaHTTP)
			purge()
			b.ResetTimer()
			var rawRates, httpRates, cpuPer1000 []float64
			for range b.N {
				rawRates = append(rawRates, benchMessages/parallel(b, senders, raw).Seconds())
				cpu0 := app.cpu(b)
				httpRates = append(httpRates, benchMessages/parallel(b, senders, viaHTTP).Seconds())
				cpuPer1000 = append(cpuPer1000, float64((app.cpu(b)-cpu0).Milliseconds())*1000/benchMessages)
				b.StopTimer()
				purge()
				b.StartTimer()
			}
			r, h := median(rawRates), median(httpRates)
			b.ReportMetric(r, "raw-msgs/s")
			b.ReportMetric(h, "http-msgs/s")
			b.ReportMetric(h/r, "ratio")
			b.ReportMetric(median(cpuPer1000), "app-cpu-ms/1000req")
		})
	}
}

// rawPublisher is the baseline: sender w publishes on its own confirm channel and waits for the
// confirm before the next message.
func rawPublisher(b *testing.B, url, q string, payload contract.Message, senders int) func(int) error {
	conn, err := amqp.Dial(url)
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close() })
	chans := make([]*rabbitqueue.ConfirmChannel, senders)
	for i := range chans {
		chans[i], err = rabbitqueue.NewConfirmChannel(conn)
		require.NoError(b, err)
	}
	return func(w int) error {
		msg, err := contract.Publishing("raw", payload, time.Now())
		if err != nil {
			return err
		}
		dc, err := chans[w].Ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, true, false, msg)
		if err != nil {
			return err
		}
		if !dc.Wait() {
			return rabbitqueue.ErrNacked
		}
		return nil
	}
}

// appProcess is the app binary serving on a free port, with FerretDB in the bench's process.
type appProcess struct {
	url string
	cmd *exec.Cmd
}

func startAppProcess(b *testing.B, brokerURL string, top contract.Topology) *appProcess {
	bin := os.Getenv("BENCH_APP_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "app")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/keda-demo/keda-demo/app/cmd/app").CombinedOutput()
		require.NoError(b, err, "go build: %s", out)
	}
	f := testkit.StartFerretDB(b)
	mongoHost, mongoPort, _ := net.SplitHostPort(f.Addr)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	addr := l.Addr().String()
	require.NoError(b, l.Close())
	cmd := exec.Command(bin)
	cmd.Env = []string{"RABBITMQ_URL=" + brokerURL, "QUEUE_NAME=" + top.Queue, "HTTP_ADDR=" + addr,
		"MONGODB_HOST=" + mongoHost, "MONGODB_PORT=" + mongoPort, "LOG_LEVEL=warn"}
	cmd.Stderr = os.Stderr
	require.NoError(b, cmd.Start())
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	a := &appProcess{url: "http://" + addr, cmd: cmd}
	require.Eventually(b, func() bool {
		resp, err := http.Get(a.url + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}, 30*time.Second, 20*time.Millisecond, "app never ready")
	return a
}

// cpu is the process's user+system CPU time so far.
func (a *appProcess) cpu(b *testing.B) time.Duration {
	d, err := testkit.ProcessCPU(a.cmd.Process.Pid)
	require.NoError(b, err)
	return d
}

// parallel sends benchMessages with the given number of senders and returns the wall time.
func parallel(b *testing.B, senders int, send func(sender int) error) time.Duration {
	var left atomic.Int64
	left.Store(benchMessages)
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := send(w); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}
