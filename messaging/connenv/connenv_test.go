package connenv_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/keda-demo/keda-demo/messaging/connenv"
	"github.com/keda-demo/keda-demo/messaging/envread"
)

func TestBrokerURLEscaping(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantURL   string
		wantUser  string
		wantPass  string
		wantVhost string
		wantTLS   bool
	}{
		{
			name:    "tutorial password with @",
			env:     map[string]string{"RABBITMQ_HOST": "rabbitmq", "RABBITMQ_USERNAME": "user", "RABBITMQ_PASSWORD": "P@ssw0rd"},
			wantURL: "amqp://user:P%40ssw0rd@rabbitmq:5672/%2F", wantUser: "user", wantPass: "P@ssw0rd", wantVhost: "/",
		},
		{
			name:     "every reserved character",
			env:      map[string]string{"RABBITMQ_HOST": "h", "RABBITMQ_USERNAME": "u:s@r", "RABBITMQ_PASSWORD": "a/b?c#d%e f+g:h@i", "RABBITMQ_VHOST": "team/prod"},
			wantUser: "u:s@r", wantPass: "a/b?c#d%e f+g:h@i", wantVhost: "team/prod",
		},
		{
			name:    "tls defaults to 5671",
			env:     map[string]string{"RABBITMQ_HOST": "mq.example.com", "RABBITMQ_TLS": "true", "RABBITMQ_USERNAME": "u", "RABBITMQ_PASSWORD": "p"},
			wantURL: "amqps://u:p@mq.example.com:5671/%2F", wantUser: "u", wantPass: "p", wantVhost: "/", wantTLS: true,
		},
		{
			name:    "full URL",
			env:     map[string]string{"RABBITMQ_URL": "amqps://u:p%40@mq:5671/v"},
			wantURL: "amqps://u:p%40@mq:5671/v", wantUser: "u", wantPass: "p@", wantVhost: "v", wantTLS: true,
		},
		{
			name:    "IPv6 host and custom port",
			env:     map[string]string{"RABBITMQ_HOST": "::1", "RABBITMQ_PORT": "5673"},
			wantURL: "amqp://[::1]:5673/%2F", wantUser: "guest", wantPass: "guest", wantVhost: "/",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := envread.NewReader(envread.Map(tc.env))
			b := connenv.Broker(r)
			require.NoError(t, r.Err())
			if tc.wantURL != "" {
				require.Equal(t, tc.wantURL, b.URL)
			}
			// The library that dials must read back exactly the parts we were given.
			uri, err := amqp.ParseURI(b.URL)
			require.NoError(t, err)
			require.Equal(t, tc.wantUser, uri.Username)
			require.Equal(t, tc.wantPass, uri.Password)
			require.Equal(t, tc.wantVhost, uri.Vhost)
			require.Equal(t, tc.wantTLS, b.TLS != nil)
			require.NotContains(t, b.Redacted(), tc.wantPass+"@")
			require.Equal(t, "keda-demo", b.Topology.Queue)
		})
	}
}

func TestMongoURIEscaping(t *testing.T) {
	r := envread.NewReader(envread.Map(map[string]string{
		"MONGODB_HOST": "db", "MONGODB_USERNAME": "app", "MONGODB_PASSWORD": "P@ss/w:rd+?#%", "MONGODB_AUTH_SOURCE": "keda_demo",
		"MONGODB_DATABASE": "d", "MONGODB_COLLECTION": "c",
	}))
	m := connenv.Mongo(r)
	require.NoError(t, r.Err())
	cs, err := connstring.ParseAndValidate(m.URI)
	require.NoError(t, err)
	require.Equal(t, "app", cs.Username)
	require.Equal(t, "P@ss/w:rd+?#%", cs.Password)
	require.Equal(t, "keda_demo", cs.AuthSource)
	require.Equal(t, []string{"db:27017"}, cs.Hosts)
	require.Equal(t, "d", m.Database)
	require.Equal(t, "c", m.Collection)
	require.NotContains(t, m.Redacted(), "P%40ss")
}

func TestMongoDefaults(t *testing.T) {
	r := envread.NewReader(envread.Map(map[string]string{"MONGODB_HOST": "db"}))
	m := connenv.Mongo(r)
	require.NoError(t, r.Err())
	require.Equal(t, "mongodb://db:27017/?w=majority", m.URI)
	require.Equal(t, "keda_demo", m.Database)
	require.Equal(t, "records", m.Collection)
}

