// Package config reads the app's environment, once, at start.
package config

import (
	"log/slog"
	"time"

	"github.com/keda-demo/keda-demo/messaging/connenv"
	"github.com/keda-demo/keda-demo/messaging/envread"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

// Config is everything the app reads from its environment.
type Config struct {
	Broker          rabbitqueue.Broker
	Mongo           mongostore.Mongo
	HTTPAddr        string
	MaxContentBytes int
	PublishTimeout  time.Duration
	DataTimeout     time.Duration
	ShutdownTimeout time.Duration
	// LiveMaxClients bounds the live page's open streams; LiveHeartbeat is their idle beat and
	// how long one write to a client may take.
	LiveMaxClients int
	LiveHeartbeat  time.Duration
	// LiveChartWindow is how far back the live page's chart reaches.
	LiveChartWindow time.Duration
	// JobsSelector selects the ScaledJob's Jobs for the live page; empty turns that view off.
	JobsSelector string
	LogLevel     slog.Level
}

// Load reads and validates the environment; the error names every problem.
func Load(lookup envread.Lookup) (Config, error) {
	r := envread.NewReader(lookup)
	c := Config{
		Broker:          connenv.Broker(r),
		Mongo:           connenv.Mongo(r),
		HTTPAddr:        r.String("HTTP_ADDR", ":8080"),
		MaxContentBytes: r.Int("MAX_CONTENT_BYTES", 1<<20, 1, 64<<20),
		PublishTimeout:  r.Duration("PUBLISH_TIMEOUT", 5*time.Second, 100*time.Millisecond),
		DataTimeout:     r.Duration("DATA_TIMEOUT", 3*time.Second, 100*time.Millisecond),
		ShutdownTimeout: r.Duration("SHUTDOWN_TIMEOUT", 10*time.Second, 0),
		LiveMaxClients:  r.Int("LIVE_MAX_CLIENTS", 20, 1, 1000),
		LiveHeartbeat:   r.Duration("LIVE_HEARTBEAT", 15*time.Second, time.Second),
		LiveChartWindow: r.Duration("LIVE_CHART_WINDOW", 5*time.Minute, 30*time.Second),
		JobsSelector:    r.String("JOBS_SELECTOR", ""),
		LogLevel:        r.LogLevel(),
	}
	if c.LiveChartWindow > MaxLiveChartWindow {
		r.Problemf("LIVE_CHART_WINDOW=%q must be at most %s (the page keeps a sample a second)", r.String("LIVE_CHART_WINDOW", ""), MaxLiveChartWindow)
	}
	return c, r.Err()
}

// MaxLiveChartWindow bounds LIVE_CHART_WINDOW: the page keeps a sample a second of it.
const MaxLiveChartWindow = time.Hour
