// Package httpapi is the app's HTTP interface. It is the only package that imports Echo, so a move
// to Echo v5 (v4 support ends 2026-12-31) changes this package alone.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keda-demo/keda-demo/app/internal/live"
	"github.com/keda-demo/keda-demo/app/internal/metrics"
	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

// Queue publishes msg as the message id, accepted at createdAt, and returns nil only once the
// broker has taken it. How it travels (AMQP properties and headers) is the queue's business.
type Queue interface {
	Publish(ctx context.Context, id string, msg contract.Message, createdAt time.Time) error
}

// Records lists stored records.
type Records interface {
	List(ctx context.Context, limit int, after *mongostore.Cursor) ([]mongostore.Record, *mongostore.Cursor, error)
}

// Deps is what the handlers need.
type Deps struct {
	Queue           Queue
	Records         Records
	Metrics         *metrics.Metrics
	Log             *slog.Logger
	MaxContentBytes int
	PublishTimeout  time.Duration
	// DataTimeout bounds each GET /data's store query.
	DataTimeout time.Duration
	// BodyAllowance is the fixed part of the time a body may take to read (bodyAllowance when 0).
	BodyAllowance time.Duration
	// Ready reports whether the queue topology has been declared once.
	Ready func() bool
	// BrokerUp and MongoUp report the dependencies' current state (for /readyz's body).
	BrokerUp, MongoUp func() bool
	// BrokerBlocked reports whether the broker blocks publishers (nil: never).
	BrokerBlocked func() bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Page serves the live page and its files (live.Paths); Events is its event stream. Both
	// optional.
	Page, Events http.Handler
}

// retryAfter is what 503 answers tell clients to wait, in seconds.
const retryAfter = "5"

type api struct{ Deps }

// New returns the HTTP handler.
func New(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.BrokerBlocked == nil {
		d.BrokerBlocked = func() bool { return false }
	}
	if d.BodyAllowance == 0 {
		d.BodyAllowance = bodyAllowance
	}
	a := &api{d}
	for _, r := range rabbitqueue.Reasons {
		d.Metrics.PublishFailures.WithLabelValues(string(r)) // every series exists from the start, at 0
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.handleError
	// Every request is bounded by default (noBodyRead, writeAllowance); a route with a body or
	// slow work sets deadlines that fit it, and a stream is exempt (LongLived).
	e.Use(a.observe, checkQuery, deadlines(noBodyRead, writeAllowance))
	e.POST("/send", a.send, bodyDeadlines(d.BodyAllowance, a.maxBody(), d.PublishTimeout+writeAllowance))
	e.GET("/data", a.data, deadlines(noBodyRead, d.DataTimeout+writeAllowance))
	e.GET("/healthz", a.healthz)
	e.GET("/readyz", a.readyz)
	e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()))
	if d.Page != nil {
		for _, path := range live.Paths {
			e.GET(path, echo.WrapHandler(d.Page))
		}
	}
	if d.Events != nil {
		e.GET("/events", echo.WrapHandler(d.Events), LongLived) // each write bounded by the hub's heartbeat
	}
	return e
}

// errorBody is every error answer: the message, the field at fault when there is one, and for a
// publish the broker did not take, the reason (one of rabbitqueue.Reasons).
type errorBody struct {
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (a *api) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, msg = he.Code, http.StatusText(he.Code)
	} else {
		a.Log.Error("request failed", "path", c.Request().URL.Path, "error", err.Error())
	}
	_ = c.JSON(code, errorBody{Error: msg})
}

// observe counts and logs every request by route (the route pattern, so cardinality stays bounded).
func (a *api) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		a.Metrics.Requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Inc()
		// Server errors are worth a line each; the rest would cost more than they tell (the
		// metrics count them), so they log at debug.
		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelWarn
		}
		a.Log.Log(c.Request().Context(), level, "request", "method", c.Request().Method, "route", route, "status", status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000)
		return nil
	}
}

func (a *api) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz does not fail on a dependency outage: the Service keeps the pods, and clients get honest
// 503s from /send and /data instead of refused connections. It reports the dependencies' state.
func (a *api) readyz(c echo.Context) error {
	state := func(up bool) string {
		if up {
			return "up"
		}
		return "down"
	}
	body := map[string]string{"status": "ready", "rabbitmq": state(a.BrokerUp()), "mongodb": state(a.MongoUp())}
	if a.BrokerUp() && a.BrokerBlocked() {
		body["rabbitmq"] = "blocked: publishers are refused until the broker's memory or disk alarm clears"
	}
	if !a.Ready() {
		body["status"] = "starting: queue topology not declared yet"
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	return c.JSON(http.StatusOK, body)
}
