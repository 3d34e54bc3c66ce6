package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/keda-demo/keda-demo/messaging/contract"
	"github.com/keda-demo/keda-demo/messaging/rabbitqueue"
)

// maxIdempotencyKey bounds the Idempotency-Key header, which becomes the record id.
const maxIdempotencyKey = 200

type sendResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// send publishes {name, content} from the query (as the tutorial's curl does) or from a JSON body,
// and answers 202 only after the broker confirmed the message and did not return it.
func (a *api) send(c echo.Context) error {
	msg, err := a.readMessage(c)
	if err != nil {
		return a.badRequest(c, err)
	}
	if err := msg.Validate(a.MaxContentBytes); err != nil {
		return a.badRequest(c, err)
	}
	id := c.Request().Header.Get("Idempotency-Key")
	if id == "" {
		id = uuid.NewString()
	} else if !validKey(id) {
		return a.badRequest(c, &contract.FieldError{Field: "Idempotency-Key", Reason: "must be 1 to 200 printable ASCII characters"})
	}
	createdAt := a.Now()
	// Once the request is read, its publish finishes (bounded) even if the client goes away
	// meanwhile: Go cancels the request's context on a half-close, and a publish cut short would
	// be counted as a failure it is not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), a.PublishTimeout)
	defer cancel()
	start := time.Now()
	err = a.Queue.Publish(ctx, id, msg, createdAt)
	a.Metrics.PublishSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		// The error names the broker's host and vhost: it goes to the log. The client gets the
		// reason, in the same word as the metric label.
		reason := rabbitqueue.Classify(err)
		a.Metrics.PublishFailures.WithLabelValues(string(reason)).Inc()
		a.Log.Warn("publish failed", "message_id", id, "reason", string(reason), "error", err.Error())
		c.Response().Header().Set("Retry-After", retryAfter)
		return c.JSON(http.StatusServiceUnavailable, errorBody{Error: "message not queued: " + reason.Sentence(), Reason: string(reason)})
	}
	return c.JSON(http.StatusAccepted, sendResponse{ID: id, Status: "queued"})
}

// readMessage takes the message from the query or from a JSON body, never from both: a non-empty
// body that is not JSON is refused (415), not ignored.
func (a *api) readMessage(c echo.Context) (contract.Message, error) {
	q := c.QueryParams()
	inQuery := q.Has("name") || q.Has("content")
	isJSON := strings.HasPrefix(c.Request().Header.Get(echo.HeaderContentType), echo.MIMEApplicationJSON)
	if !isJSON {
		empty, err := emptyBody(c.Request())
		switch {
		case err != nil:
			return contract.Message{}, bodyError(err)
		case empty:
			return contract.Message{Name: q.Get("name"), Content: q.Get("content")}, nil
		case inQuery:
			return contract.Message{}, errBoth
		default:
			return contract.Message{}, &contract.FieldError{Field: "body", Reason: "must be JSON (Content-Type: application/json)", Err: errMediaType}
		}
	}
	if inQuery {
		return contract.Message{}, errBoth
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, a.maxBody()))
	if err != nil {
		return contract.Message{}, bodyError(err)
	}
	m, err := contract.Decode(body)
	if err != nil {
		var fe *contract.FieldError
		if errors.As(err, &fe) && fe.Field == "body" {
			return m, err
		}
	}
	return m, nil // field checks happen in send, with the content limit
}

var (
	errBoth = &contract.FieldError{Field: "body", Reason: "give name and content either as query parameters or as a JSON body, not both"}
	// errMediaType marks a body of a type the route does not take (415).
	errMediaType = errors.New("unsupported media type")
	// errSlowBody marks a body that did not arrive by its read deadline (408).
	errSlowBody = errors.New("not received in time")
)

// maxBody is the largest JSON body: escaping can make content up to 6 bytes per byte; the exact
// limit is checked after decoding.
func (a *api) maxBody() int64 { return int64(a.MaxContentBytes)*6 + 4096 }

// emptyBody reports whether the request has no body, reading at most one byte of it.
func emptyBody(r *http.Request) (bool, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return true, nil
	}
	n, err := r.Body.Read(make([]byte, 1))
	if n > 0 {
		return false, nil
	}
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &contract.FieldError{Field: "body", Reason: contract.ErrTooLarge.Error(), Err: contract.ErrTooLarge}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &contract.FieldError{Field: "body", Reason: errSlowBody.Error(), Err: errSlowBody}
	default:
		return &contract.FieldError{Field: "body", Reason: "unreadable: " + err.Error()}
	}
}

func (a *api) badRequest(c echo.Context, err error) error {
	var fe *contract.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, contract.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, errMediaType):
		code = http.StatusUnsupportedMediaType
	case errors.Is(err, errSlowBody):
		code = http.StatusRequestTimeout
	}
	return c.JSON(code, errorBody{Error: fe.Error(), Field: fe.Field})
}

func validKey(k string) bool {
	if len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
