package live_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/live"
)

// The vendored chart library is what its NOTICE says: the version in the NOTICE, in each file's
// first line and in uPlot's own banner agree, the rest of each file is the package's file (its
// checksum), and the binary serves both files with the page's policy.
func TestVendoredUPlot(t *testing.T) {
	notice, err := os.ReadFile("web/vendor/NOTICE")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^version: +(\S+)$`).FindSubmatch(notice)
	require.NotNil(t, m, "the NOTICE names the version")
	version := string(m[1])
	require.Regexp(t, `(?m)^licence: +MIT\b`, string(notice))
	license, err := os.ReadFile("web/vendor/LICENSE.uplot")
	require.NoError(t, err)
	require.Contains(t, string(license), "The MIT License")

	srv := httptest.NewServer(live.Page())
	defer srv.Close()
	for file, from := range map[string]string{"uplot.js": "dist/uPlot.iife.min.js", "uplot.css": "dist/uPlot.min.css"} {
		sum := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(file) + ` +` + regexp.QuoteMeta(from) + ` +([0-9a-f]{64})$`).FindSubmatch(notice)
		require.NotNil(t, sum, "the NOTICE gives %s's checksum", file)

		resp, err := http.Get(srv.URL + "/vendor/" + file)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, file)
		require.Equal(t, "default-src 'self'; frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"), file)
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), file)
		onDisk, err := os.ReadFile("web/vendor/" + file)
		require.NoError(t, err)
		require.Equal(t, onDisk, body, "the binary serves the file as committed")

		first, rest, ok := strings.Cut(string(body), "\n")
		require.True(t, ok)
		require.Equal(t, "/*! uPlot "+version+" (MIT licence, see LICENSE.uplot): the npm package uplot@"+version+", "+from+", unchanged below this line */", first)
		got := sha256.Sum256([]byte(rest))
		require.Equal(t, string(sum[1]), hex.EncodeToString(got[:]), "%s below its first line is the package's %s", file, from)
		if file == "uplot.js" {
			require.True(t, strings.HasPrefix(rest, "/*! https://github.com/leeoniya/uPlot (v"+version+") */"), "uPlot's own banner names the same version")
			require.Contains(t, resp.Header.Get("Content-Type"), "javascript")
		} else {
			require.Contains(t, resp.Header.Get("Content-Type"), "text/css")
		}
	}
}
