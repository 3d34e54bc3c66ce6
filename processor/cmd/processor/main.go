// Command processor is keda-demo's one-shot worker, run as a Kubernetes Job by a KEDA ScaledJob.
//
//	processor                          take one message, store it, ack it, work, exit
//	processor requeue-dead [--limit N] move dead-lettered messages back to the work queue
//
// Exit codes: 0 done (also: queue empty, poison message dead-lettered), 1 unexpected failure,
// 2 invalid configuration, 69 RabbitMQ unreachable, 75 MongoDB unreachable or the write failed
// (the message is kept for a retry).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
	"github.com/keda-demo/keda-demo/processor/internal/config"
	"github.com/keda-demo/keda-demo/processor/internal/job"
	"github.com/keda-demo/keda-demo/processor/internal/requeue"
)

func main() {
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
	host, _ := os.Hostname() // the pod name in Kubernetes
	os.Exit(job.Runner{Cfg: cfg, Log: log, Hostname: host}.Run(ctx))
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
