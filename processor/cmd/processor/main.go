// Command processor is keda-demo's one-shot worker, run as a Kubernetes Job by a KEDA ScaledJob.
//
//	processor                          take one message, store it, ack it, work, exit
//	processor requeue-dead [--limit N] move dead-lettered messages back to the work queue
//
// Exit codes: 0 done (also: queue empty, poison message dead-lettered), 1 unexpected failure
// (also: the run not ended by RUN_TIMEOUT), 2 invalid configuration (also: PROBE_ADDR cannot be
// bound), 69 RabbitMQ unreachable, 75 MongoDB unreachable or the write failed (the message is kept
// for a retry).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/processor/internal/config"
	"github.com/keda-demo/keda-demo/processor/internal/job"
	"github.com/keda-demo/keda-demo/processor/internal/probe"
	"github.com/keda-demo/keda-demo/processor/internal/requeue"
)

func main() {
	start := time.Now() // RUN_TIMEOUT counts from here
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "requeue-dead" {
		os.Exit(requeueDead(ctx, os.Args[2:]))
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: processor [requeue-dead [--limit N]]")
		os.Exit(job.ExitConfig)
	}
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "processor:", err)
		os.Exit(job.ExitConfig)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// The readiness endpoint (503 until the message is taken) is bound before anything is
	// connected. PROBE_ADDR is empty unless set (the chart sets it): outside a pod nothing probes,
	// and several processors on one host would compete for one port. Set but not bindable is a
	// configuration error, reported before the queue is touched: a processor that can never report
	// its message taken would count as pending for KEDA all its life, and KEDA would start fewer
	// Jobs than there are messages, without a word.
	pr, err := probeListen(cfg.ProbeAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "processor: PROBE_ADDR=%q: %v\n", cfg.ProbeAddr, err)
		os.Exit(job.ExitConfig)
	}
	if pr != nil {
		log.Debug("readiness endpoint", "addr", pr.Addr(), "path", probe.Path)
	}
	host, _ := os.Hostname() // the pod name in Kubernetes
	code := job.Runner{Cfg: cfg, Log: log, Hostname: host, Start: start, Probe: pr}.Run(ctx)
	_ = pr.Close()
	os.Exit(code)
}

// probeListen starts the readiness endpoint; nil, nil when addr is empty.
func probeListen(addr string) (*probe.Server, error) {
	if addr == "" {
		return nil, nil
	}
	return probe.Listen(addr)
}

// requeueDead moves dead-lettered messages back and returns the exit code. It reads only the
// broker settings: an operator runs it where MongoDB may not be configured at all.
func requeueDead(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("requeue-dead", flag.ExitOnError)
	limit := fs.Int("limit", 0, "move at most N messages (0: all)")
	_ = fs.Parse(args)
	cfg, err := config.LoadRequeue(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "processor requeue-dead:", err)
		return job.ExitConfig
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	conn, err := rabbitqueue.Dial(cfg.Broker, "keda-demo-requeue-dead")
	if err != nil {
		log.Error("requeue-dead failed", "error", err.Error())
		return job.ExitBroker
	}
	defer conn.Close()
	top := cfg.Broker.Topology
	moved, err := requeue.Move(ctx, conn, top, *limit)
	if err != nil {
		log.Error("requeue-dead failed", "moved", moved, "error", err.Error())
		return job.ExitFailure
	}
	log.Info("requeue-dead done", "moved", moved, "from", top.DeadLetterQueue(), "to", top.Queue)
	return 0
}
