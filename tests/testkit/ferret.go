package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/stretchr/testify/require"
)

// FerretDB is a real MongoDB-wire server (FerretDB v1, SQLite backend) running in the test
// process. It can be stopped and started again on the same address with the same data, which is
// how tests take MongoDB down.
type FerretDB struct {
	t      testing.TB
	Addr   string
	dir    string
	tls    *TLSFiles
	cancel context.CancelFunc
	done   chan struct{}
}

// StartFerretDB starts FerretDB on a free loopback port; it stops when the test ends.
func StartFerretDB(t testing.TB) *FerretDB { return startFerretDB(t, nil) }

// StartFerretDBTLS is StartFerretDB with a TLS listener (only) serving tls's certificate.
func StartFerretDBTLS(t testing.TB, tls TLSFiles) *FerretDB { return startFerretDB(t, &tls) }

func startFerretDB(t testing.TB, tls *TLSFiles) *FerretDB {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	f := &FerretDB{t: t, Addr: addr, dir: t.TempDir(), tls: tls}
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

// URI is the MongoDB URI of the server.
func (f *FerretDB) URI() string { return "mongodb://" + f.Addr + "/" }

// Start (re)starts the server on its address.
func (f *FerretDB) Start() {
	f.t.Helper()
	listener := ferretdb.ListenerConfig{TCP: f.Addr}
	if f.tls != nil {
		listener = ferretdb.ListenerConfig{TLS: f.Addr, TLSCertFile: f.tls.Cert, TLSKeyFile: f.tls.Key}
	}
	srv, err := ferretdb.New(&ferretdb.Config{
		Listener:  listener,
		Handler:   "sqlite",
		SQLiteURL: "file:" + f.dir + "/", // must end with '/'
		// At Warn FerretDB dumps every error reply; errors are enough.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	require.NoError(f.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() { defer close(f.done); _ = srv.Run(ctx) }()
	// Wait until it accepts connections (the port may still be in TIME_WAIT after a restart).
	require.Eventually(f.t, func() bool {
		c, err := net.DialTimeout("tcp", f.Addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, fmt.Sprintf("FerretDB did not listen on %s", f.Addr))
}

// Stop stops the server; connections to it fail until Start.
func (f *FerretDB) Stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	<-f.done
	f.cancel = nil
}
