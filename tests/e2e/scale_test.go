//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/keda-demo/keda-demo/tests/testkit"
)

// TestBenchScale is `go tool task bench-scale`: on the cluster of `task up`, a burst of
// BENCH_MESSAGES (default 300) with 0 s of work through POST /send, scaled by the ScaledJob at the
// chart's defaults (BENCH_SETS adds --set values, e.g. "processor.keda.maxReplicaCount=30"), then,
// in the same run, the node's own limit for one pod per message: one Indexed Job with
// completions=M, parallelism=maxReplicaCount and the processor's own pod template on the empty
// queue (each pod connects, finds nothing and exits 0), the Job controller's best schedule. It
// prints one line starting `bench-scale:` (also appended to $KEDA_DEMO_RUN/bench-scale.txt):
// Jobs per message (only the Jobs this burst created), Jobs that found the queue empty, the time
// until the M-th record, the baseline's time and the ratio baseline ÷ KEDA, the most Jobs and Pods
// the API server held at once, and the app pods' peak RSS and CPU seconds during the burst; then
// where a slot's time went, for both: the mean share of the n slots holding a pod, a pod's life,
// the wait of an empty slot per pod, and for KEDA's Jobs the same per Job, plus the seconds from
// a Job's creation to its pod and from its pod's end to the Job finished; last, for each side, how
// busy the node's cores were and the CPU each part of the platform spent per message.
func TestBenchScale(t *testing.T) {
	if os.Getenv("KEDA_DEMO_BENCH_SCALE") == "" {
		t.Skip("a benchmark, not a test: run it with `go tool task bench-scale`")
	}
	e := newEnv(t)
	m := benchInt(t, "BENCH_MESSAGES", 300)
	e.upForBench(t)

	sj, err := e.dyn.Resource(scaledJobs).Namespace(namespace).Get(e.ctx, relName+"-processor", metav1.GetOptions{})
	must(t, err)
	spec := sj.Object["spec"].(map[string]any)
	n := int(spec["maxReplicaCount"].(int64))
	polling := int(spec["pollingInterval"].(int64))
	var tmpl corev1.PodTemplateSpec
	must(t, runtime.DefaultUnstructuredConverter.FromUnstructured(spec["jobTargetRef"].(map[string]any)["template"].(map[string]any), &tmpl))
	strategy, _ := spec["scalingStrategy"].(map[string]any)
	e.purge(t)
	// A Job started before the watch (e.g. for a message the purge then removed) would take one of
	// the burst's messages unseen: start from no Job running.
	e.eventually("no processor Job running before the burst", 3*time.Minute, func() (bool, error) {
		l, err := e.cs.BatchV1().Jobs(namespace).List(e.ctx, metav1.ListOptions{LabelSelector: processorJobs})
		if err != nil {
			return false, err
		}
		running := 0
		for _, j := range l.Items {
			if done, _ := jobFinished(&j); !done {
				running++
			}
		}
		return running == 0, fmt.Errorf("%d running", running)
	})

	var page *pageProbe
	if os.Getenv("BENCH_PAGE") != "" {
		page = e.openPage(t, time.Hour)
	}
	watcher := e.watchJobs(t, processorJobs)
	pods := e.watchPods(t)
	defer pods.stop()
	sampler := e.sampleLoad(t)
	prefix := fmt.Sprintf("scale-%d-", time.Now().Unix())
	cpuStart := readCPU()
	start := time.Now()
	e.sendBurst(t, prefix, m)
	published := time.Since(start)
	// The end is seen by the queue (no message ready) and the Jobs (all finished, none new), not by
	// reading GET /data while the burst drains: each look reads every record and loads MongoDB, a
	// load the baseline does not meet. The times come from the records, read once at the end.
	e.eventuallyEvery("the work queue drained", 30*time.Minute, time.Second, func() (bool, error) {
		n := e.queueReady()
		return n == 0, fmt.Errorf("%d ready", n)
	})
	created := watcher.settle(t, e, 30*time.Minute, time.Duration(3*polling)*time.Second)
	cpuEnd := readCPU()
	load := sampler.stop()
	recs := e.waitPrefixRecords(t, prefix, m, time.Minute, 5*time.Second)
	var last time.Time
	storedBy := map[string]bool{}
	for _, r := range recs {
		if r.ProcessedAt.After(last) {
			last = r.ProcessedAt
		}
		storedBy[r.Job] = true
	}
	keda := last.Sub(start)
	empty := 0
	for name := range created {
		if !storedBy[name] {
			empty++
		}
	}
	if len(recs) != m {
		t.Errorf("%d records for %d messages", len(recs), m)
	}
	pageLine := ""
	if page != nil {
		pageLine = page.summary(t, recs)
	}
	baseStart := readCPU()
	baseline := e.baseline(t, tmpl, m, n)
	baseEnd := readCPU()
	kedaSlots := pods.slots(func(job string) bool { _, ok := created[job]; return ok }, n)
	baseSlots := pods.slots(func(job string) bool { return strings.HasPrefix(job, "bench-baseline-") }, n)
	line := fmt.Sprintf("bench-scale: messages=%d max_replicas=%d polling_s=%d history=%v/%v strategy=%v pending_conditions=%v jobs=%d jobs_per_message=%.2f jobs_empty=%d keda_s=%.1f baseline_s=%.1f ratio=%.2f publish_s=%.1f max_jobs=%d max_pods=%d app_peak_rss_mib=%.0f app_cpu_s=%.1f",
		m, n, polling, spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"], strategy["strategy"], strategy["pendingPodConditions"],
		len(created), float64(len(created))/float64(m), empty, keda.Seconds(), baseline.Seconds(), baseline.Seconds()/keda.Seconds(),
		published.Seconds(), load.maxJobs, load.maxPods, load.peakRSS/(1<<20), load.cpu) +
		" keda_" + kedaSlots + " " + watcher.steps(pods, n) + " baseline_" + baseSlots +
		cpuSpent("keda", cpuStart, cpuEnd, m) + cpuSpent("baseline", baseStart, baseEnd, m) + pageLine
	benchLine(line)
}

