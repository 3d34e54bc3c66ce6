package live_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/httpapi"
	"github.com/keda-demo/keda-demo/app/internal/live"
	"github.com/keda-demo/keda-demo/app/internal/metrics"
	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// fakeCluster plays the broker, KEDA and the processor behind the page: each message sent makes
// a Job that starts, stores a record, works, succeeds and is deleted (history limits).
type fakeCluster struct {
	hub      *live.Hub
	mu       sync.Mutex
	n, taken int
	sent     []string
	// when each Job and record first went into the hub, to measure the page's lag
	putAt map[string]time.Time
}

func (f *fakeCluster) first(key string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.putAt[key]; !ok {
		f.putAt[key] = at
	}
}

func (f *fakeCluster) queueChanged(sent, taken int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.taken = f.n+sent, f.taken+taken
	f.hub.SetQueue(live.Queue{Known: true, Work: f.n - f.taken})
}

// Publish is the broker's side of POST /send: the app's real handler validated the message the
// form sent.
func (f *fakeCluster) Publish(_ context.Context, _ string, m contract.Message, _ time.Time) error {
	f.mu.Lock()
	f.sent = append(f.sent, m.Name)
	n := len(f.sent)
	f.mu.Unlock()
	f.queueChanged(1, 0)
	go f.process(n, m.Name, m.Content)
	return nil
}

func (f *fakeCluster) process(n int, name, content string) {
	created := time.Now().UTC()
	job := live.Job{Name: fmt.Sprintf("keda-demo-processor-%05d", n), State: live.JobPending, Created: created}
	f.first("job "+job.Name, time.Now())
	f.hub.PutJob(job)
	time.Sleep(150 * time.Millisecond)
	job.State = live.JobRunning
	f.hub.PutJob(job)
	f.queueChanged(0, 1)
	rec := live.Record{ID: fmt.Sprintf("id-%d", n), Name: name, Content: content, Job: job.Name, CreatedAt: created, StoredAt: time.Now().UTC()}
	f.first("record "+rec.ID, time.Now())
	f.hub.PutRecords([]live.Record{rec})
	time.Sleep(1500 * time.Millisecond)
	rec.WorkDoneAt = time.Now().UTC()
	f.hub.PutRecords([]live.Record{rec})
	job.State = live.JobSucceeded
	f.hub.PutJob(job)
	time.Sleep(200 * time.Millisecond)
	f.hub.DeleteJob(job.Name)
}

type noRecords struct{}

func (noRecords) List(context.Context, int, *mongostore.Cursor) ([]mongostore.Record, *mongostore.Cursor, error) {
	return nil, nil, nil
}

// servePage serves the app's own handler with the live page, over fake sources.
func servePage(t *testing.T, hub *live.Hub, q httpapi.Queue) string {
	t.Helper()
	up := func() bool { return true }
	h := httpapi.New(httpapi.Deps{
		Queue: q, Records: noRecords{}, Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler),
		MaxContentBytes: 1 << 20, PublishTimeout: time.Second, Ready: up, BrokerUp: up, MongoUp: up,
		Page: live.Page(), Events: hub,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { hub.Close(); srv.Close() })
	return srv.URL
}

