// Package poll runs a function at a fixed rate, each run bounded by a timeout.
package poll

import (
	"context"
	"time"
)

// Every calls f at once and then every interval until ctx ends. Each call gets a context that
// ends after timeout, so a hung dependency delays the next call by at most that.
func Every(ctx context.Context, interval, timeout time.Duration, f func(context.Context)) {
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
