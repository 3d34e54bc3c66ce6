package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Reading a body gets a fixed allowance plus time for its declared size (its largest accepted
// size when it declares none) at this slow rate; a client slower than that holds a connection and
// a goroutine for no good reason.
const (
	bodyAllowance = 10 * time.Second
	minBodyRate   = 256 << 10 // bytes per second
	// writeAllowance is what a route's answer may take to write, after its work.
	writeAllowance = 10 * time.Second
	// noBodyRead bounds reading what is left of a request without a body.
	noBodyRead = 5 * time.Second
)

// deadlines bounds reading the rest of the request (read) and the whole request including its
// answer (total), both from now, on the connection itself: a stalled or trickling body fails its
// read at the read deadline, a client that does not read its answer fails the write at the total
// deadline. Every route gets one (New applies defaults first, each route its own after).
func deadlines(read, total time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			now := time.Now()
			setDeadlines(c, now.Add(read), now.Add(total))
			return next(c)
		}
	}
}

// bodyDeadlines is deadlines for a route with a body of up to maxBytes: the read deadline is
// bodyTimeout for the length the request declares, and the answer may take after more.
func bodyDeadlines(base time.Duration, maxBytes int64, after time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			now := time.Now()
			read := bodyTimeout(base, c.Request().ContentLength, maxBytes)
			setDeadlines(c, now.Add(read), now.Add(read+after))
			return next(c)
		}
	}
}

// LongLived exempts a route from the request deadlines: for a stream (server-sent events) that
// stays open for as long as its client wants. Put it last in the route's middleware, e.g.
//
//	e.GET("/live", a.live, LongLived)
//
// and have the handler call RenewWrite(c, 2*heartbeat) before each write, so a client that stops
// reading is dropped after two missed heartbeats instead of by a server-wide WriteTimeout.
func LongLived(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		setDeadlines(c, time.Time{}, time.Time{})
		return next(c)
	}
}

// RenewWrite lets the next writes of a LongLived route take up to d.
func RenewWrite(c echo.Context, d time.Duration) {
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(d))
}

// setDeadlines ignores errors: they mean there is no connection to bound (a test recorder) or it
// is already closed.
func setDeadlines(c echo.Context, read, write time.Time) {
	rc := http.NewResponseController(c.Response())
	_ = rc.SetReadDeadline(read)
	_ = rc.SetWriteDeadline(write)
}

// bodyTimeout is the read deadline for a body that declares declared bytes (a Content-Length;
// -1, as for a chunked body, when unknown) and may have up to maxBytes: time for the declared
// size, or for maxBytes when that is unknown or larger.
func bodyTimeout(base time.Duration, declared, maxBytes int64) time.Duration {
	size := maxBytes
	if declared >= 0 && declared < maxBytes {
		size = declared
	}
	return base + time.Duration(size)*time.Second/minBodyRate
}
