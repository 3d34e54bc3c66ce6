package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/httpapi"
	"github.com/keda-demo/keda-demo/app/internal/metrics"
	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// fakeQueue records what would have been published and answers with err.
// With delay set it takes that long to confirm, and fails as the real one does if its context
// ends first.
type fakeQueue struct {
	mu    sync.Mutex
	msgs  []published
	err   error
	delay time.Duration
}

// published is one call of Publish.
type published struct {
	id        string
	msg       contract.Message
	createdAt time.Time
}

func (q *fakeQueue) Publish(ctx context.Context, id string, msg contract.Message, createdAt time.Time) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("publish without a deadline")
	}
	q.mu.Lock()
	q.msgs = append(q.msgs, published{id: id, msg: msg, createdAt: createdAt})
	delay, err := q.delay, q.err
	q.mu.Unlock()
	select {
	case <-time.After(delay):
		return err
	case <-ctx.Done():
		return rabbitqueue.ErrTimeout
	}
}

func (q *fakeQueue) published() []published {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.msgs
}

// fakeRecords serves a fixed page and records how it was asked.
// With hang set it answers only when its context ends, as a frozen MongoDB does.
type fakeRecords struct {
	mu      sync.Mutex
	hang    bool
	calls   int
	limit   int
	after   *mongostore.Cursor
	records []mongostore.Record
	next    *mongostore.Cursor
	err     error
}

func (r *fakeRecords) List(ctx context.Context, limit int, after *mongostore.Cursor) ([]mongostore.Record, *mongostore.Cursor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.limit, r.after = limit, after
	if r.hang {
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		return nil, nil, fmt.Errorf("list records: %w", ctx.Err())
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return r.records, r.next, nil
}

func (r *fakeRecords) called() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type harness struct {
	blocked atomic.Bool
	h       http.Handler
	q       *fakeQueue
	r       *fakeRecords
	log     *testkit.SyncBuffer
}

func newHarness(t *testing.T, maxContent int) *harness {
	t.Helper()
	hs := &harness{q: &fakeQueue{}, r: &fakeRecords{records: []mongostore.Record{}}, log: &testkit.SyncBuffer{}}
	hs.h = httpapi.New(httpapi.Deps{
		Queue: hs.q, Records: hs.r, Metrics: metrics.New(),
		Log:             slog.New(slog.NewJSONHandler(hs.log, nil)),
		MaxContentBytes: maxContent, PublishTimeout: time.Second, DataTimeout: 200 * time.Millisecond,
		BodyAllowance: 500 * time.Millisecond, BrokerBlocked: hs.blocked.Load,
		Ready: func() bool { return true }, BrokerUp: func() bool { return true }, MongoUp: func() bool { return false },
		Now: func() time.Time { return now },
	})
	return hs
}

func (hs *harness) do(t *testing.T, method, path, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)
	return rec
}

var (
	jsonCT = map[string]string{"Content-Type": "application/json"}
	formCT = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	textCT = map[string]string{"Content-Type": "text/plain"}
)

