package live_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/live"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// firstAbove is the index of the first sample above 0, or -1.
func firstAbove(v []*float64) int {
	for i, x := range v {
		if x != nil && *x > 0 {
			return i
		}
	}
	return -1
}

// The chart draws a burst: the backlog goes up, Jobs go pending and then running, records arrive,
// the backlog drains and the Jobs are gone, and the page's series say so, a sample a second,
// over the window the hub gave it, with no policy violation from the vendored chart library.
func TestChartDrawsABurst(t *testing.T) {
	ctx := testkit.Browser(t, 60*time.Second)
	hub := live.NewHub(live.Options{ChartWindow: 90 * time.Second})
	hub.SetJobsStatus(live.JobsStatus{State: live.JobsWatching})
	hub.SetQueue(live.Queue{Known: true})
	url := servePage(t, hub, nil)
	page, err := testkit.OpenLivePage(ctx, url+"/")
	require.NoError(t, err)
	_, err = page.WaitSeries(5*time.Second, func(s testkit.Series) bool { return len(s.T) >= 2 })
	require.NoError(t, err)

	// The burst, scripted: 20 messages, 10 Jobs at a time.
	const n, slots = 20, 10
	created := time.Now().UTC()
	job := func(i int, state string) live.Job {
		return live.Job{Name: fmt.Sprintf("keda-demo-processor-%05d", i), State: state, Created: created.Add(time.Duration(i) * time.Millisecond)}
	}
	hub.SetQueue(live.Queue{Known: true, Work: n})
	time.Sleep(1200 * time.Millisecond)
	for round := range n / slots {
		for i := round * slots; i < (round+1)*slots; i++ {
			hub.PutJob(job(i, live.JobPending))
		}
		time.Sleep(1500 * time.Millisecond)
		for i := round * slots; i < (round+1)*slots; i++ {
			hub.PutJob(job(i, live.JobRunning))
			hub.SetQueue(live.Queue{Known: true, Work: n - i - 1})
			hub.PutRecords([]live.Record{{ID: fmt.Sprintf("id-%d", i), Name: fmt.Sprintf("burst-%d", i), Content: "hello",
				Job: job(i, "").Name, CreatedAt: created, StoredAt: time.Now().UTC()}})
		}
		time.Sleep(2200 * time.Millisecond)
		for i := round * slots; i < (round+1)*slots; i++ {
			hub.PutJob(job(i, live.JobSucceeded))
			hub.DeleteJob(job(i, "").Name)
		}
	}

	s, err := page.WaitSeries(10*time.Second, func(s testkit.Series) bool {
		return testkit.RoseAndFell(s.Queue) && testkit.RoseAndFell(s.Running)
	})
	require.NoError(t, err, "%+v", s)
	require.Equal(t, 90, s.WindowSeconds, "the window the hub sent")
	require.Len(t, s.Queue, len(s.T))
	require.Len(t, s.RecordsPerSec, len(s.T))
	require.Greater(t, len(s.T), 8)
	require.InDelta(t, 1, (s.T[len(s.T)-1]-s.T[0])/float64(len(s.T)-1), 0.2, "a sample a second")
	peak, _ := testkit.Peak(s.Queue)
	require.Equal(t, float64(n), peak, "the backlog at its height")
	peak, _ = testkit.Peak(s.Running)
	require.Equal(t, float64(slots), peak, "every Job of a round ran at once")
	peak, _ = testkit.Peak(s.Pending)
	require.Equal(t, float64(slots), peak, "a round's Jobs were pending before they ran")
	require.Zero(t, *s.Pending[len(s.Pending)-1])
	recs, _ := testkit.Peak(s.RecordsPerSec)
	require.Positive(t, recs)
	total := 0.0
	for _, r := range s.RecordsPerSec {
		require.NotNil(t, r, "the stream stayed up")
		total += *r
	}
	require.Equal(t, float64(n), total, "each record counted once, when it arrived")
	// The picture reads in order: the backlog first, then Jobs pending, then running.
	require.LessOrEqual(t, firstAbove(s.Queue), firstAbove(s.Pending))
	require.LessOrEqual(t, firstAbove(s.Pending), firstAbove(s.Running))
	for _, q := range s.Queue {
		if q != nil {
			require.Zero(t, *q, "no backlog before the burst")
			break
		}
	}

	type drawing struct {
		Canvas int      `json:"canvas"`
		Legend []string `json:"legend"`
	}
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[drawing](`({
		canvas: document.querySelector("#chart canvas")?.width || 0,
		legend: [...document.querySelectorAll("#chart .u-legend .u-series .u-label")].map((l) => l.textContent),
	})`))
	require.NoError(t, err)
	require.Greater(t, drawn.Canvas, 300, "uPlot drew on a canvas the width of the page")
	require.Equal(t, []string{"work queue", "Jobs running", "Jobs pending", "records/s"}, drawn.Legend)
	violations, err := page.CSPViolations()
	require.NoError(t, err)
	require.Empty(t, violations, "the page and uPlot keep to default-src 'self'")
}

