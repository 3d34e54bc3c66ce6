// Package envread reads configuration from environment variables, collecting every problem so
// that a misconfigured program stops with one message naming all of them. It is a plain reader of
// strings, numbers and files: what the values mean belongs to its callers (see connenv).
package envread

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Lookup is os.LookupEnv, or a map in tests.
type Lookup func(key string) (string, bool)

// Map returns a Lookup over a fixed set of variables.
func Map(env map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// Reader accumulates problems while reading variables.
type Reader struct {
	lookup   Lookup
	problems []string
}

// NewReader reads from lookup (os.LookupEnv when nil).
func NewReader(lookup Lookup) *Reader {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return &Reader{lookup: lookup}
}

// Problemf records a problem.
func (r *Reader) Problemf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// Err returns all recorded problems as one error, or nil.
func (r *Reader) Err() error {
	if len(r.problems) == 0 {
		return nil
	}
	return errors.New("invalid configuration: " + strings.Join(r.problems, "; "))
}

// Set reports whether key is set to a non-empty value.
func (r *Reader) Set(key string) bool {
	v, ok := r.lookup(key)
	return ok && v != ""
}

// String returns the value of key, or def when unset or empty.
func (r *Reader) String(key, def string) string {
	if v, ok := r.lookup(key); ok && v != "" {
		return v
	}
	return def
}

// Required returns the value of key and records a problem when it is unset or empty.
func (r *Reader) Required(key, why string) string {
	v := r.String(key, "")
	if v == "" {
		r.Problemf("%s is required %s", key, why)
	}
	return v
}

// Int returns key as an integer within [min, max].
func (r *Reader) Int(key string, def, min, max int) int {
	s := r.String(key, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		r.Problemf("%s=%q must be an integer from %d to %d", key, s, min, max)
		return def
	}
	return n
}

// Duration returns key as a Go duration (e.g. "20s") of at least min.
func (r *Reader) Duration(key string, def, min time.Duration) time.Duration {
	s := r.String(key, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < min {
		r.Problemf("%s=%q must be a Go duration such as 20s, at least %s", key, s, min)
		return def
	}
	return d
}

// Bool returns key as a boolean.
func (r *Reader) Bool(key string, def bool) bool {
	s := r.String(key, "")
	if s == "" {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.Problemf("%s=%q must be true or false", key, s)
		return def
	}
	return b
}

// LogLevel reads LOG_LEVEL.
func (r *Reader) LogLevel() slog.Level {
	s := r.String("LOG_LEVEL", "info")
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		r.Problemf("LOG_LEVEL=%q must be debug, info, warn or error", s)
		return slog.LevelInfo
	}
	return l
}

// Exclusive reports whether urlKey is set, and records a problem when any of its parts are set
// too: a URL and parts that disagree would leave it unclear which one wins.
func (r *Reader) Exclusive(urlKey string, parts ...string) bool {
	if !r.Set(urlKey) {
		return false
	}
	var set []string
	for _, p := range parts {
		if r.Set(p) {
			set = append(set, p)
		}
	}
	if len(set) > 0 {
		r.Problemf("%s and %s are both set: give either the URL or its parts", urlKey, strings.Join(set, ", "))
	}
	return true
}

// CAPool reads the PEM bundle named by key, for TLS verification; nil when key is unset.
func (r *Reader) CAPool(key string) *x509.CertPool {
	path := r.String(key, "")
	if path == "" {
		return nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		r.Problemf("%s: %v", key, err)
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		r.Problemf("%s=%q holds no PEM certificate", key, path)
		return nil
	}
	return pool
}