// Every refused request is refused before it reaches the broker or the store.
func TestBadInputReachesNeitherQueueNorStore(t *testing.T) {
	long := strings.Repeat("n", 257)
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		code                     int
		field                    string
	}{
		{"no name", "POST", "/send?content=c", "", nil, 400, "name"},
		{"empty name", "POST", "/send?name=&content=c", "", nil, 400, "name"},
		{"no content", "POST", "/send?name=n", "", nil, 400, "content"},
		{"name too long", "POST", "/send?name=" + long + "&content=c", "", nil, 413, "name"},
		{"content over the limit", "POST", "/send?name=n&content=" + strings.Repeat("c", 17), "", nil, 413, "content"},
		{"invalid UTF-8 in query", "POST", "/send?name=%FF&content=c", "", nil, 400, "name"},
		{"invalid JSON", "POST", "/send", `{"name":`, jsonCT, 400, "body"},
		{"unknown JSON field", "POST", "/send", `{"name":"n","content":"c","extra":1}`, jsonCT, 400, "body"},
		{"trailing JSON", "POST", "/send", `{"name":"n","content":"c"}{}`, jsonCT, 400, "body"},
		{"JSON missing content", "POST", "/send", `{"name":"n"}`, jsonCT, 400, "content"},
		{"JSON invalid UTF-8", "POST", "/send", "{\"name\":\"\xff\",\"content\":\"c\"}", jsonCT, 400, "body"},
		{"JSON body too large", "POST", "/send", `{"name":"n","content":"` + strings.Repeat("c", 5000) + `"}`, jsonCT, 413, "body"},
		{"JSON content over the limit", "POST", "/send", `{"name":"n","content":"` + strings.Repeat("c", 17) + `"}`, jsonCT, 413, "content"},
		{"query and JSON both", "POST", "/send?name=n&content=c", `{"name":"n","content":"c"}`, jsonCT, 400, "body"},
		{"query and form body", "POST", "/send?name=n&content=c", "name=n&content=c", formCT, 400, "body"},
		{"query and a 10 MiB text body", "POST", "/send?name=n&content=c", strings.Repeat("t", 10<<20), textCT, 400, "body"},
		{"query and a body without a type", "POST", "/send?name=n&content=c", "x", nil, 400, "body"},
		{"text body alone", "POST", "/send", "name=n", textCT, 415, "body"},
		{"form body alone", "POST", "/send", "name=n&content=c", formCT, 415, "body"},
		{"malformed escape in content", "POST", "/send?name=n&content=%zz", "", nil, 400, "content"},
		{"semicolon separator", "POST", "/send?name=n;content=c", "", nil, 400, "name"},
		{"malformed cursor", "GET", "/data?cursor=%zz", "", nil, 400, "cursor"},
		{"malformed cursor after a good limit", "GET", "/data?limit=1&cursor=%zz", "", nil, 400, "cursor"},
		{"malformed parameter name", "GET", "/data?%zz=1", "", nil, 400, "%zz"},
		{"bad idempotency key", "POST", "/send?name=n&content=c", "", map[string]string{"Idempotency-Key": "has space"}, 400, "Idempotency-Key"},
		{"idempotency key too long", "POST", "/send?name=n&content=c", "", map[string]string{"Idempotency-Key": strings.Repeat("k", 201)}, 400, "Idempotency-Key"},
		{"GET /send", "GET", "/send?name=n&content=c", "", nil, 405, ""},
		{"limit 0", "GET", "/data?limit=0", "", nil, 400, "limit"},
		{"limit 1001", "GET", "/data?limit=1001", "", nil, 400, "limit"},
		{"limit not a number", "GET", "/data?limit=ten", "", nil, 400, "limit"},
		{"bad cursor", "GET", "/data?cursor=nope", "", nil, 400, "cursor"},
		{"unknown route", "GET", "/nope", "", nil, 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, 16)
			rec := hs.do(t, tc.method, tc.path, tc.body, tc.header)
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			var e struct{ Error, Field, Reason string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
			require.Equal(t, tc.field, e.Field)
			require.Empty(t, e.Reason)
			if tc.field != "" {
				require.True(t, strings.HasPrefix(e.Error, tc.field+":"), "error %q names the field", e.Error)
			}
			require.Empty(t, hs.q.published(), "a refused request was published")
			require.Zero(t, hs.r.called(), "a refused request read the store")
		})
	}
}

