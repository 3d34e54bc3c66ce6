// Package jobwatch follows the ScaledJob's Jobs through the Kubernetes API (client-go, in-cluster
// config, one namespace, read-only) and puts them into the live view. Without a cluster, or
// without the Role the chart grants, it says so and the rest of the app works on.
package jobwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/keda-demo/keda-demo/app/internal/live"
)

// Sink receives the Jobs (the live hub).
type Sink interface {
	PutJob(live.Job)
	DeleteJob(name string)
	SetJobsStatus(live.JobsStatus)
}

// Config selects the Jobs to watch.
type Config struct {
	// Selector is a label selector of the ScaledJob's Jobs (KEDA labels them
	// scaledjob.keda.sh/name=<ScaledJob>); empty turns the view off.
	Selector string
	// Namespace is where they run; empty means the pod's own (from its ServiceAccount mount).
	Namespace string
}

// namespaceFile is where Kubernetes mounts the pod's namespace with its token.
const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Run watches until ctx ends. Without a selector, outside a cluster or without a mounted token
// (the chart mounts it only with app.livePage.jobs.enabled), it reports "disabled" and returns.
func Run(ctx context.Context, cfg Config, sink Sink, log *slog.Logger) {
	disabled := func(detail string, err error) {
		attrs := []any{"reason", detail}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		log.Info("jobs view disabled", attrs...)
		sink.SetJobsStatus(live.JobsStatus{State: live.JobsDisabled, Detail: detail})
	}
	if cfg.Selector == "" {
		disabled("JOBS_SELECTOR is not set", nil)
		return
	}
	rc, err := rest.InClusterConfig()
	switch {
	case errors.Is(err, rest.ErrNotInCluster):
		disabled("not running in Kubernetes", nil)
		return
	case errors.Is(err, fs.ErrNotExist):
		disabled("the app's ServiceAccount token is not mounted (app.livePage.jobs.enabled=false)", err)
		return
	case err != nil:
		disabled("no usable in-cluster credentials", err)
		return
	}
	if cfg.Namespace == "" {
		ns, err := os.ReadFile(namespaceFile)
		if err != nil {
			disabled("the pod's namespace is unknown", err)
			return
		}
		cfg.Namespace = strings.TrimSpace(string(ns))
	}
	rc.Timeout = 30 * time.Second // bounds every call except the long-lived watches
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		disabled("no Kubernetes client", err)
		return
	}
	Watch(ctx, cs, cfg, sink, log)
}

// Watch is Run with a given client (tests give a fake one).
func Watch(ctx context.Context, cs kubernetes.Interface, cfg Config, sink Sink, log *slog.Logger) {
	sink.SetJobsStatus(live.JobsStatus{State: live.JobsStarting})
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = cfg.Selector }))
	tr := &tracker{sink: sink, jobs: map[string]*batchv1.Job{}, pods: map[string]map[string]podState{}}
	jobs, pods := f.Batch().V1().Jobs().Informer(), f.Core().V1().Pods().Informer()
	_, err := jobs.AddEventHandler(handlers(tr.putJob, tr.deleteJob))
	if err == nil {
		_, err = pods.AddEventHandler(handlers(tr.putPod, tr.deletePod))
	}
	if err != nil {
		sink.SetJobsStatus(live.JobsStatus{State: live.JobsFailing, Detail: "cannot watch Jobs"})
		log.Error("jobs watch failed", "error", err.Error())
		return
	}
	// The reflector retries a failed list or watch with backoff by itself; the handler only says
	// why. It is not told everything: a refused connection (the API server restarting) is retried
	// in silence, so a probe also lists one Job every probeEvery, which notices an outage and the
	// recovery alike. The detail names the namespace and what is missing, never a token or an address.
	failed := make(chan struct{}, 1)
	onError := func(_ context.Context, _ *cache.Reflector, err error) {
		if errors.Is(err, io.EOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return // a watch that ended normally, or must relist: not an outage
		}
		st := statusOf(err, cfg)
		sink.SetJobsStatus(st)
		log.Warn("jobs watch failed", "state", st.State, "error", err.Error())
		select {
		case failed <- struct{}{}:
		default:
		}
	}
	_ = jobs.SetWatchErrorHandlerWithContext(onError)
	_ = pods.SetWatchErrorHandlerWithContext(onError)
	f.Start(ctx.Done())
	defer f.Shutdown()
	if cache.WaitForCacheSync(ctx.Done(), jobs.HasSynced, pods.HasSynced) {
		sink.SetJobsStatus(live.JobsStatus{State: live.JobsWatching})
	}
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-failed:
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, probeEvery)
		_, err := cs.BatchV1().Jobs(cfg.Namespace).List(pctx, metav1.ListOptions{LabelSelector: cfg.Selector, Limit: 1})
		cancel()
		if ctx.Err() != nil {
			return
		}
		sink.SetJobsStatus(statusOf(err, cfg))
	}
}

