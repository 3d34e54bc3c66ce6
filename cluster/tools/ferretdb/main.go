// Command ferretdb is a MongoDB-wire server for `task up`: FerretDB v1 with its SQLite backend,
// through FerretDB's embeddable package (the upstream cmd/ferretdb built from the module zip
// panics at start: the zip lacks its generated build/version/version.txt).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	var listen, dir string
	flag.StringVar(&listen, "listen-addr", "127.0.0.1:27017", "comma-separated host:port list to listen on")
	flag.StringVar(&dir, "data-dir", "", "folder of the SQLite databases (required)")
	flag.Parse()
	if dir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: --data-dir is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// One server per address: FerretDB's listener takes a single TCP address.
	addrs := strings.Split(listen, ",")
	errs := make(chan error, len(addrs))
	for _, a := range addrs {
		srv, err := ferretdb.New(&ferretdb.Config{
			Listener:  ferretdb.ListenerConfig{TCP: a},
			Handler:   "sqlite",
			SQLiteURL: "file:" + strings.TrimSuffix(dir, "/") + "/", // must end with '/'
			Logger:    log,
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "ferretdb: %s: %v\n", a, err)
			os.Exit(1)
		}
		go func() { errs <- srv.Run(ctx) }()
	}
	for range addrs {
		if err := <-errs; err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "ferretdb:", err)
			stop()
			os.Exit(1)
		}
	}
}
