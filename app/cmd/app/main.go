// Command app is keda-demo's HTTP API.
//
//	app            serve (configuration from the environment, see README)
//	app smoke ...  end-to-end check through a running app (used by helm test)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/keda-demo/keda-demo/app/internal/config"
	"github.com/keda-demo/keda-demo/app/internal/server"
	"github.com/keda-demo/keda-demo/app/internal/smoke"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "smoke" {
		os.Exit(smoke.Run(ctx, os.Args[2:], os.Stdout))
	}
	if len(os.Args) > 1 && os.Args[1] != "serve" {
		fmt.Fprintf(os.Stderr, "usage: app [serve | smoke --url URL [--timeout 2m] [--name-prefix P]]\n")
		os.Exit(2)
	}
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := server.Run(ctx, cfg, log, nil); err != nil {
		log.Error("app stopped", "error", err.Error())
		os.Exit(1)
	}
}
