// Package live is the app's live page: an embedded HTML page and the server-sent event stream it
// reads. A Hub holds the current view (queue depths, the ScaledJob's Jobs, the newest records);
// the sources put changes into it, and it sends each client a snapshot and then every change.
package live

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Queue is the depth of the work queue (ready messages) and of its dead-letter queue.
type Queue struct {
	// Known is false until the broker answered, and while it does not.
	Known      bool `json:"known"`
	Work       int  `json:"work"`
	DeadLetter int  `json:"deadLetter"`
}

// Job states.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Job is one Job of the ScaledJob.
type Job struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	// Reason says why a Job is pending or failed, when Kubernetes says.
	Reason string `json:"reason,omitempty"`
	// Deleted is set once Kubernetes deleted the Job (KEDA's history limits); it stays listed.
	Deleted bool `json:"deleted,omitempty"`
}

// Jobs watch states.
const (
	JobsStarting  = "starting"
	JobsWatching  = "watching"
	JobsDisabled  = "disabled"
	JobsForbidden = "forbidden"
	JobsFailing   = "unavailable"
)

// JobsStatus says whether the page can show Jobs, and why not.
type JobsStatus struct {
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Record is a stored record as the page shows it.
type Record struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Content   string    `json:"content"`
	Job       string    `json:"job,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	StoredAt  time.Time `json:"storedAt"`
	// WorkDoneAt is zero while the simulated work still runs.
	WorkDoneAt time.Time `json:"workDoneAt,omitzero"`
}

// Chart is how the page draws its chart.
type Chart struct {
	// WindowSeconds is how far back the chart reaches.
	WindowSeconds int `json:"windowSeconds"`
}

// Snapshot is the whole view, sent to a client when it connects, with the page's settings.
type Snapshot struct {
	Chart      Chart      `json:"chart"`
	Queue      Queue      `json:"queue"`
	JobsStatus JobsStatus `json:"jobsStatus"`
	Jobs       []Job      `json:"jobs"`
	Records    []Record   `json:"records"`
}

// Event names on the stream.
const (
	EventSnapshot   = "snapshot"
	EventQueue      = "queue"
	EventJobsStatus = "jobs-status"
	EventJob        = "job"
	EventRecord     = "record"
)

// Options bound the hub.
type Options struct {
	// MaxClients is how many streams may be open at once; one more is refused with 503.
	MaxClients int
	// Heartbeat is how often an idle stream gets a comment line, and how long any write to a
	// client may take before the client is dropped.
	Heartbeat time.Duration
	// Buffer is how many events may wait for a client; a client further behind is dropped.
	Buffer int
	// MaxJobs and MaxRecords bound the view; the oldest leave first (deleted Jobs before live ones).
	MaxJobs, MaxRecords int
	// ChartWindow is how far back the page's chart reaches (whole seconds).
	ChartWindow time.Duration
	Log         *slog.Logger
}

// Hub is the live view and its clients. Its methods are safe for concurrent use.
type Hub struct {
	opt Options

	mu         sync.Mutex
	queue      Queue
	jobsStatus JobsStatus
	jobs       map[string]Job
	records    map[string]Record
	clients    map[*client]struct{}
	closed     bool
}

type client struct {
	events chan []byte
	gone   chan struct{} // closed when the hub drops the client
	once   sync.Once
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

// NewHub returns an empty hub; zero options get defaults.
func NewHub(o Options) *Hub {
	if o.MaxClients <= 0 {
		o.MaxClients = 20
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.MaxJobs <= 0 {
		o.MaxJobs = 200
	}
	if o.MaxRecords <= 0 {
		o.MaxRecords = 100
	}
	if o.ChartWindow < time.Second {
		o.ChartWindow = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		opt: o, jobsStatus: JobsStatus{State: JobsStarting},
		jobs: map[string]Job{}, records: map[string]Record{}, clients: map[*client]struct{}{},
	}
}

// SetQueue records the queue depths.
func (h *Hub) SetQueue(q Queue) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q != h.queue {
		h.queue = q
		h.broadcast(EventQueue, q)
	}
}

// SetJobsStatus records whether Jobs can be watched.
func (h *Hub) SetJobsStatus(s JobsStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s != h.jobsStatus {
		h.jobsStatus = s
		h.broadcast(EventJobsStatus, s)
	}
}

// PutJob adds or updates a Job.
func (h *Hub) PutJob(j Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.jobs[j.Name]; ok && old == j {
		return
	}
	h.jobs[j.Name] = j
	h.broadcast(EventJob, j)
	h.trimJobs()
}

// DeleteJob marks a Job deleted; it stays in the view with its last state.
func (h *Hub) DeleteJob(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	j, ok := h.jobs[name]
	if !ok || j.Deleted {
		return
	}
	j.Deleted = true
	h.jobs[name] = j
	h.broadcast(EventJob, j)
}

// PutRecords adds or updates records (a poll of the newest ones); unchanged ones send nothing.
func (h *Hub) PutRecords(rs []Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rs {
		if old, ok := h.records[r.ID]; ok && old == r {
			continue
		}
		h.records[r.ID] = r
		h.broadcast(EventRecord, r)
	}
	for len(h.records) > h.opt.MaxRecords {
		oldest := ""
		for id, r := range h.records {
			if o, ok := h.records[oldest]; !ok || r.CreatedAt.Before(o.CreatedAt) {
				oldest = id
			}
		}
		delete(h.records, oldest)
	}
}

// trimJobs drops the oldest Jobs above MaxJobs, deleted ones first. Clients trim alike.
func (h *Hub) trimJobs() {
	for len(h.jobs) > h.opt.MaxJobs {
		var victim *Job
		for _, j := range h.jobs {
			if victim == nil || (j.Deleted && !victim.Deleted) ||
				(j.Deleted == victim.Deleted && j.Created.Before(victim.Created)) {
				victim = &j
			}
		}
		delete(h.jobs, victim.Name)
	}
}

// Snapshot returns the current view: Jobs and records newest first.
func (h *Hub) Snapshot() Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshot()
}

func (h *Hub) snapshot() Snapshot {
	s := Snapshot{Chart: Chart{WindowSeconds: int(h.opt.ChartWindow / time.Second)}, Queue: h.queue, JobsStatus: h.jobsStatus, Jobs: []Job{}, Records: []Record{}}
	for _, j := range h.jobs {
		s.Jobs = append(s.Jobs, j)
	}
	sort.Slice(s.Jobs, func(a, b int) bool { return s.Jobs[a].Created.After(s.Jobs[b].Created) })
	for _, r := range h.records {
		s.Records = append(s.Records, r)
	}
	sort.Slice(s.Records, func(a, b int) bool { return s.Records[a].CreatedAt.After(s.Records[b].CreatedAt) })
	return s
}

// Clients is how many streams are open.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Close ends every stream and refuses new ones (at server shutdown, which would otherwise wait
// for streams that never end).
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		c.drop()
		delete(h.clients, c)
	}
}

// broadcast queues an event for every client; h.mu is held. A client whose buffer is full is
// dropped rather than waited for, so one slow reader never holds the others back.
func (h *Hub) broadcast(event string, v any) {
	if len(h.clients) == 0 {
		return
	}
	frame := encode(event, v)
	for c := range h.clients {
		select {
		case c.events <- frame:
		default:
			h.opt.Log.Info("live client dropped: too slow", "buffer", h.opt.Buffer)
			c.drop()
			delete(h.clients, c)
		}
	}
}

func encode(event string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil { // only our own plain structs are encoded
		panic(fmt.Sprintf("live: encode %s: %v", event, err))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", event, data)
	return b.Bytes()
}

// ServeHTTP is the event stream: a snapshot, then each change, and a comment line when idle for
// a heartbeat. Every write must finish within a heartbeat, so a client that stopped reading is
// dropped instead of holding a goroutine and its buffers.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &client{events: make(chan []byte, h.opt.Buffer+1), gone: make(chan struct{})}
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	case len(h.clients) >= h.opt.MaxClients:
		h.mu.Unlock()
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("too many live clients (at most %d)", h.opt.MaxClients), http.StatusServiceUnavailable)
		return
	}
	// The snapshot is queued under the same lock that registers the client: no change falls
	// between the two.
	c.events <- encode(EventSnapshot, h.snapshot())
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
	}()

	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // proxies such as ingress-nginx would otherwise buffer the stream
	write := func(b []byte) bool {
		// An error means the server cannot set deadlines (a test recorder); writes still work.
		_ = rc.SetWriteDeadline(time.Now().Add(h.opt.Heartbeat))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if !write([]byte("retry: 2000\n\n")) {
		return
	}
	beat := time.NewTicker(h.opt.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.gone:
			return
		case b := <-c.events:
			if !write(b) {
				return
			}
		case <-beat.C:
			if !write([]byte(": heartbeat\n\n")) {
				return
			}
		}
	}
}