// benchInt reads a whole number from the environment, or def when it is unset.
func benchInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a whole number ≥ 1", name, v)
	}
	return n
}

// upForBench installs the chart of this tree on the running cluster with 0 s of work (BENCH_SETS
// adds --set values) and points the env at the app.
func (e *env) upForBench(t *testing.T) {
	// Each run stores into an empty database of its own: FerretDB (task up's MongoDB) sorts in
	// memory, so the live page's polls of the newest records, and GET /data, slow down with every
	// record earlier runs left (0.8 s a poll at ~7,000 records). The next `task up` goes back to
	// the chart's database.
	sets := append([]string{"processor.workDurationSeconds=0",
		fmt.Sprintf("global.kedaDemo.externalMongodb.database=bench_%d", time.Now().Unix())},
		strings.Fields(os.Getenv("BENCH_SETS"))...)
	out, _ := e.upWith(t, nil, sets)
	u := printedURL.FindStringSubmatch(out)
	if u == nil {
		t.Fatalf("up printed no app URL:\n%s", out)
	}
	e.appURL = u[1]
}

// TestBenchLivePage is `go tool task bench-page`: the live page open in headless Chromium on the
// cluster of `task up` while bursts of BENCH_MESSAGES (300) with 0 s of work follow one another for
// BENCH_MINUTES (10), each sent once the last one's records are all stored. It prints one line
// starting `bench-page:` (also appended to $KEDA_DEMO_RUN/bench-scale.txt): the rounds, how many of
// their records the page drew and how late, and its JavaScript heap after a forced garbage
// collection (first, most, last; every 10 s) and its most elements: the page keeps the newest rows
// and a fixed window of its chart, so the heap stays flat however long the bursts go on; the heap
// after each round shows it.
func TestBenchLivePage(t *testing.T) {
	if os.Getenv("KEDA_DEMO_BENCH_PAGE") == "" {
		t.Skip("a benchmark, not a test: run it with `go tool task bench-page`")
	}
	e := newEnv(t)
	m := benchInt(t, "BENCH_MESSAGES", 300)
	minutes := benchInt(t, "BENCH_MINUTES", 10)
	e.upForBench(t)
	e.purge(t)
	page := e.openPage(t, time.Duration(minutes)*time.Minute+time.Hour)
	var recs []record
	var heaps []string // the page's heap once each round's records are all stored
	rounds := 0
	for end := time.Now().Add(time.Duration(minutes) * time.Minute); time.Now().Before(end); rounds++ {
		prefix := fmt.Sprintf("page-%d-", time.Now().Unix())
		e.sendBurst(t, prefix, m)
		recs = append(recs, e.waitPrefixRecords(t, prefix, m, 30*time.Minute, 5*time.Second)...)
		heaps = append(heaps, fmt.Sprintf("%.1f", page.lastHeap()))
	}
	benchLine(fmt.Sprintf("bench-page: minutes=%d rounds=%d messages=%d page_heap_mib_after_each=%s", minutes, rounds, rounds*m,
		strings.Join(heaps, ",")) + page.summary(t, recs))
}

