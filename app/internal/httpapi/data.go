package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/keda-demo/keda-demo/messaging/mongostore"
)

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// data lists stored records, newest first. The next page's cursor is in a Link header.
func (a *api) data(c echo.Context) error {
	limit := defaultLimit
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return c.JSON(http.StatusBadRequest, errorBody{Error: "limit: must be an integer from 1 to 1000", Field: "limit"})
		}
		limit = n
	}
	var after *mongostore.Cursor
	if s := c.QueryParam("cursor"); s != "" {
		cur, err := mongostore.ParseCursor(s)
		if err != nil {
			return c.JSON(http.StatusBadRequest, errorBody{Error: "cursor: " + err.Error(), Field: "cursor"})
		}
		after = &cur
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), a.DataTimeout)
	defer cancel()
	records, next, err := a.Records.List(ctx, limit, after)
	if err != nil {
		a.Log.Warn("list records failed", "error", err.Error())
		c.Response().Header().Set("Retry-After", retryAfter)
		return c.JSON(http.StatusServiceUnavailable, errorBody{Error: "records unavailable: MongoDB did not answer"})
	}
	if next != nil {
		q := url.Values{"limit": {strconv.Itoa(limit)}, "cursor": {next.String()}}
		c.Response().Header().Set("Link", `</data?`+q.Encode()+`>; rel="next"`)
	}
	return c.JSON(http.StatusOK, records)
}
