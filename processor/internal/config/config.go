// Package config reads the processor's environment, once, at start.
package config

import (
	"log/slog"
	"time"

	"github.com/keda-demo/keda-demo/messaging/connenv"
	"github.com/keda-demo/keda-demo/messaging/envconfig"
	"github.com/keda-demo/keda-demo/messaging/queue"
	"github.com/keda-demo/keda-demo/messaging/store"
)

// Config is everything the processor reads from its environment.
type Config struct {
	Broker        queue.Broker
	Mongo         store.Mongo
	WorkDuration  time.Duration
	MaxDeliveries int
	LogLevel      slog.Level
}

// Load reads and validates the environment; the error names every problem.
func Load(lookup envconfig.Lookup) (Config, error) {
	r := envconfig.NewReader(lookup)
	c := Config{
		Broker:        connenv.Broker(r),
		Mongo:         connenv.Mongo(r),
		WorkDuration:  r.Duration("WORK_DURATION", 20*time.Second, 0),
		MaxDeliveries: r.Int("MAX_DELIVERIES", 5, 1, 1000),
		LogLevel:      r.LogLevel(),
	}
	return c, r.Err()
}
