//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/keda-demo/keda-demo/tests/testkit"
)

// livePageShowsJobsAndRecords: the app's live page, opened in headless Chromium through the
// Service, sends a burst of 10 from its form; 10 new Job names appear, each matched to exactly
// one of the 10 new records, whose work ends as done. It measures how long the page takes to
// show a Job after the API server has it, and a record after the processor stored it. The
// page's chart draws the burst: the work queue and the running Jobs rise and fall back to 0,
// records arrive, and the page (uPlot included) reports no policy violation.
func (e *env) livePageShowsJobsAndRecords(t *testing.T) {
	e.needRelease(t)
	const n = 10
	logs := filepath.Join(runDir, "logs")
	must(t, os.MkdirAll(logs, 0o755))
	before := e.jobNames(t)

	// When each new Job exists: a watch, so the reference time has no poll interval in it.
	list, err := e.cs.BatchV1().Jobs(namespace).List(e.ctx, metav1.ListOptions{})
	must(t, err)
	w, err := e.cs.BatchV1().Jobs(namespace).Watch(e.ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	must(t, err)
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			if j, ok := ev.Object.(metav1.Object); ok && !before[j.GetName()] {
				mu.Lock()
				if _, seen := created[j.GetName()]; !seen {
					created[j.GetName()] = time.Now()
				}
				mu.Unlock()
			}
		}
	}()

	ctx := testkit.Browser(t, 10*time.Minute) // bounds the waits below (30 s + 2 min + 4 min + 2 min)
	page, err := testkit.OpenLivePage(ctx, e.appURL+"/")
	must(t, err)
	rows, err := page.WaitRows(30*time.Second, func(r testkit.PageRows) bool { return r.JobsStatus == "watching" })
	if err != nil {
		t.Fatalf("the page's Jobs view is not watching (the app's Role and token): %q: %v", rows.JobsStatus, err)
	}
	oldRecords := map[string]bool{}
	for _, r := range rows.Records {
		oldRecords[r.ID] = true
	}

	must(t, page.Send("page", "e2e from the live page", n))
	isNew := func(r testkit.PageRows) (jobs []testkit.JobRow, recs []testkit.RecordRow) {
		for _, j := range r.Jobs {
			if !before[j.Name] {
				jobs = append(jobs, j)
			}
		}
		for _, rec := range r.Records {
			if !oldRecords[rec.ID] && strings.HasPrefix(rec.Name, "page-") {
				recs = append(recs, rec)
			}
		}
		return jobs, recs
	}
	_, err = page.WaitRows(2*time.Minute, func(r testkit.PageRows) bool { j, _ := isNew(r); return len(j) >= 3 })
	must(t, err)
	must(t, page.Screenshot(filepath.Join(logs, "live-page-mid-burst.png")))
	queued, text, err := page.SendResult()
	must(t, err)
	if queued != n {
		t.Fatalf("the form queued %d of %d: %s", queued, n, text)
	}

	rows, err = page.WaitRows(4*time.Minute, func(r testkit.PageRows) bool {
		_, recs := isNew(r)
		done := 0
		for _, rec := range recs {
			if rec.Work == "done" && rec.Job != "" {
				done++
			}
		}
		return done == n
	})
	must(t, page.Screenshot(filepath.Join(logs, "live-page-end.png")))
	if err != nil {
		t.Fatalf("the page did not show %d new records with their work done: %v\n%+v", n, err, rows)
	}
	jobs, recs := isNew(rows)
	shown := map[string]testkit.JobRow{}
	for _, j := range jobs {
		shown[j.Name] = j
	}
	byJob := map[string]string{}
	for _, rec := range recs {
		if _, ok := shown[rec.Job]; !ok {
			t.Errorf("record %s names Job %q, which the page does not list as new", rec.Name, rec.Job)
		}
		if other, dup := byJob[rec.Job]; dup {
			t.Errorf("Job %s took two records: %s and %s", rec.Job, other, rec.Name)
		}
		byJob[rec.Job] = rec.Name
	}
	if len(recs) != n || len(byJob) != n {
		t.Fatalf("want %d new records on %d distinct Jobs, got %d records on %d Jobs", n, n, len(recs), len(byJob))
	}

	// The chart: the burst as a picture, once the last Job is gone (the series start when the
	// page opened, before the burst).
	series, err := page.WaitSeries(2*time.Minute, func(s testkit.Series) bool {
		return testkit.RoseAndFell(s.Queue) && testkit.RoseAndFell(s.Running)
	})
	must(t, page.Screenshot(filepath.Join(logs, "live-page-chart.png")))
	if err != nil {
		t.Fatalf("the chart did not show the work queue and the running Jobs rise and fall back to 0: %v\nqueue %v\nrunning %v",
			err, deref(series.Queue), deref(series.Running))
	}
	queuePeak, _ := testkit.Peak(series.Queue)
	runningPeak, _ := testkit.Peak(series.Running)
	recordsPeak, _ := testkit.Peak(series.RecordsPerSec)
	if recordsPeak <= 0 {
		t.Errorf("the chart's records/s never rose: %v", deref(series.RecordsPerSec))
	}
	violations, err := page.CSPViolations()
	must(t, err)
	if len(violations) > 0 {
		t.Errorf("the page broke its Content-Security-Policy: %v", violations)
	}

	// The records as stored: the same Job names, and when the processor stored them.
	stored := e.storedRecords(t)
	var jobLags, recLags []float64
	mu.Lock()
	defer mu.Unlock()
	for _, rec := range recs {
		s, ok := stored[rec.ID]
		if !ok || s.Job != rec.Job {
			t.Errorf("record %s: stored with Job %q, the page says %q", rec.ID, s.Job, rec.Job)
			continue
		}
		recLags = append(recLags, float64(rec.SeenMs-s.ProcessedAt.UnixMilli())/1000)
		if at, ok := created[rec.Job]; ok {
			jobLags = append(jobLags, float64(shown[rec.Job].SeenMs-at.UnixMilli())/1000)
		}
	}
	if len(jobLags) != n {
		t.Errorf("the watch saw %d of the %d Jobs created", len(jobLags), n)
	}
	line := fmt.Sprintf("e2e: page_job_lag_s=%.2f page_record_lag_s=%.2f page_job_lag_median_s=%.2f page_record_lag_median_s=%.2f jobs_listed=%d chart_queue_peak=%.0f chart_running_peak=%.0f chart_records_per_s_peak=%.0f",
		maxOf(jobLags), maxOf(recLags), median(jobLags), median(recLags), len(rows.Jobs), queuePeak, runningPeak, recordsPeak)
	fmt.Println(line)
	_ = os.WriteFile(filepath.Join(runDir, "e2e-live-page.txt"), []byte(line+"\n"), 0o644)
	t.Log(line)
	// The page promises changes within 1 s; the slowest of ten may take longer while ten pods
	// start on two cores.
	if median(jobLags) > 1 || median(recLags) > 1 || maxOf(jobLags) > 2 || maxOf(recLags) > 2 {
		t.Errorf("the page shows changes too late (median over 1 s or slowest over 2 s): %s", line)
	}
}

type storedRecord struct {
	ID          string
	Job         string
	ProcessedAt time.Time
}

func (e *env) storedRecords(t *testing.T) map[string]storedRecord {
	var out map[string]storedRecord
	e.eventually("GET /data", 30*time.Second, func() (bool, error) {
		resp, err := http.Get(e.appURL + "/data?limit=1000")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var recs []storedRecord
		if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
			return false, err
		}
		out = map[string]storedRecord{}
		for _, r := range recs {
			out[r.ID] = r
		}
		return true, nil
	})
	return out
}

// deref shows a chart series with its gaps (unknown samples) as "-".
func deref(v []*float64) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		if x == nil {
			b.WriteByte('-')
		} else {
			fmt.Fprintf(&b, "%g", *x)
		}
	}
	return b.String()
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
