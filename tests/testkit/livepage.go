package testkit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// LivePage drives the app's live page in a browser tab (see Browser), for the page's own test
// and for the e2e alike.
type LivePage struct{ ctx context.Context }

// JobRow and RecordRow are the rows the page shows, as its data- attributes say.
type JobRow struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// SeenMs is when the row first showed (Unix ms, the browser's clock).
	SeenMs int64 `json:"seenMs"`
}

type RecordRow struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Job    string `json:"job"`
	Work   string `json:"work"` // "running" or "done"
	SeenMs int64  `json:"seenMs"`
}

// PageRows is what the page shows.
type PageRows struct {
	Jobs       []JobRow    `json:"jobs"`
	Records    []RecordRow `json:"records"`
	JobsStatus string      `json:"jobsStatus"`
	Work, Dead string
	// MoreJobs and MoreRecords are the tables' counts of the rows they do not show ("and N more").
	MoreJobs    int `json:"moreJobs"`
	MoreRecords int `json:"moreRecords"`
}

// Series is the page's chart data (window.kedaDemoLive.series()): a sample a second, T in Unix
// seconds; nil where the page did not know the value.
type Series struct {
	WindowSeconds int        `json:"windowSeconds"`
	T             []float64  `json:"t"`
	Queue         []*float64 `json:"queue"`
	Running       []*float64 `json:"running"`
	Pending       []*float64 `json:"pending"`
	RecordsPerSec []*float64 `json:"recordsPerSec"`
}

// Peak is the largest known value of a series (0 when none is known) and where it is.
func Peak(v []*float64) (peak float64, at int) {
	at = -1
	for i, x := range v {
		if x != nil && (at < 0 || *x > peak) {
			peak, at = *x, i
		}
	}
	return max(peak, 0), at
}

// RoseAndFell says whether a series went above 0 and its last sample is a known 0, after its
// peak: a burst that came and went.
func RoseAndFell(v []*float64) bool {
	peak, at := Peak(v)
	n := len(v)
	return peak > 0 && n > 0 && at < n-1 && v[n-1] != nil && *v[n-1] == 0
}

// cspScript counts the page's Content-Security-Policy violations from before its first script
// runs (the browser adds it to every new document).
const cspScript = `window.kdCSP = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.kdCSP.push(e.effectiveDirective + " blocked " + (e.blockedURI || "inline") + " at " + (e.sourceFile || "?") + ":" + e.lineNumber);
});`

// seenScript records when each Job and record row first appears, however often the tables are
// redrawn: a MutationObserver, so no poll interval adds to the measured lag.
const seenScript = `(() => {
  window.kdSeen = { jobs: {}, records: {} };
  const mark = () => {
    const now = Date.now();
    for (const tr of document.querySelectorAll("#jobs tr[data-job]")) window.kdSeen.jobs[tr.dataset.job] ??= now;
    for (const tr of document.querySelectorAll("#records tr[data-record]")) window.kdSeen.records[tr.dataset.record] ??= now;
  };
  new MutationObserver(mark).observe(document.body, { childList: true, subtree: true });
  mark();
  return true;
})()`

const rowsScript = `(() => ({
  jobs: [...document.querySelectorAll("#jobs tr[data-job]")].map((tr) => ({
    name: tr.dataset.job, state: tr.dataset.state, seenMs: window.kdSeen.jobs[tr.dataset.job] || 0 })),
  records: [...document.querySelectorAll("#records tr[data-record]")].map((tr) => ({
    id: tr.dataset.record, name: tr.cells[0].textContent, job: tr.dataset.job, work: tr.dataset.work,
    seenMs: window.kdSeen.records[tr.dataset.record] || 0 })),
  jobsStatus: document.getElementById("jobs-status").dataset.state || "",
  Work: document.getElementById("q-work").textContent,
  Dead: document.getElementById("q-dead").textContent,
  moreJobs: Number(document.getElementById("jobs-more").dataset.more || 0),
  moreRecords: Number(document.getElementById("records-more").dataset.more || 0),
}))()`

