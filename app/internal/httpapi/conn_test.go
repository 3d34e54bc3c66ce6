package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// raw sends head (the request line and headers, without the blank line) and then lets body write
// to the connection; it returns the status of the answer, or 0 when none came within wait.
func raw(t *testing.T, srv *httptest.Server, head string, body func(net.Conn), wait time.Duration) int {
	t.Helper()
	code, _, _ := rawAnswer(t, srv, head, body, wait)
	return code
}

// rawAnswer is raw with the answer's body and how long it took from the first byte sent.
func rawAnswer(t *testing.T, srv *httptest.Server, head string, body func(net.Conn), wait time.Duration) (int, string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = fmt.Fprintf(conn, "%s\r\nHost: test\r\n\r\n", head)
	require.NoError(t, err)
	go body(conn)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Logf("no answer within %v: %v", wait, err)
		return 0, "", time.Since(start)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), time.Since(start)
}

// A body that stalls or trickles is cut off at its read deadline (a 408), however long the client
// would keep the connection. The deadline is the harness's 0.5 s plus the declared length at
// 256 KiB/s, so a small body is cut off early and a large one has the time its size needs; a
// chunked body, which declares none, gets the time of the largest accepted body.
func TestSlowBodyIsCutOffAtItsDeadline(t *testing.T) {
	const (
		jsonHead  = "POST /send HTTP/1.1\r\nContent-Type: application/json\r\n"
		allowance = 500 * time.Millisecond // the harness's BodyAllowance
		slack     = time.Second            // for a busy machine
	)
	large := `{"name":"n","content":"` + strings.Repeat("c", 1_000_000) + `"}`
	tests := []struct {
		name       string
		maxContent int
		head       string
		body       func(net.Conn)
		want       int
		// The answer comes after at least min and before max (from the first byte sent).
		min, max time.Duration
	}{
		{
			// 0.5 s + 0.4 ms; before, this waited for the largest body's 0.5 s + 24 s.
			name: "stalls after 11 of 100 declared bytes", maxContent: 1 << 20,
			head: jsonHead + "Content-Length: 100",
			body: func(c net.Conn) { _, _ = c.Write([]byte(`{"name":"n"`)) },
			want: http.StatusRequestTimeout, min: allowance, max: allowance + slack,
		},
		{
			name: "trickles 100 declared bytes, one every 50 ms", maxContent: 1 << 20,
			head: jsonHead + "Content-Length: 100",
			body: func(c net.Conn) {
				body := `{"name":"n","content":"` + strings.Repeat("c", 100-25) + `"}`
				for _, b := range []byte(body) {
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			},
			want: http.StatusRequestTimeout, min: allowance, max: allowance + slack,
		},
		{
			// 1 MB declared: 0.5 s + 3.8 s to read it; it comes at 500 kB/s, in 2 s.
			name: "a large declared body arriving steadily is read whole", maxContent: 1 << 20,
			head: jsonHead + "Content-Length: " + strconv.Itoa(len(large)),
			body: func(c net.Conn) {
				const parts = 20
				n := len(large)/parts + 1
				for i := 0; i < len(large); i += n {
					if _, err := c.Write([]byte(large[i:min(i+n, len(large))])); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			},
			want: http.StatusAccepted, min: 1900 * time.Millisecond, max: allowance + 1_000_030*time.Second/(256<<10),
		},
		{
			// The largest body (6 × 64 KiB + 4 KiB) takes 0.5 s + 1.52 s = 2.02 s to read.
			name: "a chunked body keeps the largest body's deadline", maxContent: 64 << 10,
			head: jsonHead + "Transfer-Encoding: chunked",
			body: func(c net.Conn) { _, _ = c.Write([]byte("b\r\n{\"name\":\"n\"\r\n")) },
			want: http.StatusRequestTimeout, min: 2 * time.Second, max: 2*time.Second + slack,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, tc.maxContent)
			srv := httptest.NewServer(hs.h)
			defer srv.Close()
			code, body, took := rawAnswer(t, srv, tc.head, tc.body, 8*time.Second)
			t.Logf("%d after %v", code, took)
			require.Equal(t, tc.want, code, body)
			require.GreaterOrEqual(t, took, tc.min)
			require.Less(t, took, tc.max)
			if tc.want == http.StatusRequestTimeout {
				require.JSONEq(t, `{"error":"body: not received in time","field":"body"}`, body)
				require.Empty(t, hs.q.published())
			} else {
				require.Len(t, hs.q.published(), 1)
			}
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
