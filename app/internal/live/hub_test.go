package live

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stream is one client of a test server, reading events as the browser's EventSource does.
type stream struct {
	resp   *http.Response
	lines  *bufio.Scanner
	cancel context.CancelFunc
}

type event struct {
	name, data string
	comment    bool
}

func connect(t *testing.T, url string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	s := &stream{resp: resp, lines: bufio.NewScanner(resp.Body), cancel: cancel}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	return s
}

// next returns the next event or comment; the request's deadline bounds it.
func (s *stream) next(t *testing.T) event {
	t.Helper()
	var ev event
	for s.lines.Scan() {
		line := s.lines.Text()
		switch {
		case line == "":
			if ev.name != "" || ev.comment {
				return ev
			}
		case strings.HasPrefix(line, ":"):
			ev.comment = true
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("stream ended: %v", s.lines.Err())
	return ev
}

// nextEvent skips comments.
func (s *stream) nextEvent(t *testing.T) event {
	t.Helper()
	for {
		if ev := s.next(t); !ev.comment {
			return ev
		}
	}
}

func decode[T any](t *testing.T, ev event) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(ev.data), &v), ev.data)
	return v
}

func serve(t *testing.T, h *Hub) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return srv
}

func TestStreamSendsSnapshotThenChanges(t *testing.T) {
	h := NewHub(Options{})
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.SetQueue(Queue{Known: true, Work: 3})
	h.PutJob(Job{Name: "old", State: JobSucceeded, Created: t0})
	h.PutRecords([]Record{{ID: "r0", Name: "n0", Job: "old", CreatedAt: t0, StoredAt: t0.Add(time.Second)}})
	s := connect(t, serve(t, h).URL)
	require.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))

	snap := decode[Snapshot](t, s.nextEvent(t))
	require.Equal(t, Chart{WindowSeconds: 300}, snap.Chart, "the chart's window, 5 minutes unless set")
	require.Equal(t, Queue{Known: true, Work: 3}, snap.Queue)
	require.Equal(t, JobsStatus{State: JobsStarting}, snap.JobsStatus)
	require.Len(t, snap.Jobs, 1)
	require.Equal(t, "old", snap.Jobs[0].Name)
	require.Len(t, snap.Records, 1)
	require.Equal(t, "old", snap.Records[0].Job)

	j := Job{Name: "new", State: JobPending, Created: t0.Add(time.Minute)}
	steps := []struct {
		change func()
		event  string
		check  func(event)
	}{
		{func() { h.SetQueue(Queue{Known: true, Work: 3}) }, "", nil}, // unchanged: nothing sent
		{func() { h.SetQueue(Queue{Known: true, Work: 1, DeadLetter: 2}) }, EventQueue, func(ev event) {
			require.Equal(t, Queue{Known: true, Work: 1, DeadLetter: 2}, decode[Queue](t, ev))
		}},
		{func() { h.SetJobsStatus(JobsStatus{State: JobsWatching}) }, EventJobsStatus, func(ev event) {
			require.Equal(t, JobsWatching, decode[JobsStatus](t, ev).State)
		}},
		{func() { h.PutJob(j) }, EventJob, func(ev event) { require.Equal(t, j, decode[Job](t, ev)) }},
		{func() { h.PutJob(j) }, "", nil},
		{func() { j.State = JobRunning; h.PutJob(j) }, EventJob, func(ev event) {
			require.Equal(t, JobRunning, decode[Job](t, ev).State)
		}},
		{func() { h.DeleteJob("new") }, EventJob, func(ev event) {
			got := decode[Job](t, ev)
			require.True(t, got.Deleted)
			require.Equal(t, JobRunning, got.State, "a deleted Job keeps its last state")
		}},
		{func() { h.DeleteJob("new"); h.DeleteJob("never-seen") }, "", nil},
		{func() {
			h.PutRecords([]Record{{ID: "r0", Name: "n0", Job: "old", CreatedAt: t0, StoredAt: t0.Add(time.Second)}})
		}, "", nil},
		{func() {
			h.PutRecords([]Record{{ID: "r0", Name: "n0", Job: "old", CreatedAt: t0, StoredAt: t0.Add(time.Second), WorkDoneAt: t0.Add(21 * time.Second)}})
		}, EventRecord, func(ev event) {
			require.Equal(t, t0.Add(21*time.Second), decode[Record](t, ev).WorkDoneAt)
		}},
	}
	for i, st := range steps {
		st.change()
		if st.event == "" {
			continue
		}
		ev := s.nextEvent(t)
		require.Equal(t, st.event, ev.name, "step %d", i)
		st.check(ev)
	}
	// A closing marker proves the no-op steps sent nothing in between.
	h.SetQueue(Queue{})
	require.Equal(t, EventQueue, s.nextEvent(t).name)
}

