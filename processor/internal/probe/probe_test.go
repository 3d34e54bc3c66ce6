package probe_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/processor/internal/probe"
)

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestTakenAnswers503ThenAlways200(t *testing.T) {
	s, err := probe.Listen("127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + s.Addr() + probe.Path

	code, body := get(t, http.MethodGet, url)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "no message taken yet\n", body)
	code, _ = get(t, http.MethodHead, url)
	require.Equal(t, http.StatusServiceUnavailable, code)

	s.Taken()
	for range 3 {
		code, body = get(t, http.MethodGet, url)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "message taken\n", body)
	}
	code, _ = get(t, http.MethodHead, url)
	require.Equal(t, http.StatusOK, code)

	// Nothing else is served.
	code, _ = get(t, http.MethodGet, "http://"+s.Addr()+"/")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, http.MethodPost, url)
	require.Equal(t, http.StatusMethodNotAllowed, code)

	require.NoError(t, s.Close())
	_, err = net.DialTimeout("tcp", s.Addr(), time.Second)
	require.Error(t, err, "closed: the port is free again")
}

// A client that opens a connection and sends nothing is cut off by ReadHeaderTimeout, and Close
// does not wait for it.
func TestSlowClientIsBounded(t *testing.T) {
	s, err := probe.Listen("127.0.0.1:0")
	require.NoError(t, err)
	c, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	_, err = c.Write([]byte("GET /taken HTTP/1.1\r\n")) // never finishes its headers
	require.NoError(t, err)
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.ReadAll(c) // the server answers 408 or closes
	require.Less(t, time.Since(start), 5*time.Second)

	start = time.Now()
	require.NoError(t, s.Close())
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestListenFailsOnABusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = busy.Close() }()
	_, err = probe.Listen(busy.Addr().String())
	require.ErrorContains(t, err, "readiness endpoint")
}

func TestNilServerDoesNothing(t *testing.T) {
	var s *probe.Server
	s.Taken()
	require.Empty(t, s.Addr())
	require.NoError(t, s.Close())
}