// At 1,000 messages the page stays usable: each table shows its newest 50 rows and counts the
// rest, the counts are of everything the page saw, and the newest record shows within a second
// of the hub having it.
func TestTablesShowTheNewestAndCountTheRest(t *testing.T) {
	ctx := testkit.Browser(t, 90*time.Second)
	// The hub keeps its own bounds (200 Jobs, 100 records); a roomy buffer so that the burst,
	// sent faster than any cluster would, never drops the page.
	hub := live.NewHub(live.Options{Buffer: 4096})
	hub.SetJobsStatus(live.JobsStatus{State: live.JobsWatching})
	url := servePage(t, hub, nil)
	page, err := testkit.OpenLivePage(ctx, url+"/")
	require.NoError(t, err)

	const n, batch = 1000, 25
	created := time.Now().UTC()
	var lastPut time.Time
	for b := 0; b < n; b += batch {
		var recs []live.Record
		for i := b; i < b+batch; i++ {
			j := live.Job{Name: fmt.Sprintf("keda-demo-processor-%05d", i), State: live.JobPending, Created: created.Add(time.Duration(i) * time.Millisecond)}
			hub.PutJob(j)
			j.State = live.JobRunning
			hub.PutJob(j)
			recs = append(recs, live.Record{ID: fmt.Sprintf("id-%05d", i), Name: fmt.Sprintf("m-%05d", i), Content: "x",
				Job: j.Name, CreatedAt: j.Created, StoredAt: time.Now().UTC()})
			if i < n-batch { // the last batch stays running
				j.State = live.JobSucceeded
				hub.PutJob(j)
				hub.DeleteJob(j.Name)
			}
		}
		hub.SetQueue(live.Queue{Known: true, Work: n - b - batch})
		hub.PutRecords(recs)
		lastPut = time.Now()
		time.Sleep(20 * time.Millisecond)
	}

	last := fmt.Sprintf("id-%05d", n-1)
	rows, err := page.WaitRows(10*time.Second, func(r testkit.PageRows) bool {
		return len(r.Records) > 0 && r.Records[0].ID == last && r.MoreJobs == n-50 && r.MoreRecords == n-50
	})
	require.NoError(t, err, "jobs %d (+%d), records %d (+%d)", len(rows.Jobs), rows.MoreJobs, len(rows.Records), rows.MoreRecords)
	lag := time.UnixMilli(rows.Records[0].SeenMs).Sub(lastPut)
	t.Logf("the newest of %d records showed %s after the hub had it", n, lag)
	require.Less(t, lag, time.Second)
	require.Len(t, rows.Jobs, 50)
	require.Len(t, rows.Records, 50)
	for i, r := range rows.Records {
		require.Equal(t, fmt.Sprintf("id-%05d", n-1-i), r.ID, "newest first")
	}
	for i, j := range rows.Jobs {
		require.Equal(t, fmt.Sprintf("keda-demo-processor-%05d", n-1-i), j.Name, "newest first")
	}
	require.Equal(t, "0", rows.Work)

	type tables struct {
		JobRows, RecordRows int
		MoreJobs, Records   string
		Active              string
	}
	dom, err := chromedp.Run(ctx, chromedp.Evaluate[tables](`({
		JobRows: document.querySelectorAll("#jobs tbody tr").length,
		RecordRows: document.querySelectorAll("#records tbody tr").length,
		MoreJobs: document.getElementById("jobs-more").textContent,
		Records: document.getElementById("r-count").textContent,
		Active: document.getElementById("j-active").textContent,
	})`))
	require.NoError(t, err)
	require.Equal(t, 50, dom.JobRows, "no rows beyond the newest 50")
	require.Equal(t, 50, dom.RecordRows)
	require.Equal(t, "and 950 more (the newest 50 are shown)", dom.MoreJobs)
	require.Equal(t, "1000", dom.Records, "records the page saw")
	require.Equal(t, fmt.Sprintf("%d / 0", batch), dom.Active)

	violations, err := page.CSPViolations()
	require.NoError(t, err)
	require.Empty(t, violations)
}
