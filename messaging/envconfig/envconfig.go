// Package envconfig reads configuration from environment variables, collecting every problem so
// that a misconfigured program stops with one message naming all of them.
package envconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keda-demo/keda-demo/messaging/contract"
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

// Port returns key as a TCP port.
func (r *Reader) Port(key string, def int) string {
	return strconv.Itoa(r.Int(key, def, 1, 65535))
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

// exclusive records a problem when the URL variable and any of its parts are both set.
func (r *Reader) exclusive(urlKey string, parts ...string) bool {
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

// caPool reads a PEM bundle for TLS verification.
func (r *Reader) caPool(key string) *x509.CertPool {
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

// Broker is how to reach RabbitMQ.
type Broker struct {
	URL      string      // amqp:// or amqps://, credentials percent-escaped
	TLS      *tls.Config // nil for plain amqp
	Topology contract.Topology
}

// Redacted is the URL without its password, for logs.
func (b Broker) Redacted() string { return redact(b.URL) }

// Broker reads RABBITMQ_* and QUEUE_NAME.
func (r *Reader) Broker() Broker {
	var b Broker
	useTLS := r.Bool("RABBITMQ_TLS", false)
	parts := []string{"RABBITMQ_HOST", "RABBITMQ_PORT", "RABBITMQ_VHOST", "RABBITMQ_USERNAME", "RABBITMQ_PASSWORD"}
	if r.exclusive("RABBITMQ_URL", parts...) {
		b.URL = r.String("RABBITMQ_URL", "")
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			r.Problemf("RABBITMQ_URL must be an amqp:// or amqps:// URL with a host")
		} else if u.Scheme == "amqps" {
			useTLS = true
		}
	} else {
		scheme, port := "amqp", 5672
		if useTLS {
			scheme, port = "amqps", 5671
		}
		host := r.Required("RABBITMQ_HOST", "unless RABBITMQ_URL is set")
		u := url.URL{
			Scheme: scheme,
			Host:   net.JoinHostPort(host, r.Port("RABBITMQ_PORT", port)),
			// The vhost is the path; "/" (the default vhost) must be escaped as %2F.
			Path:    "/" + r.String("RABBITMQ_VHOST", "/"),
			RawPath: "/" + url.PathEscape(r.String("RABBITMQ_VHOST", "/")),
		}
		user, pass := r.String("RABBITMQ_USERNAME", ""), r.String("RABBITMQ_PASSWORD", "")
		if (user == "") != (pass == "") {
			r.Problemf("RABBITMQ_USERNAME and RABBITMQ_PASSWORD must be set together")
		}
		if user != "" {
			u.User = url.UserPassword(user, pass)
		}
		b.URL = u.String()
	}
	if useTLS {
		b.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: r.caPool("RABBITMQ_CA_FILE")}
	} else if r.Set("RABBITMQ_CA_FILE") {
		r.Problemf("RABBITMQ_CA_FILE is set but TLS is off: set RABBITMQ_TLS=true or use an amqps:// URL")
	}
	b.Topology = contract.Topology{Queue: r.String("QUEUE_NAME", contract.DefaultQueue)}
	return b
}

// Mongo is how to reach MongoDB and where records live.
type Mongo struct {
	URI        string
	TLS        *tls.Config // nil: as the URI says
	Database   string
	Collection string
}

// Redacted is the URI without its password, for logs.
func (m Mongo) Redacted() string { return redact(m.URI) }

// Mongo reads MONGODB_*.
func (r *Reader) Mongo() Mongo {
	var m Mongo
	useTLS := r.Bool("MONGODB_TLS", false)
	parts := []string{"MONGODB_HOST", "MONGODB_PORT", "MONGODB_USERNAME", "MONGODB_PASSWORD", "MONGODB_AUTH_SOURCE"}
	if r.exclusive("MONGODB_URI", parts...) {
		m.URI = r.String("MONGODB_URI", "")
		u, err := url.Parse(m.URI)
		if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
			r.Problemf("MONGODB_URI must be a mongodb:// or mongodb+srv:// URI")
		} else if q := u.Query(); q.Get("tls") == "true" || q.Get("ssl") == "true" || u.Scheme == "mongodb+srv" {
			useTLS = true // the URI asks for TLS (mongodb+srv implies it), so a CA file applies
		}
	} else {
		host := r.Required("MONGODB_HOST", "unless MONGODB_URI is set")
		u := url.URL{Scheme: "mongodb", Host: net.JoinHostPort(host, r.Port("MONGODB_PORT", 27017)), Path: "/"}
		q := url.Values{}
		user, pass := r.String("MONGODB_USERNAME", ""), r.String("MONGODB_PASSWORD", "")
		if (user == "") != (pass == "") {
			r.Problemf("MONGODB_USERNAME and MONGODB_PASSWORD must be set together")
		}
		if user != "" {
			u.User = url.UserPassword(user, pass)
			q.Set("authSource", r.String("MONGODB_AUTH_SOURCE", "admin"))
		}
		if useTLS {
			q.Set("tls", "true")
		}
		u.RawQuery = q.Encode()
		m.URI = u.String()
	}
	if useTLS {
		m.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: r.caPool("MONGODB_CA_FILE")}
	} else if r.Set("MONGODB_CA_FILE") {
		r.Problemf("MONGODB_CA_FILE is set but MONGODB_TLS is not true")
	}
	m.Database = r.String("MONGODB_DATABASE", "keda_demo")
	m.Collection = r.String("MONGODB_COLLECTION", "records")
	return m
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
