// Package metrics defines the app's Prometheus metrics on a registry of its own.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the app's collectors.
type Metrics struct {
	registry        *prometheus.Registry
	Requests        *prometheus.CounterVec
	PublishSeconds  prometheus.Histogram
	PublishFailures *prometheus.CounterVec
	DependencyUp    *prometheus.GaugeVec
	QueueMessages   *prometheus.GaugeVec
}

// New registers the collectors, with the Go runtime and process ones.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kedademo_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		PublishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kedademo_publish_duration_seconds", Help: "Time from publish to the broker's confirm, successful or not.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		PublishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kedademo_publish_failures_total", Help: "Publishes the broker did not take, by reason.",
		}, []string{"reason"}),
		DependencyUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kedademo_dependency_up", Help: "1 when the dependency answers, 0 when it does not.",
		}, []string{"dependency"}),
		QueueMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kedademo_queue_messages", Help: "Ready messages in the work queue and the dead-letter queue, as last read from the broker (absent while it does not answer).",
		}, []string{"queue"}),
	}
	m.registry.MustRegister(m.Requests, m.PublishSeconds, m.PublishFailures, m.DependencyUp, m.QueueMessages,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, d := range []string{"rabbitmq", "mongodb"} {
		m.DependencyUp.WithLabelValues(d).Set(0)
	}
	return m
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
