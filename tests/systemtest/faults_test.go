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

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/tests/testkit"
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

// assertEventually is require.Eventually that lets the caller say more on failure.
func assertEventually(t *testing.T, cond func() bool, within time.Duration) bool {
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// drain runs processors, four at a time as KEDA would, until the broker's queue is empty (as
// KEDA goes by the queue's length, not by what one run saw).
func (s *stack) drain(brokerURL string) {
	s.t.Helper()
	conn, err := amqp.Dial(brokerURL)
	require.NoError(s.t, err)
	defer conn.Close()
	depth := func() int {
		ch, err := conn.Channel()
		require.NoError(s.t, err)
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(s.top.Queue, true, false, false, false, nil)
		require.NoError(s.t, err)
		return q.Messages
	}
	for round := 0; depth() > 0; round++ {
		require.Less(s.t, round, 10, "the queue does not drain")
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					code, outcome := s.process()
					require.Equal(s.t, 0, code, outcome)
					if outcome == "queue-empty" {
						return
					}
				}
			}()
		}
		wg.Wait()
	}
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

// Real broker faults under load, each on the test's own RabbitMQ node: a crash (kill -9), a stop of
// the RabbitMQ application (stop_app), a memory alarm and a frozen VM (SIGSTOP). For each: every request is answered within
// PUBLISH_TIMEOUT + 1 s, every non-202 is a 503 with Retry-After, every 202 is exactly one record
// once the processors drained the queue, and the app takes 202s again once the broker is back.
func TestBrokerFaultsUnderLoad(t *testing.T) {
	rmq := testkit.StartRabbitNode(t)
	const publishTimeout = 2 * time.Second
	faults := []struct {
		name            string
		inject, restore func()
	}{
		{"kill -9", rmq.Kill9, rmq.Start},
		{"stop_app", rmq.StopApp, rmq.StartApp},
		{"memory alarm", func() { rmq.MemoryAlarm(true) }, func() { rmq.MemoryAlarm(false) }},
		{"frozen VM", rmq.Freeze, rmq.Thaw},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			s := startNodeStack(t, rmq, "PUBLISH_TIMEOUT="+publishTimeout.String())
			l := startLoad(s, 4, 20*time.Millisecond)
			// A quorum queue a few hundred milliseconds old can lose what it confirmed to a crash
			// (measured on RabbitMQ 3.10: every message of a 0.3 s old queue); the app's queue is
			// long-lived, so the fault comes once the queue is 3 s old.
			time.Sleep(3 * time.Second)
			require.Eventually(t, func() bool { return l.accepted(time.Time{}) >= 40 }, 30*time.Second, 50*time.Millisecond)
			injected := time.Now()
			f.inject()
			time.Sleep(4 * time.Second)
			f.restore()
			back := time.Now()
			backAgain := func() bool { return l.accepted(back) > 0 }
			election := ""
			if !assertEventually(t, backAgain, 15*time.Second) {
				// The app keeps answering 503 (confirm_timeout: the queue takes the message but
				// nobody confirms it) while the queue has no leader: the broker's doing, not the app's.
				election = ", its quorum queue without a leader until an election was triggered after 15 s"
				for _, q := range []string{s.top.Queue, s.top.DeadLetterQueue()} {
					rmq.TriggerElection(q)
				}
				if !assertEventually(t, backAgain, 45*time.Second) {
					t.Fatalf("no 202 within 60 s after the broker came back; its queues:\n%s", rmq.Ctl("list_queues", "name", "type", "state", "messages", "leader"))
				}
			}
			time.Sleep(time.Second)
			answers := l.finish()

			refused := map[string]int{}
			var accepted []string
			acceptedAt := map[string]time.Time{}
			firstBack := time.Duration(-1)
			var slowest time.Duration
			for _, a := range answers {
				require.NoError(t, a.err)
				slowest = max(slowest, a.took)
				require.LessOrEqual(t, a.took, publishTimeout+time.Second, "an answer took %v", a.took)
				if a.code == http.StatusAccepted {
					accepted = append(accepted, a.id)
					acceptedAt[a.id] = a.at
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

			s.drain(rmq.URL)
			stored := s.records()
			var lost []string
			for _, id := range accepted {
				if stored[id] != 1 {
					lost = append(lost, fmt.Sprintf("%s answered 202 %.3f s after the fault, stored %d times", id, acceptedAt[id].Sub(injected).Seconds(), stored[id]))
				}
			}
			require.Empty(t, lost, "of %d answered 202; the broker's queues after the drain:\n%s", len(accepted),
				rmq.Ctl("list_queues", "name", "messages_ready", "messages_unacknowledged", "state"))
			extra := len(stored) - len(accepted) // answered 503 (the outcome unknown to the app) yet queued
			reasons := make([]string, 0, len(refused))
			for r, n := range refused {
				reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
			}
			sort.Strings(reasons)
			fmt.Printf("fault %q: %d answers, %d x 202 each stored once, 503 by reason {%s} all with Retry-After, %d stored though answered 503, slowest answer %.2f s, first 202 %.2f s after the broker was back%s\n",
				f.name, len(answers), len(accepted), strings.Join(reasons, " "), extra, slowest.Seconds(), firstBack.Seconds(), election)
		})
	}
}