// OpenLivePage loads url and waits until the stream is live. From before the page's first script
// it counts the page's policy violations (CSPViolations).
func OpenLivePage(ctx context.Context, url string) (*LivePage, error) {
	watchCSP := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspScript})
		return err
	})
	err := chromedp.Do(ctx,
		watchCSP,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#conn.on")),
		chromedp.Evaluate[chromedp.Void](seenScript),
	)
	if err != nil {
		return nil, fmt.Errorf("open live page %s: %w", url, err)
	}
	return &LivePage{ctx: ctx}, nil
}

// Send fills the page's form and submits it: n messages named name-<stamp>-<i>.
func (p *LivePage) Send(name, content string, n int) error {
	return chromedp.Do(p.ctx,
		chromedp.SetValue(chromedp.CSS(`#send input[name=name]`), name),
		chromedp.SetValue(chromedp.CSS(`#send input[name=content]`), content),
		chromedp.SetValue(chromedp.CSS(`#send input[name=count]`), strconv.Itoa(n)),
		chromedp.Evaluate[chromedp.Void](`delete document.getElementById("send-result").dataset.done`),
		chromedp.Click(chromedp.CSS(`#send button`)),
	)
}

// SendResult waits until the form has sent everything and returns how many were queued.
func (p *LivePage) SendResult() (queued int, text string, err error) {
	err = chromedp.Do(p.ctx, chromedp.WaitReady(chromedp.CSS(`#send-result[data-done]`)))
	if err != nil {
		return 0, "", fmt.Errorf("wait for the form: %w", err)
	}
	text, err = chromedp.Run(p.ctx, chromedp.TextContent(chromedp.CSS(`#send-result`)))
	if err != nil {
		return 0, "", err
	}
	ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("send-result").dataset.ok`))
	if err != nil {
		return 0, text, err
	}
	n, err := strconv.Atoi(ok)
	return n, text, err
}

// Rows reads what the page shows now.
func (p *LivePage) Rows() (PageRows, error) {
	return chromedp.Run(p.ctx, chromedp.Evaluate[PageRows](rowsScript))
}

// Series reads the chart's series.
func (p *LivePage) Series() (Series, error) {
	return chromedp.Run(p.ctx, chromedp.Evaluate[Series](`window.kedaDemoLive.series()`))
}

// WaitSeries polls the chart's series every 250 ms until done accepts them, or ctx or timeout
// ends.
func (p *LivePage) WaitSeries(timeout time.Duration, done func(Series) bool) (Series, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := p.Series()
		if err != nil {
			return s, err
		}
		if done(s) {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("the chart did not show what was awaited within %s", timeout)
		}
		select {
		case <-p.ctx.Done():
			return s, p.ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// CSPViolations lists the page's Content-Security-Policy violations since it was opened.
func (p *LivePage) CSPViolations() ([]string, error) {
	return chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`window.kdCSP`))
}

// WaitRows polls the page every 100 ms until done accepts its rows, or ctx or timeout ends.
func (p *LivePage) WaitRows(timeout time.Duration, done func(PageRows) bool) (PageRows, error) {
	deadline := time.Now().Add(timeout)
	for {
		rows, err := p.Rows()
		if err != nil {
			return rows, err
		}
		if done(rows) {
			return rows, nil
		}
		if time.Now().After(deadline) {
			return rows, fmt.Errorf("the page did not show what was awaited within %s", timeout)
		}
		select {
		case <-p.ctx.Done():
			return rows, p.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SeenRecords is when each record row first showed (Unix ms, the browser's clock), for every
// record the page ever drew, also those its table no longer shows.
func (p *LivePage) SeenRecords() (map[string]int64, error) {
	return chromedp.Run(p.ctx, chromedp.Evaluate[map[string]int64](`window.kdSeen.records`))
}

// Memory is the page's live JavaScript heap in bytes after a garbage collection, and the number
// of elements in its document.
func (p *LivePage) Memory() (heap float64, elements int, err error) {
	err = chromedp.Do(p.ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
			return err
		}
		r, err := cdp.Call(ctx, t, runtime.GetHeapUsage, cdp.Empty{})
		heap = r.UsedSize
		return err
	}))
	if err != nil {
		return 0, 0, fmt.Errorf("heap usage: %w", err)
	}
	elements, err = chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.getElementsByTagName("*").length`))
	return heap, elements, err
}

// Screenshot saves the whole page as a PNG.
func (p *LivePage) Screenshot(path string) error {
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}
