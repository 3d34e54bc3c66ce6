// Package probe serves the processor's readiness endpoint, GET /taken: 503 until the run holds its
// message, 200 after. The chart points the container's readinessProbe at it and sets the
// ScaledJob's scalingStrategy.pendingPodConditions to [Ready], so KEDA counts a Job as pending
// until it has taken its message. Without that, a Job whose pod runs but has not yet taken a
// message is neither pending nor gone from the ready count, and KEDA starts a second Job for the
// same message.
//
// An HTTP endpoint rather than an exec probe: the kubelet probes every second, and an exec probe
// would fork a process in the container each time.
package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Path is the endpoint's path.
const Path = "/taken"

// Server is the endpoint. A nil *Server is valid and does nothing (PROBE_ADDR empty).
type Server struct {
	taken atomic.Bool
	ln    net.Listener
	srv   *http.Server
	done  chan struct{}
}

// Listen binds addr and serves in the background, so a failure to bind is known before the run
// touches the queue.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("readiness endpoint: %w", err)
	}
	s := &Server{ln: ln, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, s.serveTaken) // GET also answers HEAD
	s.srv = &http.Server{
		Handler: mux,
		// The kubelet asks once a second with a 1 s timeout; nothing here should hold a
		// connection or memory longer than that.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       2 * time.Second,
		WriteTimeout:      2 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the endpoint listens on ("" for a nil Server).
func (s *Server) Addr() string {
	if s == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Taken makes GET /taken answer 200 from now on: the run holds its message.
func (s *Server) Taken() {
	if s != nil {
		s.taken.Store(true)
	}
}

// Close stops the endpoint, giving an answer in flight up to a second.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

func (s *Server) serveTaken(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !s.taken.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "no message taken yet\n")
		return
	}
	_, _ = io.WriteString(w, "message taken\n")
}