// TestMongoReplicaSet: MONGODB_HOST lists the members (the port applies to those without one),
// MONGODB_REPLICA_SET names the set, and writes wait for a majority.
func TestMongoReplicaSet(t *testing.T) {
	r := envread.NewReader(envread.Map(map[string]string{
		"MONGODB_HOST": "db-0.db-headless:27017, db-1.db-headless,db-2.db-headless:27018", "MONGODB_PORT": "27019",
		"MONGODB_REPLICA_SET": "rs0", "MONGODB_USERNAME": "app", "MONGODB_PASSWORD": "p,w", "MONGODB_AUTH_SOURCE": "keda_demo",
	}))
	m := connenv.Mongo(r)
	require.NoError(t, r.Err())
	cs, err := connstring.ParseAndValidate(m.URI)
	require.NoError(t, err)
	require.Equal(t, []string{"db-0.db-headless:27017", "db-1.db-headless:27019", "db-2.db-headless:27018"}, cs.Hosts)
	require.Equal(t, "rs0", cs.ReplicaSet)
	require.Equal(t, "majority", cs.WString)
	require.Equal(t, "p,w", cs.Password)

	r = envread.NewReader(envread.Map(map[string]string{"MONGODB_HOST": "db-0,,db-1"}))
	connenv.Mongo(r)
	require.ErrorContains(t, r.Err(), "MONGODB_HOST")
	r = envread.NewReader(envread.Map(map[string]string{"MONGODB_URI": "mongodb://db/", "MONGODB_REPLICA_SET": "rs0"}))
	connenv.Mongo(r)
	require.ErrorContains(t, r.Err(), "MONGODB_REPLICA_SET")
}

func TestProblemsAreAllReported(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", map[string]string{}, []string{"RABBITMQ_HOST is required", "MONGODB_HOST is required"}},
		{"URL and parts", map[string]string{"RABBITMQ_URL": "amqp://h/", "RABBITMQ_HOST": "h", "MONGODB_URI": "mongodb://h/", "MONGODB_PASSWORD": "x"},
			[]string{"RABBITMQ_URL and RABBITMQ_HOST are both set", "MONGODB_URI and MONGODB_PASSWORD are both set"}},
		{"bad values", map[string]string{"RABBITMQ_HOST": "h", "RABBITMQ_PORT": "0", "RABBITMQ_TLS": "yes please", "MONGODB_URI": "http://x", "LOG_LEVEL": "loud"},
			[]string{`RABBITMQ_PORT="0"`, `RABBITMQ_TLS="yes please"`, "MONGODB_URI must be", `LOG_LEVEL="loud"`}},
		{"user without password", map[string]string{"RABBITMQ_HOST": "h", "RABBITMQ_USERNAME": "u", "MONGODB_HOST": "m", "MONGODB_PASSWORD": "p"},
			[]string{"RABBITMQ_USERNAME and RABBITMQ_PASSWORD must be set together", "MONGODB_USERNAME and MONGODB_PASSWORD must be set together"}},
		{"CA without TLS", map[string]string{"RABBITMQ_HOST": "h", "RABBITMQ_CA_FILE": "/x", "MONGODB_HOST": "m", "MONGODB_CA_FILE": "/y"},
			[]string{"RABBITMQ_CA_FILE is set but TLS is off", "MONGODB_CA_FILE is set but MONGODB_TLS is not true"}},
		{"missing CA file", map[string]string{"RABBITMQ_HOST": "h", "RABBITMQ_TLS": "true", "RABBITMQ_CA_FILE": "/nonexistent/ca.pem", "MONGODB_HOST": "m"},
			[]string{"RABBITMQ_CA_FILE: open /nonexistent/ca.pem"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := envread.NewReader(envread.Map(tc.env))
			connenv.Broker(r)
			connenv.Mongo(r)
			r.LogLevel()
			err := r.Err()
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestMongoURIWithTLSAcceptsCAFile(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, selfSignedPEM(t), 0o600))
	for _, uri := range []string{"mongodb://db:27017/?tls=true", "mongodb+srv://cluster.example.com/"} {
		r := envread.NewReader(envread.Map(map[string]string{"MONGODB_URI": uri, "MONGODB_CA_FILE": ca}))
		m := connenv.Mongo(r)
		require.NoError(t, r.Err(), uri)
		require.NotNil(t, m.TLS, uri)
		require.NotNil(t, m.TLS.RootCAs, uri)
	}
	r := envread.NewReader(envread.Map(map[string]string{"MONGODB_URI": "mongodb://db/", "MONGODB_CA_FILE": ca}))
	connenv.Mongo(r)
	require.ErrorContains(t, r.Err(), "MONGODB_CA_FILE is set but MONGODB_TLS is not true")
}

func selfSignedPEM(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
