package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/config"
	"github.com/keda-demo/keda-demo/app/internal/server"
	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// app is a running app with real dependencies: RabbitMQ behind a cuttable proxy, and FerretDB.
type app struct {
	t      testing.TB
	URL    string
	Broker *testkit.Broker
	Proxy  *testkit.Proxy
	Mongo  *testkit.FerretDB
	Store  *mongostore.Store
	Cfg    config.Config
	stop   func() error
}

func startApp(t testing.TB, maxContent int) *app {
	top := contract.Topology{Queue: testkit.UniqueName(t)}
	b := testkit.NewBroker(t, top)
	brokerURL, proxy := testkit.ProxyURL(t, b.URL)
	f := testkit.StartFerretDB(t)
	mongoCfg := mongostore.Mongo{URI: f.URI(), Database: "keda_demo", Collection: "records"}
	cfg := config.Config{
		Broker:          rabbitqueue.Broker{URL: brokerURL, Topology: top},
		Mongo:           mongoCfg,
		MaxContentBytes: maxContent,
		PublishTimeout:  2 * time.Second,
		DataTimeout:     3 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		LiveChartWindow: 2 * time.Minute,
	}
	st, err := mongostore.Open(mongoCfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), l) }()
	var once sync.Once
	var runErr error
	a := &app{t: t, URL: "http://" + l.Addr().String(), Broker: b, Proxy: proxy, Mongo: f, Store: st, Cfg: cfg,
		stop: func() error { once.Do(func() { cancel(); runErr = <-done }); return runErr }}
	t.Cleanup(func() { _ = a.stop() })
	require.Eventually(t, func() bool { code, _, _ := a.do("GET", "/readyz", "", nil); return code == 200 }, 15*time.Second, 20*time.Millisecond)
	return a
}

