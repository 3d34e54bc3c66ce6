package mongostore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Mongo is how to reach MongoDB and where records live.
type Mongo struct {
	URI        string
	TLS        *tls.Config // nil: as the URI says
	Database   string
	Collection string
}

// Redacted is the URI without its password, for logs.
func (m Mongo) Redacted() string {
	u, err := url.Parse(m.URI)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// MongoURI builds the URI of a server or replica set given by parts, credentials
// percent-escaped. hosts are host or host:port (port is the default); replicaSet, when set,
// names the set the hosts belong to. authSource applies only with credentials. Writes are
// acknowledged by a majority (w=majority): the processor acks a message right after storing it,
// so the record must survive the election of a new primary.
func MongoURI(hosts []string, port int, replicaSet, user, pass, authSource string, useTLS bool) string {
	seeds := make([]string, len(hosts))
	for i, h := range hosts {
		if _, _, err := net.SplitHostPort(h); err == nil {
			seeds[i] = h
		} else {
			seeds[i] = net.JoinHostPort(h, strconv.Itoa(port))
		}
	}
	u := url.URL{Scheme: "mongodb", Host: strings.Join(seeds, ","), Path: "/"}
	q := url.Values{"w": {"majority"}}
	if replicaSet != "" {
		q.Set("replicaSet", replicaSet)
	}
	if user != "" {
		u.User = url.UserPassword(user, pass)
		q.Set("authSource", authSource)
	}
	if useTLS {
		q.Set("tls", "true")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// CheckURI accepts a mongodb:// or mongodb+srv:// URI and reports whether it asks for TLS
// (mongodb+srv implies it), which is when a CA file applies.
func CheckURI(raw string) (useTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		return false, fmt.Errorf("must be a mongodb:// or mongodb+srv:// URI")
	}
	q := u.Query()
	return q.Get("tls") == "true" || q.Get("ssl") == "true" || u.Scheme == "mongodb+srv", nil
}

// TLSConfig is the client TLS of the MongoDB connection; roots nil means the system pool.
func TLSConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
}