// probeEvery is how often the API is asked whether Jobs can be seen.
var probeEvery = 5 * time.Second

// statusOf is what the page says after a list or watch ended with err (nil: watching).
func statusOf(err error, cfg Config) live.JobsStatus {
	switch {
	case err == nil:
		return live.JobsStatus{State: live.JobsWatching}
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return live.JobsStatus{State: live.JobsForbidden, Detail: fmt.Sprintf(
			"the app's ServiceAccount may not list Jobs and pods in namespace %s (the chart's Role comes with app.livePage.jobs.enabled=true)", cfg.Namespace)}
	default:
		return live.JobsStatus{State: live.JobsFailing, Detail: "the Kubernetes API does not answer; retrying"}
	}
}

// handlers calls put on adds and updates, and del with the last state on deletes.
func handlers[T any](put func(T), del func(T)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(T); ok {
				put(o)
			}
		},
		UpdateFunc: func(_, obj any) {
			if o, ok := obj.(T); ok {
				put(o)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(T); ok {
				del(o)
			}
		},
	}
}

// tracker joins the Jobs with their pods: a started pod tells "running" sooner than the Job's
// status does, and a waiting one tells why its Job is pending (ContainerCreating,
// ImagePullBackOff, Unschedulable, …).
type tracker struct {
	sink Sink
	mu   sync.Mutex
	jobs map[string]*batchv1.Job
	pods map[string]map[string]podState // Job name → pod name → state
}

type podState struct {
	started bool
	reason  string
}

func (t *tracker) putJob(j *batchv1.Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.jobs[j.Name] = j
	t.publish(j.Name)
}

func (t *tracker) deleteJob(j *batchv1.Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.jobs, j.Name)
	delete(t.pods, j.Name)
	t.sink.DeleteJob(j.Name)
}

func (t *tracker) putPod(p *corev1.Pod) {
	job := p.Labels[batchv1.JobNameLabel]
	if job == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pods[job] == nil {
		t.pods[job] = map[string]podState{}
	}
	t.pods[job][p.Name] = stateOf(p)
	t.publish(job)
}

func (t *tracker) deletePod(p *corev1.Pod) {
	job := p.Labels[batchv1.JobNameLabel]
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pods[job], p.Name)
	t.publish(job)
}

// publish sends the view of one Job (the hub drops views that did not change); t.mu is held.
func (t *tracker) publish(name string) {
	j, ok := t.jobs[name]
	if !ok {
		return // its pod came first; the Job's event will publish it
	}
	v := View(j)
	if v.State == live.JobPending {
		for _, p := range t.pods[name] {
			if p.started {
				v.State, v.Reason = live.JobRunning, ""
				break
			}
			if p.reason != "" {
				v.Reason = p.reason
			}
		}
	}
	t.sink.PutJob(v)
}

// stateOf tells whether a pod's container started (a finished one did too) and, if it waits, why.
func stateOf(p *corev1.Pod) podState {
	switch p.Status.Phase {
	case corev1.PodRunning, corev1.PodSucceeded:
		return podState{started: true}
	case corev1.PodPending:
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && w.Reason != "" {
				return podState{reason: w.Reason}
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
				return podState{reason: c.Reason}
			}
		}
	}
	return podState{}
}

// View is how the page shows a Job.
func View(j *batchv1.Job) live.Job {
	v := live.Job{Name: j.Name, Created: j.CreationTimestamp.UTC(), State: live.JobPending}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			v.State, v.Reason = live.JobSucceeded, ""
			return v
		case batchv1.JobFailed:
			v.State, v.Reason = live.JobFailed, c.Reason
			return v
		case batchv1.JobFailureTarget:
			v.State, v.Reason = live.JobFailed, c.Reason
		}
	}
	if v.State == live.JobFailed {
		return v
	}
	// The processor has no readiness probe, so a ready pod is a started container.
	if j.Status.Ready != nil && *j.Status.Ready > 0 {
		v.State = live.JobRunning
	}
	return v
}
