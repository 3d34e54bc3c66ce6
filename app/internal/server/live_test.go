package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/live"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
)

// events reads the live stream until want accepts an event, within the deadline.
func waitEvent(t *testing.T, lines *bufio.Scanner, want func(name, data string) bool) {
	t.Helper()
	name := ""
	for lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if want(name, strings.TrimPrefix(line, "data: ")) {
				return
			}
		}
	}
	t.Fatalf("stream ended before the event came: %v", lines.Err())
}

// The live stream through the real app: queue depths from the broker, records from MongoDB, no
// Jobs outside a cluster (httpapi tests that the stream is exempt from the routes' deadlines).
func TestLiveStreamFollowsQueueAndRecords(t *testing.T) {
	a := startApp(t, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 1<<20), 1<<20)

	waitEvent(t, lines, func(name, data string) bool {
		var s live.Snapshot
		if name != live.EventSnapshot || json.Unmarshal([]byte(data), &s) != nil {
			return false
		}
		for _, secret := range []string{"amqp://", "mongodb://", "guest", a.Cfg.Mongo.URI} {
			require.NotContains(t, data, secret, "the page never gets a connection string")
		}
		require.Equal(t, live.JobsDisabled, s.JobsStatus.State, "no Jobs view outside a cluster")
		require.Equal(t, 120, s.Chart.WindowSeconds, "LIVE_CHART_WINDOW reaches the page")
		return true
	})
	code, _, body := a.do("POST", "/send", `{"name":"n1","content":"c1"}`, jsonCT)
	require.Equal(t, http.StatusAccepted, code, body)
	waitEvent(t, lines, func(name, data string) bool {
		var q live.Queue
		return name == live.EventQueue && json.Unmarshal([]byte(data), &q) == nil && q.Known && q.Work == 1
	})

	now := time.Now().UTC().Truncate(time.Millisecond)
	_, err = a.Store.Upsert(context.Background(), mongostore.Record{ID: "r1", Name: "n1", Content: strings.Repeat("x", 1000),
		CreatedAt: now.Add(-time.Second), ProcessedAt: now, Job: "keda-demo-processor-abcde"})
	require.NoError(t, err)
	stored := time.Now()
	var got live.Record
	waitEvent(t, lines, func(name, data string) bool {
		return name == live.EventRecord && json.Unmarshal([]byte(data), &got) == nil && got.ID == "r1"
	})
	lag := time.Since(stored)
	t.Logf("a stored record reached the stream after %s (records are read every 500 ms)", lag)
	require.Less(t, lag, time.Second)
	require.Equal(t, "keda-demo-processor-abcde", got.Job)
	require.True(t, got.WorkDoneAt.IsZero())
	require.Less(t, len(got.Content), 300, "the page gets a bounded part of the content")

	require.NoError(t, a.Store.WorkDone(context.Background(), "r1", now.Add(20*time.Second)))
	waitEvent(t, lines, func(name, data string) bool {
		return name == live.EventRecord && json.Unmarshal([]byte(data), &got) == nil && got.ID == "r1" && !got.WorkDoneAt.IsZero()
	})

	// Shutdown ends the open stream instead of waiting for it.
	start := time.Now()
	require.NoError(t, a.stop())
	require.Less(t, time.Since(start), a.Cfg.ShutdownTimeout)
}

func TestLivePageIsServed(t *testing.T) {
	a := startApp(t, 1<<20)
	for path, want := range map[string]string{
		"/": "<title>keda-demo: live</title>", "/live.js": "EventSource", "/live.css": ".counts",
		"/vendor/uplot.js": "/*! uPlot ", "/vendor/uplot.css": ".uplot",
	} {
		code, h, body := a.do("GET", path, "", nil)
		require.Equal(t, http.StatusOK, code, path)
		require.Contains(t, body, want, path)
		require.Contains(t, h.Get("Content-Security-Policy"), "default-src 'self'", path)
		require.NotContains(t, body, "amqp://", path)
	}
	// Read from the broker within a sampling period or two (the first may precede the declaration).
	require.Eventually(t, func() bool {
		_, _, body := a.do("GET", "/metrics", "", nil)
		return strings.Contains(body, `kedademo_queue_messages{queue="work"} 0`) &&
			strings.Contains(body, `kedademo_queue_messages{queue="dead-letter"} 0`)
	}, 5*time.Second, 100*time.Millisecond)
}
