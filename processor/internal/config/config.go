// Package config reads the processor's environment, once, at start.
package config

import (
	"log/slog"
	"net"
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
	JobName string
	// RunTimeout bounds the whole run, from the program's start: see RunMargin.
	RunTimeout time.Duration
	// ProbeAddr is where GET /taken answers (503 until the run holds its message, 200 after);
	// empty: no endpoint.
	ProbeAddr string
	LogLevel  slog.Level
}

// RunMargin is what RUN_TIMEOUT gives a run beyond WORK_DURATION by default: RUN_TIMEOUT =
// WORK_DURATION + RunMargin. The steps before the work (ping MongoDB, connect, take, store, ack)
// must end by RUN_TIMEOUT − WORK_DURATION − WorkEndReserve after the start, so a message once taken
// always gets its whole work and WorkEndReserve to record the work's end; at RUN_TIMEOUT the program
// exits whatever it is doing. The chart refuses a Job activeDeadlineSeconds that does not exceed
// this bound (templates/_validate.tpl repeats the 60 s: the processor's one documented formula).
const RunMargin = 60 * time.Second

// WorkEndReserve is the part of RUN_TIMEOUT kept after the work for recording its end.
const WorkEndReserve = 5 * time.Second

// SetupBound is how long after the start the steps before the work may take.
func (c Config) SetupBound() time.Duration { return c.RunTimeout - c.WorkDuration - WorkEndReserve }

// Load reads and validates the environment; the error names every problem.
func Load(lookup envread.Lookup) (Config, error) {
	r := envread.NewReader(lookup)
	c := Config{
		Broker:        connenv.Broker(r),
		Mongo:         connenv.Mongo(r),
		WorkDuration:  r.Duration("WORK_DURATION", 20*time.Second, 0),
		MaxDeliveries: r.Int("MAX_DELIVERIES", 5, 1, 1000),
		JobName:       r.String("JOB_NAME", ""),
		ProbeAddr:     r.String("PROBE_ADDR", ""),
		LogLevel:      r.LogLevel(),
	}
	c.RunTimeout = r.Duration("RUN_TIMEOUT", c.WorkDuration+RunMargin, time.Second)
	// The steps before the work get at least WorkEndReserve too.
	if least := c.WorkDuration + 2*WorkEndReserve; r.Set("RUN_TIMEOUT") && c.RunTimeout < least {
		r.Problemf("RUN_TIMEOUT=%q must be at least WORK_DURATION + %s (%s): the steps before the work and the record of its end need time too",
			r.String("RUN_TIMEOUT", ""), 2*WorkEndReserve, least)
	}
	if c.ProbeAddr != "" {
		if _, port, err := net.SplitHostPort(c.ProbeAddr); err != nil || port == "" {
			r.Problemf("PROBE_ADDR=%q must be host:port or :port (e.g. :8081), or empty for no endpoint", c.ProbeAddr)
		}
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