// benchLine prints a benchmark's line and appends it, with the time, to $KEDA_DEMO_RUN/bench-scale.txt.
func benchLine(line string) {
	fmt.Println(line)
	f, err := os.OpenFile(filepath.Join(runDir, "bench-scale.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintln(f, time.Now().UTC().Format(time.RFC3339), line)
		f.Close()
	}
}

// purge empties the work queue and returns how many messages it dropped.
func (e *env) purge(t *testing.T) int {
	conn, err := amqp.Dial(e.amqpURL)
	must(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	must(t, err)
	n, err := ch.QueuePurge(queue, false)
	must(t, err)
	return n
}

// sendBurst posts m messages named prefix<i> through POST /send, 8 at a time; each must get
// its 202 (retried for up to 30 s on a 503, as a client would).
func (e *env) sendBurst(t *testing.T, prefix string, m int) {
	work := make(chan int)
	errs := make(chan error, m)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				end := time.Now().Add(30 * time.Second)
				for {
					_, err := e.post(fmt.Sprintf("%s%04d", prefix, i), "bench", "")
					if err == nil {
						break
					}
					if time.Now().After(end) {
						errs <- err
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	for i := range m {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

type record struct {
	ID, Name, Job string
	ProcessedAt   time.Time
}

var nextLink = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// waitPrefixRecords pages through GET /data every `every` until it holds m records named
// prefix…, and returns them. Each look reads every record, which loads MongoDB: the scale
// benchmark looks seldom (its times come from the records, not from when it looked).
func (e *env) waitPrefixRecords(t *testing.T, prefix string, m int, timeout, every time.Duration) []record {
	var got []record
	e.eventuallyEvery(fmt.Sprintf("%d records named %s…", m, prefix), timeout, every, func() (bool, error) {
		got = got[:0]
		next := "/data?limit=1000"
		for page := 0; next != "" && page < 100; page++ {
			resp, err := http.Get(e.appURL + next)
			if err != nil {
				return false, err
			}
			var recs []record
			err = json.NewDecoder(resp.Body).Decode(&recs)
			resp.Body.Close()
			if err != nil {
				return false, err
			}
			for _, r := range recs {
				if strings.HasPrefix(r.Name, prefix) {
					got = append(got, r)
				}
			}
			next = ""
			if l := nextLink.FindStringSubmatch(resp.Header.Get("Link")); l != nil {
				next = l[1]
			}
		}
		return len(got) >= m, fmt.Errorf("%d of %d", len(got), m)
	})
	return got
}

// jobWatch records every Job of a selector created after it started (KEDA deletes finished
// Jobs beyond the history limits, so a listing at the end would miss them) and which finished.
type jobWatch struct {
	mu       sync.Mutex
	created  map[string]time.Time
	finished map[string]time.Time // when the watch saw it Complete, Failed or deleted
	stop     func()
}

func (e *env) watchJobs(t *testing.T, selector string) *jobWatch {
	jobs := e.cs.BatchV1().Jobs(namespace)
	l, err := jobs.List(e.ctx, metav1.ListOptions{LabelSelector: selector})
	must(t, err)
	before := map[string]bool{}
	for _, j := range l.Items {
		before[j.Name] = true
	}
	w := &jobWatch{created: map[string]time.Time{}, finished: map[string]time.Time{}}
	w.stop = follow(e.ctx, jobs.Watch, metav1.ListOptions{LabelSelector: selector, ResourceVersion: l.ResourceVersion}, before,
		func(j *batchv1.Job, ev watch.EventType) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if _, seen := w.created[j.Name]; !seen {
				w.created[j.Name] = time.Now()
			}
			if _, seen := w.finished[j.Name]; !seen {
				if done, _ := jobFinished(j); done || ev == watch.Deleted {
					w.finished[j.Name] = time.Now()
				}
			}
		})
	return w
}

// follow watches what watchFn serves from opts.ResourceVersion and calls on for each event about
// an object not named in before, until the returned stop is called (what comes after is not
// recorded). A watch that ends is started again from the last version seen; after an expired
// version or an Error event (e.g. 410 Gone after an API server restart) from the current state: a
// watch without a version lists every object as Added first, and names already seen stay.
func follow[T metav1.Object](ctx context.Context, watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
	opts metav1.ListOptions, before map[string]bool, on func(T, watch.EventType)) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			wi, err := watchFn(ctx, opts)
			if err != nil {
				if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
					opts.ResourceVersion = ""
				}
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				select {
				case <-done:
					wi.Stop()
					return
				default:
				}
				obj, ok := ev.Object.(T)
				if !ok {
					opts.ResourceVersion = ""
					continue
				}
				opts.ResourceVersion = obj.GetResourceVersion()
				if !before[obj.GetName()] {
					on(obj, ev.Type)
				}
			}
		}
	}()
	return sync.OnceFunc(func() { close(done) })
}

// has: the Job was created while the watch ran.
func (w *jobWatch) has(job string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.created[job]
	return ok
}

// createdBetween counts the Jobs first seen between from and to.
func (w *jobWatch) createdBetween(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, at := range w.created {
		if at.After(from) && at.Before(to) {
			n++
		}
	}
	return n
}

// settle waits until at least one Job was seen, every Job seen has finished (or was deleted) and
// none was created for quiet, then stops watching and returns the Jobs created.
func (w *jobWatch) settle(t *testing.T, e *env, timeout, quiet time.Duration) map[string]time.Time {
	last, count := time.Now(), -1
	e.eventually("the burst's Jobs finished and no more created", timeout, func() (bool, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.created) != count {
			count, last = len(w.created), time.Now()
		}
		unfinished := len(w.created) - len(w.finished)
		return count > 0 && unfinished == 0 && time.Since(last) > quiet, fmt.Errorf("%d Jobs, %d unfinished", len(w.created), unfinished)
	})
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.created))
	for k, v := range w.created {
		out[k] = v
	}
	return out
}