func TestValidSendIsPublishedOnce(t *testing.T) {
	tests := []struct {
		name, path, body string
		header           map[string]string
		wantID           string
		want             contract.Message
	}{
		{"query", "/send?name=record1&content=content1", "", nil, "", contract.Message{Name: "record1", Content: "content1"}},
		// curl -d '' sends an empty form body: still the query's message.
		{"query with an empty form body", "/send?name=record1&content=content1", "", formCT, "", contract.Message{Name: "record1", Content: "content1"}},
		{"name of 256 bytes", "/send?name=" + strings.Repeat("n", 256) + "&content=c", "", nil, "", contract.Message{Name: strings.Repeat("n", 256), Content: "c"}},
		{"content at the limit", "/send?name=n&content=" + strings.Repeat("c", 16), "", nil, "", contract.Message{Name: "n", Content: strings.Repeat("c", 16)}},
		{"JSON with idempotency key", "/send", `{"name":"n","content":"c"}`,
			map[string]string{"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": "order-42"}, "order-42", contract.Message{Name: "n", Content: "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, 16)
			rec := hs.do(t, "POST", tc.path, tc.body, tc.header)
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			var r struct{ ID, Status string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
			require.Equal(t, "queued", r.Status)
			if tc.wantID != "" {
				require.Equal(t, tc.wantID, r.ID)
			}
			msgs := hs.q.published()
			require.Len(t, msgs, 1)
			require.Equal(t, published{id: r.ID, msg: tc.want, createdAt: now}, msgs[0])
		})
	}
}

// A publish the broker did not take is a 503 with a stable reason — the metric's label — and no
// broker address; the address is in the log.
func TestPublishFailureIs503WithReason(t *testing.T) {
	const detail = "amqp://keda:***@rabbitmq.prod.svc:5672/team-prod"
	tests := []struct {
		err  error
		want rabbitqueue.Reason
	}{
		{fmt.Errorf("%w: not connected to %s", rabbitqueue.ErrUnavailable, detail), rabbitqueue.ReasonUnavailable},
		{fmt.Errorf("%w: dial %s: connection refused", rabbitqueue.ErrUnavailable, detail), rabbitqueue.ReasonUnavailable},
		{fmt.Errorf("%w (publish to %s)", rabbitqueue.ErrBlocked, detail), rabbitqueue.ReasonBlocked},
		{rabbitqueue.ErrTimeout, rabbitqueue.ReasonConfirmTimeout},
		{rabbitqueue.ErrNacked, rabbitqueue.ReasonNacked},
		{fmt.Errorf("%w (312 NO_ROUTE)", rabbitqueue.ErrReturned), rabbitqueue.ReasonUnroutable},
		{rabbitqueue.ErrConfirmLost, rabbitqueue.ReasonConfirmLost},
		{fmt.Errorf("unexpected: %s", detail), rabbitqueue.ReasonUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			hs := newHarness(t, 16)
			hs.q.err = tc.err
			rec := hs.do(t, "POST", "/send?name=n&content=c", "", nil)
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			require.Equal(t, "5", rec.Header().Get("Retry-After"))
			var e struct{ Error, Reason string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
			require.Equal(t, string(tc.want), e.Reason)
			require.Equal(t, "message not queued: "+tc.want.Sentence(), e.Error)
			for _, secret := range []string{"rabbitmq.prod.svc", "team-prod", "5672", "keda"} {
				require.NotContains(t, rec.Body.String(), secret)
			}
			require.Len(t, hs.q.published(), 1)
			logged, err := json.Marshal(tc.err.Error())
			require.NoError(t, err)
			require.Contains(t, hs.log.String(), `"error":`+string(logged), "the detail is logged")
			require.Contains(t, hs.log.String(), `"reason":"`+string(tc.want)+`"`)

			m := hs.do(t, "GET", "/metrics", "", nil).Body.String()
			for _, r := range rabbitqueue.Reasons {
				n := 0
				if r == tc.want {
					n = 1
				}
				require.Contains(t, m, fmt.Sprintf(`kedademo_publish_failures_total{reason=%q} %d`, r, n))
			}
		})
	}
}

func TestDataPagesThroughTheStore(t *testing.T) {
	hs := newHarness(t, 16)
	at := now.Add(-time.Minute)
	hs.r.records = []mongostore.Record{{ID: "r1", Name: "n", Content: "c", CreatedAt: at, ProcessedAt: now, ProcessedBy: "p"}}
	hs.r.next = &mongostore.Cursor{CreatedAt: at, ID: "r1"}
	rec := hs.do(t, "GET", "/data?limit=1", "", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, 1, hs.r.limit)
	require.Nil(t, hs.r.after)
	var page []mongostore.Record
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
	require.Equal(t, hs.r.records, page)
	link := rec.Header().Get("Link")
	require.Equal(t, `</data?cursor=`+hs.r.next.String()+`&limit=1>; rel="next"`, link)

	// Following the link asks the store for the page after the cursor.
	next := strings.TrimPrefix(strings.Split(link, ">")[0], "<")
	hs.r.next = nil
	rec = hs.do(t, "GET", next, "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, &mongostore.Cursor{CreatedAt: at, ID: "r1"}, hs.r.after)
	require.Empty(t, rec.Header().Get("Link"))

	// Defaults: 100 records, and an empty store is an empty array.
	hs.r.records = []mongostore.Record{}
	rec = hs.do(t, "GET", "/data", "", nil)
	require.Equal(t, 100, hs.r.limit)
	require.Equal(t, "[]\n", rec.Body.String())
}

func TestDataStoreFailureIs503(t *testing.T) {
	hs := newHarness(t, 16)
	hs.r.err = errors.New("list records: server selection error: mongodb.prod.svc:27017")
	rec := hs.do(t, "GET", "/data", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	require.NotContains(t, rec.Body.String(), "mongodb.prod.svc")
	require.Contains(t, hs.log.String(), "mongodb.prod.svc")
}

func TestHealthAndReadiness(t *testing.T) {
	hs := newHarness(t, 16)
	rec := hs.do(t, "GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
	rec = hs.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"status":"ready","rabbitmq":"up","mongodb":"down"}`, rec.Body.String())
	m := hs.do(t, "GET", "/metrics", "", nil).Body.String()
	require.Contains(t, m, `kedademo_http_requests_total{code="200",method="GET",route="/readyz"} 1`)
}
