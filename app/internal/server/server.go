// Package server runs the app: it wires the publisher, the store and the HTTP API, keeps the
// dependency state current, and shuts down gracefully on SIGTERM.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keda-demo/keda-demo/app/internal/config"
	"github.com/keda-demo/keda-demo/app/internal/httpapi"
	"github.com/keda-demo/keda-demo/app/internal/jobwatch"
	"github.com/keda-demo/keda-demo/app/internal/live"
	"github.com/keda-demo/keda-demo/app/internal/metrics"
	"github.com/keda-demo/keda-demo/app/internal/queuedepth"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

// mongoCheckInterval is how often MongoDB is pinged for /readyz and the dependency gauge.
const mongoCheckInterval = 5 * time.Second

// The live page's sources are read at these rates, however many pages are open: under the 1 s
// the page promises, and one broker and one MongoDB query per period.
const (
	depthInterval   = time.Second
	recordsInterval = 500 * time.Millisecond
	// liveRecords is how many of the newest records the page follows.
	liveRecords = 100
)

// Run serves on l (or on cfg.HTTPAddr when l is nil) until ctx ends, then stops accepting,
// finishes in-flight requests within cfg.ShutdownTimeout and returns.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, l net.Listener) error {
	m := metrics.New()
	st, err := mongostore.Open(cfg.Mongo)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.Background()) }()

	pub := rabbitqueue.NewPublisher(cfg.Broker, log)
	var brokerUp, mongoUp atomic.Bool
	pub.OnState = func(up bool) {
		brokerUp.Store(up)
		m.DependencyUp.WithLabelValues("rabbitmq").Set(gauge(up))
	}
	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); pub.Run(bg) }()
	go watchMongo(bg, st, log, func(up bool) {
		mongoUp.Store(up)
		m.DependencyUp.WithLabelValues("mongodb").Set(gauge(up))
	})

	hub := live.NewHub(live.Options{MaxClients: cfg.LiveMaxClients, Heartbeat: cfg.LiveHeartbeat, MaxRecords: liveRecords,
		ChartWindow: cfg.LiveChartWindow, Log: log})
	depth := &queuedepth.AMQP{
		Dial:  func() (*amqp.Connection, error) { return rabbitqueue.Dial(cfg.Broker, "keda-demo-app-depth") },
		Queue: cfg.Broker.Topology.Queue, DeadLetterQueue: cfg.Broker.Topology.DeadLetterQueue(),
	}
	defer func() { _ = depth.Close() }()
	sampler := &queuedepth.Sampler{Reader: depth, Gauge: m.QueueMessages, Publish: hub.SetQueue, Log: log}
	go every(bg, depthInterval, depthInterval, sampler.Sample)
	go every(bg, recordsInterval, 2*time.Second, func(ctx context.Context) {
		if hub.Clients() == 0 {
			return // records can be large: MongoDB is asked only while a page is open
		}
		if recs, _, err := st.List(ctx, liveRecords, nil); err == nil { // an outage shows on /readyz
			hub.PutRecords(liveView(recs))
		}
	})
	go jobwatch.Run(bg, jobwatch.Config{Selector: cfg.JobsSelector}, hub, log)

	handler := httpapi.New(httpapi.Deps{
		Queue: pub, Records: st, Metrics: m, Log: log,
		MaxContentBytes: cfg.MaxContentBytes, PublishTimeout: cfg.PublishTimeout, DataTimeout: cfg.DataTimeout,
		Ready: func() bool {
			select {
			case <-pub.Declared():
				return true
			default:
				return false
			}
		},
		BrokerUp: brokerUp.Load, MongoUp: mongoUp.Load, BrokerBlocked: pub.Blocked,
		Page: live.Page(), Events: hub,
	})
	// Each route bounds its own body and answer (httpapi; the live stream each of its writes), the
	// server bounds headers and idle keep-alive connections.
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	srv.RegisterOnShutdown(hub.Close) // Shutdown waits for open requests, and streams never end
	if l == nil {
		if l, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	log.Info("app listening", "addr", l.Addr().String(), "queue", cfg.Broker.Topology.Queue,
		"broker", cfg.Broker.Redacted(), "mongodb", cfg.Mongo.Redacted())

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx) // stops accepting, waits for in-flight requests
	stopBackground()
	<-pubDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func watchMongo(ctx context.Context, st *mongostore.Store, log *slog.Logger, set func(bool)) {
	indexed, last := false, -1
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := st.Ping(pctx)
		if err == nil && !indexed {
			if err = st.EnsureIndexes(pctx); err == nil {
				indexed = true
			}
		}
		cancel()
		up := err == nil
		set(up)
		if state := int(gauge(up)); state != last {
			if up {
				log.Info("mongodb up")
			} else if ctx.Err() == nil {
				log.Warn("mongodb down", "error", err.Error())
			}
			last = state
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(mongoCheckInterval):
		}
	}
}

// liveContent is how much of a record's content the page gets: content may be up to
// MAX_CONTENT_BYTES, and the page follows a hundred records.
const liveContent = 200

// liveView is how the page shows records: no more than the page needs.
func liveView(recs []mongostore.Record) []live.Record {
	out := make([]live.Record, len(recs))
	for i, r := range recs {
		content := r.Content
		if len(content) > liveContent {
			content = strings.ToValidUTF8(content[:liveContent], "") + "…"
		}
		out[i] = live.Record{ID: r.ID, Name: r.Name, Content: content, Job: r.Job,
			CreatedAt: r.CreatedAt, StoredAt: r.ProcessedAt, WorkDoneAt: r.WorkDoneAt}
	}
	return out
}

// every calls f at once and then every interval until ctx ends. Each call gets a context that
// ends after timeout, so a hung dependency delays the next call by at most that.
func every(ctx context.Context, interval, timeout time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		f(cctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func gauge(up bool) float64 {
	if up {
		return 1
	}
	return 0
}
