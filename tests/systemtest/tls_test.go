package systemtest

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

// Both programs reach a RabbitMQ TLS listener and a FerretDB TLS listener with the CA given in
// RABBITMQ_CA_FILE and MONGODB_CA_FILE, and refuse both servers when that CA did not sign them.
func TestTLSToRealServers(t *testing.T) {
	certs := testkit.MakeTLSFiles(t)
	rmq := testkit.StartRabbitNode(t, testkit.WithTLS(certs.Dir))
	mongo := testkit.StartFerretDBTLS(t, certs)
	tlsPort := strings.TrimSuffix(strings.TrimPrefix(rmq.TLSURL, "amqps://guest:guest@127.0.0.1:"), "/")
	_, err := strconv.Atoi(tlsPort)
	require.NoError(t, err, rmq.TLSURL)
	mongoHost, mongoPort, _ := net.SplitHostPort(mongo.Addr)
	env := func(ca string) []string {
		return []string{
			"RABBITMQ_HOST=127.0.0.1", "RABBITMQ_PORT=" + tlsPort, "RABBITMQ_USERNAME=guest", "RABBITMQ_PASSWORD=guest",
			"RABBITMQ_TLS=true", "RABBITMQ_CA_FILE=" + ca,
			"MONGODB_HOST=" + mongoHost, "MONGODB_PORT=" + mongoPort, "MONGODB_TLS=true", "MONGODB_CA_FILE=" + ca,
		}
	}
	top := contract.Topology{Queue: testkit.UniqueName(t)}

	t.Run("the CA that signed the servers", func(t *testing.T) {
		s := launch(t, top, env(certs.CA))
		s.waitReady()
		code, id := s.send("over-tls", "c")
		require.Equal(t, http.StatusAccepted, code)
		code, outcome := s.process()
		require.Equal(t, 0, code)
		require.Equal(t, "stored", outcome)
		recs := s.data()
		require.Len(t, recs, 1)
		require.Equal(t, id, recs[0].ID)
	})

	t.Run("another CA", func(t *testing.T) {
		other := testkit.MakeTLSFiles(t)
		s := launch(t, top, env(other.CA))
		// Never ready: the broker's certificate is refused on every connect; so is MongoDB's.
		refused := func(what string) bool {
			for line := range strings.Lines(s.appOut.String()) {
				if strings.Contains(line, what) && strings.Contains(line, "certificate signed by unknown authority") {
					return true
				}
			}
			return false
		}
		require.Eventually(t, func() bool { return refused("broker connect failed") && refused("mongodb down") },
			30*time.Second, 100*time.Millisecond, "the app did not refuse both certificates")
		resp, err := http.Get(s.URL + "/readyz")
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		code, _ := s.process()
		require.NotEqual(t, 0, code, "the processor took a server signed by another CA")
	})
}
