package server_test

import (
	"context"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/queue"
)

const (
	benchMessages    = 2000
	benchConcurrency = 16
)

// BenchmarkSendVsRawPublish measures POST /send through the real Echo stack and the app's
// confirmed publisher against raw amqp091-go publish+confirm (one confirm channel per worker),
// with the same payload, concurrency and broker, in the same run. It reports both rates and their
// ratio (goal: >= 0.8). Run: go test -run '^$' -bench SendVsRaw -benchtime 3x ./app/internal/server/
func BenchmarkSendVsRawPublish(b *testing.B) {
	a := startApp(b, 1<<20)
	payload := contract.Message{Name: "bench", Content: "content1"}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency}}
	url := a.URL + "/send?name=" + payload.Name + "&content=" + payload.Content

	raw := func() time.Duration {
		conn, err := amqp.Dial(a.Broker.URL)
		require.NoError(b, err)
		defer conn.Close()
		chans := make([]*queue.ConfirmChannel, benchConcurrency)
		for i := range chans {
			chans[i], err = queue.NewConfirmChannel(conn)
			require.NoError(b, err)
		}
		return parallel(b, func(w int) error {
			msg, err := contract.Publishing("raw", payload, time.Now())
			if err != nil {
				return err
			}
			dc, err := chans[w].Ch.PublishWithDeferredConfirmWithContext(context.Background(), "", a.Cfg.Broker.Topology.Queue, true, false, msg)
			if err != nil {
				return err
			}
			if !dc.Wait() {
				return queue.ErrNacked
			}
			return nil
		})
	}
	viaHTTP := func() time.Duration {
		return parallel(b, func(int) error {
			resp, err := client.Post(url, "", nil)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				return &statusError{resp.StatusCode}
			}
			return nil
		})
	}
	purge := func() {
		ch, err := a.Broker.Conn.Channel()
		require.NoError(b, err)
		_, err = ch.QueuePurge(a.Cfg.Broker.Topology.Queue, false)
		require.NoError(b, err)
		_ = ch.Close()
	}
	raw() // warm up both paths once
	viaHTTP()
	purge()
	b.ResetTimer()
	var rawRates, httpRates []float64
	for range b.N {
		rawRates = append(rawRates, benchMessages/raw().Seconds())
		httpRates = append(httpRates, benchMessages/viaHTTP().Seconds())
		b.StopTimer()
		purge()
		b.StartTimer()
	}
	r, h := median(rawRates), median(httpRates)
	b.ReportMetric(r, "raw-msgs/s")
	b.ReportMetric(h, "http-msgs/s")
	b.ReportMetric(h/r, "ratio")
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// parallel sends benchMessages with benchConcurrency workers and returns the wall time.
func parallel(b *testing.B, send func(worker int) error) time.Duration {
	var left atomic.Int64
	left.Store(benchMessages)
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for w := range benchConcurrency {
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
