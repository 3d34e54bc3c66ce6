package rabbitqueue

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/keda-demo/keda-demo/messaging/contract"
)

// Broker is how to reach RabbitMQ.
type Broker struct {
	URL      string      // amqp:// or amqps://, credentials percent-escaped
	TLS      *tls.Config // nil for plain amqp
	Topology contract.Topology
}

// Redacted is the URL without its password, for logs.
func (b Broker) Redacted() string {
	u, err := url.Parse(b.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// DefaultPort is RabbitMQ's AMQP port, with or without TLS.
func DefaultPort(useTLS bool) int {
	if useTLS {
		return 5671
	}
	return 5672
}

// BrokerURL builds the URL of a broker given by parts, as the chart passes them. Credentials and
// the vhost are percent-escaped, so a password with @ or / reaches the broker unchanged. An empty
// user means no credentials in the URL (the library then uses guest).
func BrokerURL(host string, port int, vhost, user, pass string, useTLS bool) string {
	scheme := "amqp"
	if useTLS {
		scheme = "amqps"
	}
	u := url.URL{
		Scheme: scheme,
		Host:   net.JoinHostPort(host, strconv.Itoa(port)),
		// The vhost is the path; "/" (the default vhost) must be escaped as %2F.
		Path:    "/" + vhost,
		RawPath: "/" + url.PathEscape(vhost),
	}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u.String()
}

// CheckURL accepts an amqp:// or amqps:// URL with a host and reports whether it asks for TLS.
func CheckURL(raw string) (useTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return false, fmt.Errorf("must be an amqp:// or amqps:// URL with a host")
	}
	return u.Scheme == "amqps", nil
}

// TLSConfig is the client TLS the broker connection uses; roots nil means the system pool.
func TLSConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
}
