// Package config reads the processor's environment, once, at start.
package config

import (
	"log/slog"
	"time"

	"github.com/keda-demo/keda-demo/messaging/connenv"
	"github.com/keda-demo/keda-demo/messaging/envread"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

// Config is everything the processor reads from its environment.
type Config struct {
	Broker        rabbitqueue.Broker
	Mongo         mongostore.Mongo
	WorkDuration  time.Duration
	MaxDeliveries int
	// JobName is the Kubernetes Job this run belongs to (the chart sets it through the downward
	// API); records keep it after KEDA deletes the Job. Empty outside Kubernetes.
	JobName  string
	LogLevel slog.Level
}

// Load reads and validates the environment; the error names every problem.
func Load(lookup envread.Lookup) (Config, error) {
	r := envread.NewReader(lookup)
	c := Config{
		Broker:        connenv.Broker(r),
		Mongo:         connenv.Mongo(r),
		WorkDuration:  r.Duration("WORK_DURATION", 20*time.Second, 0),
		MaxDeliveries: r.Int("MAX_DELIVERIES", 5, 1, 1000),
		JobName:       r.String("JOB_NAME", ""),
		LogLevel:      r.LogLevel(),
	}
	return c, r.Err()
}

// Requeue is what `processor requeue-dead` reads: it only moves messages between the two queues,
// so it needs the broker and nothing of MongoDB.
type Requeue struct {
	Broker   rabbitqueue.Broker
	LogLevel slog.Level
}

// LoadRequeue reads and validates the environment of requeue-dead; the error names every problem.
func LoadRequeue(lookup envread.Lookup) (Requeue, error) {
	r := envread.NewReader(lookup)
	c := Requeue{Broker: connenv.Broker(r), LogLevel: r.LogLevel()}
	return c, r.Err()
}