// steps sums up the Jobs seen: how many of the n slots held an unfinished Job on average between
// the first creation and the last finish, how long a slot stood empty per Job (KEDA's look and
// its create), the mean seconds from a Job's creation to its pod's, and from its pod's end to the
// Job seen finished (the Job controller's sync, batched per Job by a second).
func (w *jobWatch) steps(p *podWatch, n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	byJob := map[string]*podLife{}
	for _, l := range p.pods {
		if o := byJob[l.job]; o == nil || l.created.Before(o.created) {
			byJob[l.job] = l
		}
	}
	var held occupancy
	var toPod, toDone time.Duration
	for name, c := range w.created {
		f, ok := w.finished[name]
		l := byJob[name]
		if !ok || l == nil || l.ended.IsZero() {
			continue
		}
		held.add(c, f)
		toPod += l.created.Sub(c)
		toDone += f.Sub(l.ended)
	}
	if held.count == 0 {
		return "jobs_timed=0"
	}
	return fmt.Sprintf("jobs_timed=%d job_slots_busy=%.2f job_slot_wait_s=%.2f job_to_pod_s=%.2f pod_end_to_job_done_s=%.2f", held.count,
		held.share(n), held.wait(n), toPod.Seconds()/float64(held.count), toDone.Seconds()/float64(held.count))
}