func (a *app) do(method, path, body string, header map[string]string) (int, http.Header, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(body))
	require.NoError(a.t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, resp.Header, string(b)
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

func TestSendQueuesPersistentConfirmedMessage(t *testing.T) {
	a := startApp(t, 1<<20)
	code, _, body := a.do("POST", "/send?name=record1&content=content1", "", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	var r struct{ ID, Status string }
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.Equal(t, "queued", r.Status)

	code, _, body = a.do("POST", "/send", `{"name":"record2","content":"content2"}`, map[string]string{"Content-Type": "application/json", "Idempotency-Key": "order-42"})
	require.Equal(t, http.StatusAccepted, code, body)
	require.JSONEq(t, `{"id":"order-42","status":"queued"}`, body)

	q := a.Cfg.Broker.Topology.Queue
	a.Broker.WaitDepth(q, 2)
	d := a.Broker.Get(q)
	require.Equal(t, r.ID, d.MessageId)
	require.EqualValues(t, 2, d.DeliveryMode) // persistent
	require.Equal(t, contract.ContentType, d.ContentType)
	require.JSONEq(t, `{"name":"record1","content":"content1"}`, string(d.Body))
	require.Equal(t, "order-42", a.Broker.Get(q).MessageId)
}

// The validation cases are httpapi's unit tests; here, end to end, a refused message stays out of
// the queue and an accepted one at the size limit goes in.
func TestBadInputStaysOutOfTheQueue(t *testing.T) {
	a := startApp(t, 16)
	code, _, body := a.do("POST", "/send?name=n&content="+strings.Repeat("c", 17), "", nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
	code, _, body = a.do("POST", "/send", `{"name":"n"}`, jsonCT)
	require.Equal(t, http.StatusBadRequest, code, body)
	code, _, body = a.do("POST", "/send?name=n&content="+strings.Repeat("c", 16), "", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	a.Broker.WaitDepth(a.Cfg.Broker.Topology.Queue, 1)
	require.Equal(t, 1, a.Broker.Depth(a.Cfg.Broker.Topology.Queue))
}

func TestSendToDeletedQueueIs503(t *testing.T) {
	a := startApp(t, 1<<20)
	ch, err := a.Broker.Conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDelete(a.Cfg.Broker.Topology.Queue, false, false, false)
	require.NoError(t, err)
	code, h, body := a.do("POST", "/send?name=n&content=c", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "5", h.Get("Retry-After"))
	var e struct{ Error, Reason string }
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	require.Equal(t, "unroutable", e.Reason)
	require.NotContains(t, body, a.Cfg.Broker.Topology.Queue, "the answer names no broker detail")
	_, _, metrics := a.do("GET", "/metrics", "", nil)
	require.Contains(t, metrics, `kedademo_publish_failures_total{reason="unroutable"} 1`)
}

// The broker goes away in the middle of a burst: the app answers 503 while it is gone, never
// answers 202 for a message the broker did not take, and recovers without a restart.
func TestBrokerOutageMidBurst(t *testing.T) {
	a := startApp(t, 1<<20)
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		codes    = map[int]int{}
		wg       sync.WaitGroup
		cut      sync.Once
	)
	// 8 clients send 200 requests in all; the broker goes away once 40 have been accepted.
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				code, _, body := a.do("POST", "/send?name=burst&content=c", "", nil)
				mu.Lock()
				codes[code]++
				if code == http.StatusAccepted {
					var r struct{ ID string }
					require.NoError(t, json.Unmarshal([]byte(body), &r))
					accepted[r.ID] = true
				}
				n := len(accepted)
				mu.Unlock()
				if n >= 40 {
					cut.Do(a.Proxy.Cut)
				}
			}
		}()
	}
	wg.Wait()
	code, h, _ := a.do("POST", "/send?name=during&content=c", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "5", h.Get("Retry-After"))
	// Readiness does not flap on a dependency outage; it reports it.
	code, _, body := a.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"rabbitmq":"down"`)

	a.Proxy.Restore()
	require.Eventually(t, func() bool { c, _, _ := a.do("POST", "/send?name=after&content=c", "", nil); return c == 202 }, 15*time.Second, 50*time.Millisecond)
	require.Greater(t, codes[http.StatusServiceUnavailable], 0, "codes: %v", codes)
	require.GreaterOrEqual(t, codes[http.StatusAccepted], 40, "codes: %v", codes)
	require.Equal(t, 200, codes[http.StatusAccepted]+codes[http.StatusServiceUnavailable], "codes: %v", codes)

	// Every 202 is in the queue (plus the "after" message).
	q := a.Cfg.Broker.Topology.Queue
	inQueue := map[string]bool{}
	for {
		ch, err := a.Broker.Conn.Channel()
		require.NoError(t, err)
		d, ok, err := ch.Get(q, true)
		require.NoError(t, err)
		_ = ch.Close()
		if !ok {
			break
		}
		inQueue[d.MessageId] = true
	}
	for id := range accepted {
		require.True(t, inQueue[id], "message %s was answered 202 but is not in the queue", id)
	}
	t.Logf("burst: %v; %d in queue", codes, len(inQueue))
}

func TestDataPagesAndMongoOutage(t *testing.T) {
	a := startApp(t, 1<<20)
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 5 {
		at := base.Add(time.Duration(i) * time.Millisecond)
		_, err := a.Store.Upsert(ctx, mongostore.Record{ID: "r" + string(rune('0'+i)), Name: "n", Content: "c", CreatedAt: at, ProcessedAt: at, ProcessedBy: "p"})
		require.NoError(t, err)
	}
	code, h, body := a.do("GET", "/data?limit=2", "", nil)
	require.Equal(t, 200, code, body)
	var page []mongostore.Record
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Equal(t, []string{"r4", "r3"}, []string{page[0].ID, page[1].ID})
	link := h.Get("Link")
	require.Regexp(t, `^</data\?cursor=[A-Za-z0-9_-]+&limit=2>; rel="next"$`, link)
	next := strings.TrimPrefix(strings.Split(link, ">")[0], "<")
	var ids []string
	for next != "" {
		code, h, body = a.do("GET", next, "", nil)
		require.Equal(t, 200, code)
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		for _, r := range page {
			ids = append(ids, r.ID)
		}
		next = ""
		if l := h.Get("Link"); l != "" {
			next = strings.TrimPrefix(strings.Split(l, ">")[0], "<")
		}
	}
	require.Equal(t, []string{"r2", "r1", "r0"}, ids)

	a.Mongo.Stop()
	code, h, _ = a.do("GET", "/data", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "5", h.Get("Retry-After"))
	// /send never needs MongoDB.
	code, _, _ = a.do("POST", "/send?name=n&content=c", "", nil)
	require.Equal(t, http.StatusAccepted, code)
	a.Mongo.Start()
	require.Eventually(t, func() bool { c, _, _ := a.do("GET", "/data", "", nil); return c == 200 }, 15*time.Second, 50*time.Millisecond)
}

func TestEmptyDataIsAnArray(t *testing.T) {
	a := startApp(t, 1<<20)
	code, h, body := a.do("GET", "/data", "", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "[]\n", body)
	require.Empty(t, h.Get("Link"))
}

func TestMetricsAndHealth(t *testing.T) {
	a := startApp(t, 1<<20)
	code, _, _ := a.do("POST", "/send?name=n&content=c", "", nil)
	require.Equal(t, 202, code)
	code, _, body := a.do("GET", "/healthz", "", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"status":"ok"}`, body)
	require.Eventually(t, func() bool {
		_, _, body := a.do("GET", "/readyz", "", nil)
		return strings.Contains(body, `"mongodb":"up"`) && strings.Contains(body, `"rabbitmq":"up"`)
	}, 10*time.Second, 50*time.Millisecond)
	_, _, m := a.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`kedademo_http_requests_total{code="202",method="POST",route="/send"} 1`,
		`kedademo_publish_duration_seconds_count 1`,
		`kedademo_dependency_up{dependency="rabbitmq"} 1`,
		`kedademo_dependency_up{dependency="mongodb"} 1`,
	} {
		require.Contains(t, m, want)
	}
}

func TestShutdownReturnsPromptly(t *testing.T) {
	a := startApp(t, 1<<20)
	start := time.Now()
	require.NoError(t, a.stop())
	require.Less(t, time.Since(start), a.Cfg.ShutdownTimeout)
	_, err := http.Get(a.URL + "/healthz")
	require.Error(t, err, "still accepting after shutdown")
}

// SIGTERM while a request is in flight: the server stops accepting, but the request finishes and
// gets its answer before Run returns.
func TestShutdownFinishesInFlightRequest(t *testing.T) {
	a := startApp(t, 1<<20)
	body, w := io.Pipe()
	req, err := http.NewRequest("POST", a.URL+"/send", body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		_ = resp.Body.Close()
		answered <- resp.StatusCode
	}()
	_, err = w.Write([]byte(`{"name":"in-flight",`)) // the handler is now reading the body
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)

	stopped := make(chan error, 1)
	go func() { stopped <- a.stop() }()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("Run returned while a request was in flight")
	default:
	}
	_, err = w.Write([]byte(`"content":"finished during shutdown"}`))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Equal(t, http.StatusAccepted, <-answered)
	require.NoError(t, <-stopped)
	a.Broker.WaitDepth(a.Cfg.Broker.Topology.Queue, 1)
}
