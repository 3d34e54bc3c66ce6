package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// raw sends head (the request line and headers, without the blank line) and then lets body write
// to the connection; it returns the status of the answer, or 0 when none came within wait.
func raw(t *testing.T, srv *httptest.Server, head string, body func(net.Conn), wait time.Duration) int {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "%s\r\nHost: test\r\n\r\n", head)
	require.NoError(t, err)
	go body(conn)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Logf("no answer within %v: %v", wait, err)
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// A body that stalls or trickles is cut off at its read deadline (a 408), however long the client
// would keep the connection.
func TestSlowBodyIsCutOffAtItsDeadline(t *testing.T) {
	tests := []struct {
		name string
		body func(net.Conn)
	}{
		{"stalls after 11 of 100 bytes", func(c net.Conn) { _, _ = c.Write([]byte(`{"name":"n"`)) }},
		{"trickles a byte every 50 ms", func(c net.Conn) {
			body := `{"name":"n","content":"` + strings.Repeat("c", 100-25) + `"}`
			for _, b := range []byte(body) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, 16)
			srv := httptest.NewServer(hs.h)
			defer srv.Close()
			// The deadline is 0.5 s plus 16 ms for the largest body (harness settings).
			code := raw(t, srv, "POST /send HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100", tc.body, 3*time.Second)
			require.Equal(t, http.StatusRequestTimeout, code)
			require.Empty(t, hs.q.published())
		})
	}
}

// A client that half-closes its side after a complete request still gets its publish: Go cancels
// the request's context then, and the publish must not run on it.
func TestHalfCloseAfterRequestStillPublishes(t *testing.T) {
	hs := newHarness(t, 16)
	hs.q.delay = 200 * time.Millisecond
	srv := httptest.NewServer(hs.h)
	defer srv.Close()
	halfClose := func(c net.Conn) { _ = c.(*net.TCPConn).CloseWrite() }
	for range 5 {
		code := raw(t, srv, "POST /send?name=n&content=c HTTP/1.1\r\nContent-Length: 0", halfClose, 3*time.Second)
		require.Equal(t, http.StatusAccepted, code)
	}
	require.Len(t, hs.q.published(), 5)
	require.NotContains(t, hs.do(t, "GET", "/metrics", "", nil).Body.String(), `kedademo_publish_failures_total{reason="confirm_timeout"} 1`)
}

// GET /data gives up on a store that does not answer at its own deadline, not the client's.
func TestDataHasADeadline(t *testing.T) {
	hs := newHarness(t, 16)
	hs.r.hang = true
	srv := httptest.NewServer(hs.h)
	defer srv.Close()
	code := raw(t, srv, "GET /data HTTP/1.1", func(net.Conn) {}, 3*time.Second)
	require.Equal(t, http.StatusServiceUnavailable, code)
}

// While the broker blocks publishers, /readyz says so (and stays 200: the pod is fine).
func TestReadinessReportsABlockedBroker(t *testing.T) {
	hs := newHarness(t, 16)
	hs.blocked.Store(true)
	rec := hs.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	var body map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Contains(t, body["rabbitmq"], "blocked")
}
