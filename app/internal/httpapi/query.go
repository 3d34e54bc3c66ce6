package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// checkQuery refuses a malformed query string (a bad %-escape, a ';' separator) with a 400 that
// names the parameter, instead of silently dropping the pair as url.ParseQuery does.
func checkQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if name, reason, ok := malformedQuery(c.Request().URL.RawQuery); ok {
			return c.JSON(http.StatusBadRequest, errorBody{Error: name + ": malformed query parameter: " + reason, Field: name})
		}
		return next(c)
	}
}

// malformedQuery returns the first parameter of raw that does not decode, and why.
func malformedQuery(raw string) (name, reason string, bad bool) {
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if strings.Contains(pair, ";") {
			return paramName(key), "';' is not a separator, use '&'", true
		}
		if _, err := url.QueryUnescape(key); err != nil {
			return paramName(key), err.Error(), true
		}
		if _, err := url.QueryUnescape(value); err != nil {
			return paramName(key), err.Error(), true
		}
	}
	return "", "", false
}

// paramName is the parameter's name as far as it decodes, for the answer.
func paramName(key string) string {
	if k, err := url.QueryUnescape(key); err == nil {
		return k
	}
	return key
}
