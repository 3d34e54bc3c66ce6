// Package smoke is `app smoke`: an end-to-end check through the public API, used by `helm test`.
// It POSTs a uniquely named record and polls GET /data until the record appears.
package smoke

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Run parses args and runs the check; it returns the process exit code.
func Run(ctx context.Context, args []string, out io.Writer) int {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(out)
	base := fs.String("url", "", "base URL of the app, e.g. http://keda-demo-app:8080 (required)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	prefix := fs.String("name-prefix", "smoke-", "prefix of the test record's name, to tell it from real data")
	interval := fs.Duration("interval", time.Second, "poll interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *base == "" {
		fmt.Fprintln(out, "smoke: --url is required")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := checker{base: strings.TrimRight(*base, "/"), http: &http.Client{Timeout: 10 * time.Second}, interval: *interval}
	start := time.Now()
	name, id, err := c.run(ctx, *prefix)
	if err != nil {
		fmt.Fprintf(out, "smoke: FAIL after %s: %v\n", time.Since(start).Round(time.Millisecond), err)
		return 1
	}
	fmt.Fprintf(out, "smoke: OK: record %q (id %s) stored in %s\n", name, id, time.Since(start).Round(time.Millisecond))
	return 0
}

type checker struct {
	base     string
	http     *http.Client
	interval time.Duration
}

func (c checker) run(ctx context.Context, prefix string) (string, string, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	id, err := c.send(ctx, name)
	if err != nil {
		return name, "", err
	}
	for {
		found, err := c.stored(ctx, id)
		if found {
			return name, id, nil
		}
		select {
		case <-ctx.Done():
			return name, id, fmt.Errorf("record %s was queued but never appeared in GET /data (last error: %v): is KEDA running, and can the processor Jobs reach RabbitMQ and MongoDB?", id, err)
		case <-time.After(c.interval):
		}
	}
}

// send POSTs the record, retrying while the app answers 503 (broker not reachable yet).
func (c checker) send(ctx context.Context, name string) (string, error) {
	u := c.base + "/send?" + url.Values{"name": {name}, "content": {"keda-demo smoke test " + time.Now().UTC().Format(time.RFC3339)}}.Encode()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		resp, err := c.http.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				var r struct{ ID string }
				if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
					return "", fmt.Errorf("POST /send: 202 without an id: %s", body)
				}
				return r.ID, nil
			}
			last = fmt.Errorf("POST /send: %s: %s", resp.Status, strings.TrimSpace(string(body)))
			if resp.StatusCode != http.StatusServiceUnavailable {
				return "", last
			}
		} else {
			last = fmt.Errorf("POST /send: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", last
		case <-time.After(c.interval):
		}
	}
}

// stored looks for id in GET /data, following up to five pages of newer records.
func (c checker) stored(ctx context.Context, id string) (bool, error) {
	next := c.base + "/data?limit=1000"
	for page := 0; page < 5 && next != ""; page++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		resp, err := c.http.Do(req)
		if err != nil {
			return false, fmt.Errorf("GET /data: %w", err)
		}
		var records []struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&records)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("GET /data: %s", resp.Status)
		}
		if err != nil {
			return false, fmt.Errorf("GET /data: %w", err)
		}
		for _, r := range records {
			if r.ID == id {
				return true, nil
			}
		}
		next = nextLink(c.base, resp.Header.Get("Link"))
	}
	return false, errors.New("not found yet")
}

func nextLink(base, link string) string {
	target, rest, ok := strings.Cut(link, ">;")
	if !ok || !strings.Contains(rest, `rel="next"`) {
		return ""
	}
	return base + strings.TrimPrefix(strings.TrimSpace(target), "<")
}
