package httpapi

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
)

// A LongLived route outlives the default deadlines that end every other request.
func TestLongLivedRouteIsExemptFromRequestDeadlines(t *testing.T) {
	e := echo.New()
	e.Use(deadlines(100*time.Millisecond, 200*time.Millisecond))
	stream := func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentType, "text/event-stream")
		for i := range 5 {
			if _, err := c.Response().Write([]byte("data: beat\n\n")); err != nil {
				return err
			}
			c.Response().Flush()
			if i < 4 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		return nil
	}
	e.GET("/bounded", stream)
	e.GET("/live", stream, LongLived)
	srv := httptest.NewServer(e)
	defer srv.Close()

	beats := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		n := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "data: beat" {
				n++
			}
		}
		return n
	}
	require.Equal(t, 5, beats("/live"), "the stream lasts 0.4 s, past the 0.2 s default")
	require.Less(t, beats("/bounded"), 5, "without LongLived the default total deadline ends it")
}
