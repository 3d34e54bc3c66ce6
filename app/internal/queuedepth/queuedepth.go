// Package queuedepth reads how many messages wait in the work and dead-letter queues, for the
// live page and for /metrics alike, so the broker is asked once per interval however many
// pages and scrapers look.
package queuedepth

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keda-demo/keda-demo/app/internal/live"
)

// Reader reads the ready-message counts of the work and dead-letter queues.
type Reader interface {
	Depths(ctx context.Context) (work, deadLetter int, err error)
}

// Sampler takes one reading and hands it on.
type Sampler struct {
	Reader Reader
	// Gauge is kedademo_queue_messages, labelled queue="work"|"dead-letter".
	Gauge *prometheus.GaugeVec
	// Publish gets every reading (the live hub's SetQueue).
	Publish func(live.Queue)
	Log     *slog.Logger

	failing bool
}

// Sample reads once. On failure the gauge's series are removed rather than left at a stale value
// (an alert on a backlog must not fire, nor stay quiet, on old data) and the page shows "unknown".
func (s *Sampler) Sample(ctx context.Context) {
	work, dead, err := s.Reader.Depths(ctx)
	if err != nil {
		if !s.failing {
			s.Log.Warn("queue depth unavailable", "error", err.Error())
		}
		s.failing = true
		s.Gauge.DeleteLabelValues("work")
		s.Gauge.DeleteLabelValues("dead-letter")
		s.Publish(live.Queue{})
		return
	}
	if s.failing {
		s.Log.Info("queue depth available again")
	}
	s.failing = false
	s.Gauge.WithLabelValues("work").Set(float64(work))
	s.Gauge.WithLabelValues("dead-letter").Set(float64(dead))
	s.Publish(live.Queue{Known: true, Work: work, DeadLetter: dead})
}
