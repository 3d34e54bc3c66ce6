package queuedepth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/live"
)

type fakeReader struct {
	work, dead int
	err        error
}

func (f *fakeReader) Depths(context.Context) (int, int, error) { return f.work, f.dead, f.err }

func TestSampleFeedsTheGaugeAndThePage(t *testing.T) {
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kedademo_queue_messages", Help: "h"}, []string{"queue"})
	var got live.Queue
	r := &fakeReader{}
	s := &Sampler{Reader: r, Gauge: gauge, Publish: func(q live.Queue) { got = q }, Log: slog.New(slog.DiscardHandler)}

	steps := []struct {
		name   string
		reader fakeReader
		page   live.Queue
		series string // the gauge in the text format, "" for none
	}{
		{"reading", fakeReader{work: 7, dead: 2}, live.Queue{Known: true, Work: 7, DeadLetter: 2},
			"kedademo_queue_messages{queue=\"dead-letter\"} 2\nkedademo_queue_messages{queue=\"work\"} 7\n"},
		{"broker down: no stale value", fakeReader{err: errors.New("down")}, live.Queue{}, ""},
		{"back", fakeReader{work: 0, dead: 1}, live.Queue{Known: true, DeadLetter: 1},
			"kedademo_queue_messages{queue=\"dead-letter\"} 1\nkedademo_queue_messages{queue=\"work\"} 0\n"},
	}
	for _, st := range steps {
		*r = st.reader
		s.Sample(context.Background())
		require.Equal(t, st.page, got, st.name)
		want := ""
		if st.series != "" {
			want = "# HELP kedademo_queue_messages h\n# TYPE kedademo_queue_messages gauge\n" + st.series
		}
		require.NoError(t, testutil.CollectAndCompare(gauge, strings.NewReader(want)), st.name)
	}
}