func TestStreamRefusesClientsAboveTheLimit(t *testing.T) {
	h := NewHub(Options{MaxClients: 2})
	srv := serve(t, h)
	a := connect(t, srv.URL)
	b := connect(t, srv.URL)
	require.Equal(t, http.StatusOK, a.resp.StatusCode)
	require.Equal(t, http.StatusOK, b.resp.StatusCode)
	a.nextEvent(t) // the snapshot: both are registered
	b.nextEvent(t)

	c := connect(t, srv.URL)
	require.Equal(t, http.StatusServiceUnavailable, c.resp.StatusCode)
	require.Equal(t, "5", c.resp.Header.Get("Retry-After"))

	a.cancel() // a client that goes away frees its place
	require.Eventually(t, func() bool { return h.Clients() == 1 }, 5*time.Second, 10*time.Millisecond)
	d := connect(t, srv.URL)
	require.Equal(t, http.StatusOK, d.resp.StatusCode)
	require.Equal(t, EventSnapshot, d.nextEvent(t).name)
}

func TestStreamSendsHeartbeatsWhenIdle(t *testing.T) {
	h := NewHub(Options{Heartbeat: 30 * time.Millisecond})
	s := connect(t, serve(t, h).URL)
	require.Equal(t, EventSnapshot, s.nextEvent(t).name)
	require.True(t, s.next(t).comment)
	require.True(t, s.next(t).comment)
}

// blockingWriter is a client that stopped reading: every write after the first blocks.
type blockingWriter struct {
	header  http.Header
	mu      sync.Mutex
	writes  int
	release chan struct{}
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	n := w.writes
	w.mu.Unlock()
	if n > 1 {
		<-w.release
	}
	return len(b), nil
}

func TestSlowClientIsDroppedAndOthersKeepTheirEvents(t *testing.T) {
	h := NewHub(Options{Buffer: 2})
	srv := serve(t, h)
	fast := connect(t, srv.URL)
	fast.nextEvent(t)

	slow := &blockingWriter{header: http.Header{}, release: make(chan struct{})}
	done := make(chan struct{})
	req := httptest.NewRequest(http.MethodGet, "/events", nil)
	go func() { defer close(done); h.ServeHTTP(slow, req) }()
	require.Eventually(t, func() bool { return h.Clients() == 2 }, 5*time.Second, 5*time.Millisecond)

	for i := range 10 {
		h.SetQueue(Queue{Known: true, Work: i + 1})
		require.Equal(t, i+1, decode[Queue](t, fast.nextEvent(t)).Work, "the fast client misses nothing")
	}
	require.Equal(t, 1, h.Clients(), "the client that fell behind is dropped")
	close(slow.release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the dropped client's handler did not return")
	}
}

func TestCloseEndsStreams(t *testing.T) {
	h := NewHub(Options{})
	srv := serve(t, h)
	s := connect(t, srv.URL)
	s.nextEvent(t)
	h.Close()
	for s.lines.Scan() { // reads to the end; the request's deadline fails a stream that stays open
	}
	require.NoError(t, s.lines.Err())
	require.Equal(t, http.StatusServiceUnavailable, connect(t, srv.URL).resp.StatusCode)
}

func TestViewIsBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := NewHub(Options{MaxJobs: 2, MaxRecords: 2})
	h.PutJob(Job{Name: "a", Created: t0})
	h.PutJob(Job{Name: "b", Created: t0.Add(time.Second)})
	h.DeleteJob("b")
	h.PutJob(Job{Name: "c", Created: t0.Add(2 * time.Second)})
	for i, id := range []string{"r1", "r2", "r3"} {
		h.PutRecords([]Record{{ID: id, CreatedAt: t0.Add(time.Duration(i) * time.Second)}})
	}
	snap := h.Snapshot()
	var jobs, records []string
	for _, j := range snap.Jobs {
		jobs = append(jobs, j.Name)
	}
	for _, r := range snap.Records {
		records = append(records, r.ID)
	}
	require.Equal(t, []string{"c", "a"}, jobs, "a deleted Job leaves before an older live one")
	require.Equal(t, []string{"r3", "r2"}, records)
}

func TestSnapshotCarriesTheChartWindow(t *testing.T) {
	require.Equal(t, Chart{WindowSeconds: 90}, NewHub(Options{ChartWindow: 90 * time.Second}).Snapshot().Chart)
}