// occupancy sums up intervals held in n slots: the share of the slots held between the first
// start and the last end, and how long a slot stood empty per interval.
type occupancy struct {
	first, last time.Time
	busy        time.Duration
	count       int
}

func (o *occupancy) add(from, to time.Time) {
	if o.count == 0 || from.Before(o.first) {
		o.first = from
	}
	if to.After(o.last) {
		o.last = to
	}
	o.busy += to.Sub(from)
	o.count++
}

func (o occupancy) share(n int) float64 {
	return o.busy.Seconds() / (o.last.Sub(o.first).Seconds() * float64(n))
}

func (o occupancy) wait(n int) float64 {
	return (o.last.Sub(o.first).Seconds()*float64(n) - o.busy.Seconds()) / float64(o.count)
}

type loadSample struct {
	maxJobs, maxPods int
	peakRSS, cpu     float64 // bytes, seconds (all app pods)
}

// sampleLoad reads once a second how many Jobs and Pods the namespace holds and the app pods'
// resident memory and CPU time (their /metrics, through the pod IPs on the node's bridge).
func (e *env) sampleLoad(t *testing.T) *loadSampler {
	s := &loadSampler{done: make(chan struct{}), cpuStart: map[string]float64{}, cpuLast: map[string]float64{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			if jl, err := e.cs.BatchV1().Jobs(namespace).List(e.ctx, metav1.ListOptions{}); err == nil {
				s.mu.Lock()
				s.res.maxJobs = max(s.res.maxJobs, len(jl.Items))
				s.mu.Unlock()
			}
			if pl, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{}); err == nil {
				var rss float64
				s.mu.Lock()
				s.res.maxPods = max(s.res.maxPods, len(pl.Items))
				s.mu.Unlock()
				for _, p := range pl.Items {
					if p.Labels["app.kubernetes.io/component"] != "app" || p.Status.PodIP == "" {
						continue
					}
					vals := scrape("http://" + p.Status.PodIP + ":8080/metrics")
					cpu, ok := vals["process_cpu_seconds_total"]
					if !ok {
						continue // not answering this second: neither memory nor CPU is known
					}
					rss += vals["process_resident_memory_bytes"]
					s.mu.Lock()
					if _, ok := s.cpuStart[p.Name]; !ok {
						s.cpuStart[p.Name] = cpu
					}
					s.cpuLast[p.Name] = cpu
					s.mu.Unlock()
				}
				s.mu.Lock()
				s.res.peakRSS = max(s.res.peakRSS, rss)
				s.mu.Unlock()
			}
			select {
			case <-s.done:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return s
}

type loadSampler struct {
	mu                sync.Mutex
	wg                sync.WaitGroup
	done              chan struct{}
	res               loadSample
	cpuStart, cpuLast map[string]float64
}

func (s *loadSampler) stop() loadSample {
	close(s.done)
	s.wg.Wait()
	for p, v := range s.cpuLast {
		s.res.cpu += v - s.cpuStart[p]
	}
	return s.res
}

// scrape reads the plain (unlabelled) samples of a Prometheus text page.
func scrape(u string) map[string]float64 {
	out := map[string]float64{}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// baseline runs one Indexed Job of m completions, n at a time, with the processor's pod
// template on the empty queue, and returns how long it took from creation to Complete.
func (e *env) baseline(t *testing.T, tmpl corev1.PodTemplateSpec, m, n int) time.Duration {
	e.purge(t)
	mode := batchv1.IndexedCompletion
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-baseline-", Labels: map[string]string{"app.kubernetes.io/part-of": "keda-demo-bench"}},
		Spec: batchv1.JobSpec{CompletionMode: &mode, Completions: new(int32(m)), Parallelism: new(int32(n)),
			BackoffLimit: new(int32(m)), Template: tmpl},
	}
	jobs := e.cs.BatchV1().Jobs(namespace)
	start := time.Now()
	created, err := jobs.Create(e.ctx, job, metav1.CreateOptions{})
	must(t, err)
	defer func() {
		bg := metav1.DeletePropagationBackground
		_ = jobs.Delete(e.ctx, created.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	}()
	var took time.Duration
	e.eventually("the baseline Job Complete", 30*time.Minute, func() (bool, error) {
		j, err := jobs.Get(e.ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		done, ok := jobFinished(j)
		if done && !ok {
			t.Fatalf("the baseline Job failed: %+v", j.Status)
		}
		took = time.Since(start)
		return done, fmt.Errorf("%d succeeded, %d active", j.Status.Succeeded, j.Status.Active)
	})
	return took
}

// podLife is what a pod watch saw of one Job pod, in the watcher's clock (the API's own
// timestamps have whole seconds only).
type podLife struct {
	job            string
	created, ended time.Time
}

// podWatch records the life of every Job pod in the namespace created after it started, to
// show where a slot's time goes: in a pod, or waiting for the next one.
type podWatch struct {
	mu   sync.Mutex
	pods map[string]*podLife
	stop func()
}

func (e *env) watchPods(t *testing.T) *podWatch {
	pods := e.cs.CoreV1().Pods(namespace)
	l, err := pods.List(e.ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel})
	must(t, err)
	before := map[string]bool{}
	for _, p := range l.Items {
		before[p.Name] = true
	}
	w := &podWatch{pods: map[string]*podLife{}}
	w.stop = follow(e.ctx, pods.Watch, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel, ResourceVersion: l.ResourceVersion}, before,
		func(p *corev1.Pod, ev watch.EventType) {
			now := time.Now()
			w.mu.Lock()
			defer w.mu.Unlock()
			l := w.pods[p.Name]
			if l == nil {
				l = &podLife{job: p.Labels[batchv1.JobNameLabel], created: now}
				w.pods[p.Name] = l
			}
			if l.ended.IsZero() && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || ev == watch.Deleted) {
				l.ended = now
			}
		})
	return w
}

// slots sums up the pods of the Jobs `of` selects: how many of the n slots held a pod on
// average between the first pod's creation and the last pod's end, and a pod's mean life.
func (w *podWatch) slots(of func(job string) bool, n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var held occupancy
	for _, l := range w.pods {
		if of(l.job) && !l.ended.IsZero() {
			held.add(l.created, l.ended)
		}
	}
	if held.count == 0 {
		return "pods=0"
	}
	return fmt.Sprintf("pods=%d pod_slots_busy=%.2f pod_life_s=%.2f pod_slot_wait_s=%.2f", held.count,
		held.share(n), held.busy.Seconds()/float64(held.count), held.wait(n))
}

// pageProbe is the live page open in headless Chromium while the burst drains (BENCH_PAGE=1): its
// memory every 10 s and, at the end, how late it drew each of the burst's records. The browser
// shares the node's cores: a run with it measures the page, not the ratio.
type pageProbe struct {
	page  *testkit.LivePage
	mu    sync.Mutex
	heap  []float64 // MiB after a garbage collection
	elems []int
	done  chan struct{}
	wg    sync.WaitGroup
}

func (e *env) openPage(t *testing.T, timeout time.Duration) *pageProbe {
	p, err := testkit.OpenLivePage(testkit.Browser(t, timeout), e.appURL+"/")
	must(t, err)
	pp := &pageProbe{page: p, done: make(chan struct{})}
	pp.wg.Add(1)
	go func() {
		defer pp.wg.Done()
		for {
			if h, n, err := p.Memory(); err == nil {
				pp.mu.Lock()
				pp.heap, pp.elems = append(pp.heap, h/(1<<20)), append(pp.elems, n)
				pp.mu.Unlock()
			}
			select {
			case <-pp.done:
				return
			case <-time.After(10 * time.Second):
			}
		}
	}()
	return pp
}

// lastHeap is the newest heap sample, in MiB (0 before the first).
func (pp *pageProbe) lastHeap() float64 {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if len(pp.heap) == 0 {
		return 0
	}
	return pp.heap[len(pp.heap)-1]
}

// summary stops the sampling and returns the page's figures as fields of the bench line: how many
// of the burst's records it drew and how late (seconds from the store write to the row), and its
// heap first, at most and last, and its most elements.
func (pp *pageProbe) summary(t *testing.T, recs []record) string {
	close(pp.done)
	pp.wg.Wait()
	seen, err := pp.page.SeenRecords()
	must(t, err)
	var lags []float64
	for _, r := range recs {
		if ms, ok := seen[r.ID]; ok {
			lags = append(lags, float64(ms-r.ProcessedAt.UnixMilli())/1000)
		}
	}
	sort.Float64s(lags)
	p95 := 0.0
	if len(lags) > 0 {
		p95 = lags[len(lags)*95/100]
	}
	if len(pp.heap) == 0 {
		t.Fatal("no memory sample of the page")
	}
	return fmt.Sprintf(" page_records_drawn=%d page_lag_median_s=%.2f page_lag_p95_s=%.2f page_lag_max_s=%.2f page_heap_mib_first=%.1f page_heap_mib_max=%.1f page_heap_mib_last=%.1f page_elements_max=%d page_samples=%d",
		len(lags), median(lags), p95, maxOf(lags), pp.heap[0], slices.Max(pp.heap), pp.heap[len(pp.heap)-1], slices.Max(pp.elems), len(pp.heap))
}

// cpuParts are the long-lived processes of `task up`, by the name in /proc/<pid>/comm (15
// characters at most). Everything else the node ran (containerd's shims, runc, CNI plugins) is
// "other": busy time that no part and no pod accounts for.
var cpuParts = []string{"kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "kubelet", "containerd",
	"keda-operator", "beam.smp", "ferretdb", "e2e.test"}

// cpuTime is the host's CPU time so far: busy and all (both from /proc/stat), each part's
// (user+system of its processes) and the pods' (the kubepods cgroup, which keeps the time of pods
// since deleted), in seconds.
type cpuTime struct {
	busy, all float64
	parts     map[string]float64
}

const clockTicks = 100 // USER_HZ: /proc/stat's unit on every Linux this runs on

func readCPU() cpuTime {
	c := cpuTime{parts: map[string]float64{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) // cpu user nice system idle iowait irq softirq steal …
		for i, v := range f[1:min(len(f), 9)] {
			x, _ := strconv.ParseFloat(v, 64)
			c.all += x / clockTicks
			if i != 3 && i != 4 {
				c.busy += x / clockTicks
			}
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct/kubepods/cpuacct.usage"); err == nil {
		ns, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		c.parts["pods"] = ns / 1e9
	} else if b, err := os.ReadFile("/sys/fs/cgroup/kubepods/cpu.stat"); err == nil { // cgroup v2
		for _, l := range strings.Split(string(b), "\n") {
			if us, ok := strings.CutPrefix(l, "usage_usec "); ok {
				x, _ := strconv.ParseFloat(us, 64)
				c.parts["pods"] = x / 1e6
			}
		}
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		name := strings.TrimSpace(string(comm))
		if err != nil || !slices.Contains(cpuParts, name) {
			continue
		}
		pid, _ := strconv.Atoi(d.Name())
		if cpu, err := testkit.ProcessCPU(pid); err == nil {
			c.parts[name] += cpu.Seconds()
		}
	}
	return c
}

// cpuSpent says how busy the node's cores were between two readings and what each part spent
// per message: "<side>_node_busy=0.93 <side>_cpu_ms_per_msg=pods:120,kube-apiserver:40,…,other:30".
func cpuSpent(side string, from, to cpuTime, m int) string {
	busy := to.busy - from.busy
	parts := []string{}
	rest := busy
	for _, p := range append([]string{"pods"}, cpuParts...) {
		if _, ok := to.parts[p]; !ok && p == "pods" {
			parts = append(parts, "pods:?") // no kubepods cgroup found: the pods' time is in "other"
			continue
		}
		d := to.parts[p] - from.parts[p]
		rest -= d
		parts = append(parts, fmt.Sprintf("%s:%.0f", p, 1000*d/float64(m)))
	}
	parts = append(parts, fmt.Sprintf("other:%.0f", 1000*rest/float64(m)))
	return fmt.Sprintf(" %s_node_busy=%.2f %s_cpu_ms_per_msg=%s", side, busy/(to.all-from.all), side, strings.Join(parts, ","))
}
