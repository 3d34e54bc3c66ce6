package systemtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/testkit"
)

// answer is what one POST /send got.
type answer struct {
	at         time.Time // when the answer came
	took       time.Duration
	code       int
	id, reason string
	retryAfter string
	err        error
}

// load sends POST /send from a few clients, without pause beyond a short one, until finish.
type load struct {
	s       *stack
	mu      sync.Mutex
	answers []answer
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(s *stack, clients int, pause time.Duration) *load {
	l := &load{s: s, stop: make(chan struct{})}
	client := &http.Client{Timeout: 30 * time.Second}
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
				l.add(send(client, s.URL, fmt.Sprintf("load-%d-%d", c, i)))
			}
		}()
	}
	return l
}

func send(client *http.Client, base, name string) answer {
	start := time.Now()
	resp, err := client.Post(base+"/send?"+url.Values{"name": {name}, "content": {"c"}}.Encode(), "", nil)
	a := answer{took: time.Since(start), err: err}
	a.at = start.Add(a.took)
	if err != nil {
		return a
	}
	defer resp.Body.Close()
	var body struct{ ID, Reason string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	a.code, a.id, a.reason, a.retryAfter = resp.StatusCode, body.ID, body.Reason, resp.Header.Get("Retry-After")
	return a
}

func (l *load) add(a answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers = append(l.answers, a)
}

// accepted counts the 202s so far, and since t when given.
func (l *load) accepted(since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		if a.code == http.StatusAccepted && !a.at.Before(since) {
			n++
		}
	}
	return n
}

func (l *load) finish() []answer {
	close(l.stop)
	l.wg.Wait()
	return l.answers
}

// drain runs processors, four at a time as KEDA would, until the queue is empty.
func (s *stack) drain() {
	s.t.Helper()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				code, outcome := s.process()
				if !(code == 0 && outcome == "stored") {
					require.Equal(s.t, 0, code, outcome)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// records returns how many times each id is in GET /data, following every page.
func (s *stack) records() map[string]int {
	s.t.Helper()
	ids := map[string]int{}
	next := "/data?limit=1000"
	for next != "" {
		resp, err := http.Get(s.URL + next)
		require.NoError(s.t, err)
		require.Equal(s.t, 200, resp.StatusCode)
		var recs []record
		require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&recs))
		_ = resp.Body.Close()
		for _, r := range recs {
			ids[r.ID]++
		}
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			next = strings.TrimPrefix(strings.Split(link, ">")[0], "<")
		}
	}
	return ids
}

// Real broker faults under load, each on the private node: a crash (kill -9), a stop of the
// RabbitMQ application (stop_app) and a memory alarm. For each: every request is answered within
// PUBLISH_TIMEOUT + 1 s, every non-202 is a 503 with Retry-After, every 202 is exactly one record
// once the processors drained the queue, and the app takes 202s again once the broker is back.
func TestBrokerFaultsUnderLoad(t *testing.T) {
	rmq := testkit.StartPrivateBroker(t)
	const publishTimeout = 2 * time.Second
	faults := []struct {
		name            string
		inject, restore func()
	}{
		{"kill -9", rmq.Kill9, rmq.Start},
		{"stop_app", rmq.StopApp, rmq.StartApp},
		{"memory alarm", func() { rmq.MemoryAlarm(true) }, func() { rmq.MemoryAlarm(false) }},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			s := startPrivateStack(t, rmq, "PUBLISH_TIMEOUT="+publishTimeout.String())
			l := startLoad(s, 2, 100*time.Millisecond)
			require.Eventually(t, func() bool { return l.accepted(time.Time{}) >= 20 }, 30*time.Second, 50*time.Millisecond)
			f.inject()
			time.Sleep(4 * time.Second)
			f.restore()
			back := time.Now()
			require.Eventually(t, func() bool { return l.accepted(back) > 0 }, 60*time.Second, 50*time.Millisecond, "no 202 after the broker came back")
			time.Sleep(time.Second)
			answers := l.finish()

			refused := map[string]int{}
			var accepted []string
			firstBack := time.Duration(-1)
			var slowest time.Duration
			for _, a := range answers {
				require.NoError(t, a.err)
				slowest = max(slowest, a.took)
				require.LessOrEqual(t, a.took, publishTimeout+time.Second, "an answer took %v", a.took)
				if a.code == http.StatusAccepted {
					accepted = append(accepted, a.id)
					if !a.at.Before(back) && (firstBack < 0 || a.at.Sub(back) < firstBack) {
						firstBack = a.at.Sub(back)
					}
					continue
				}
				require.Equal(t, http.StatusServiceUnavailable, a.code)
				require.Equal(t, "5", a.retryAfter, "a %d without Retry-After", a.code)
				refused[a.reason]++
			}
			require.NotEmpty(t, refused, "the fault refused nothing")

			s.drain()
			stored := s.records()
			for _, id := range accepted {
				require.Equal(t, 1, stored[id], "message %s was answered 202", id)
			}
			extra := len(stored) - len(accepted) // answered 503 (the outcome unknown to the app) yet queued
			reasons := make([]string, 0, len(refused))
			for r, n := range refused {
				reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
			}
			sort.Strings(reasons)
			fmt.Printf("fault %q: %d answers, %d x 202 each stored once, 503 by reason {%s} all with Retry-After, %d stored though answered 503, slowest answer %.2f s, first 202 %.2f s after the broker was back\n",
				f.name, len(answers), len(accepted), strings.Join(reasons, " "), extra, slowest.Seconds(), firstBack.Seconds())
		})
	}
}