// The page in a real browser: a burst from its form becomes Jobs and records, each record names
// its Job, work goes from running to done, and deleted Jobs stay listed.
func TestPageShowsBurstAsJobsAndRecords(t *testing.T) {
	ctx := testkit.Browser(t, 60*time.Second)
	hub := live.NewHub(live.Options{})
	hub.SetJobsStatus(live.JobsStatus{State: live.JobsWatching})
	// A surplus Job that found the queue empty: listed, matched to no record.
	hub.PutJob(live.Job{Name: "keda-demo-processor-empty", State: live.JobSucceeded, Created: time.Now().Add(-time.Minute)})
	f := &fakeCluster{hub: hub, putAt: map[string]time.Time{}}
	url := servePage(t, hub, f)

	page, err := testkit.OpenLivePage(ctx, url+"/")
	require.NoError(t, err)
	require.NoError(t, page.Send("burst", "hello from the form", 10))
	_, err = page.WaitRows(10*time.Second, func(r testkit.PageRows) bool { return len(r.Records) >= 4 })
	require.NoError(t, err)
	shot := filepath.Join(t.TempDir(), "mid-burst.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" { // the README's picture: Jobs in every state
		shot = filepath.Join("..", "..", "..", "docs", "live-page.png")
	}
	require.NoError(t, page.Screenshot(shot))

	queued, text, err := page.SendResult()
	require.NoError(t, err)
	require.Equal(t, 10, queued, text)
	rows, err := page.WaitRows(15*time.Second, func(r testkit.PageRows) bool {
		done := 0
		for _, rec := range r.Records {
			if rec.Work == "done" {
				done++
			}
		}
		return done == 10
	})
	require.NoError(t, err, "%+v", rows)

	jobs := map[string]testkit.JobRow{}
	for _, j := range rows.Jobs {
		jobs[j.Name] = j
	}
	require.Len(t, jobs, 11)
	require.Contains(t, jobs, "keda-demo-processor-empty")
	matched := map[string]string{}
	for _, rec := range rows.Records {
		require.Contains(t, jobs, rec.Job, "record %s names a Job the page lists", rec.Name)
		require.NotContains(t, matched, rec.Job, "one record per Job")
		matched[rec.Job] = rec.Name
		require.True(t, strings.HasPrefix(rec.Name, "burst-"), rec.Name)
		require.NotZero(t, rec.SeenMs)
	}
	// How long the page takes to show what went into the hub: stream, parse and redraw.
	var worstJob, worstRecord time.Duration
	f.mu.Lock()
	for _, rec := range rows.Records {
		worstRecord = max(worstRecord, time.UnixMilli(rec.SeenMs).Sub(f.putAt["record "+rec.ID]))
		worstJob = max(worstJob, time.UnixMilli(jobs[rec.Job].SeenMs).Sub(f.putAt["job "+rec.Job]))
	}
	f.mu.Unlock()
	t.Logf("page lag behind the hub, slowest of 10: job %s, record %s", worstJob, worstRecord)
	require.Less(t, worstJob, time.Second)
	require.Less(t, worstRecord, time.Second)
	require.Len(t, matched, 10)
	f.mu.Lock()
	require.ElementsMatch(t, f.sent, func() []string {
		var names []string
		for _, rec := range rows.Records {
			names = append(names, rec.Name)
		}
		return names
	}())
	f.mu.Unlock()
	require.Equal(t, "0", rows.Work, "every message was taken")
	require.Equal(t, "0", rows.Dead)
	require.Zero(t, rows.MoreJobs, "11 Jobs fit the table")
	violations, err := page.CSPViolations()
	require.NoError(t, err)
	require.Empty(t, violations, "the page keeps to its policy")
}

// Without the Jobs view the page says why, and shows the rest.
func TestPageSaysWhyJobsAreMissing(t *testing.T) {
	ctx := testkit.Browser(t, 30*time.Second)
	hub := live.NewHub(live.Options{})
	hub.SetJobsStatus(live.JobsStatus{State: live.JobsForbidden, Detail: "the app's ServiceAccount may not list Jobs in namespace demo"})
	hub.SetQueue(live.Queue{Known: true, Work: 4, DeadLetter: 2})
	url := servePage(t, hub, nil)
	page, err := testkit.OpenLivePage(ctx, url+"/")
	require.NoError(t, err)
	rows, err := page.WaitRows(5*time.Second, func(r testkit.PageRows) bool { return r.Work == "4" })
	require.NoError(t, err)
	require.Equal(t, live.JobsForbidden, rows.JobsStatus)
	require.Equal(t, "2", rows.Dead)

	hub.SetQueue(live.Queue{}) // the broker stopped answering
	_, err = page.WaitRows(5*time.Second, func(r testkit.PageRows) bool { return r.Work == "?" && r.Dead == "?" })
	require.NoError(t, err)
}
