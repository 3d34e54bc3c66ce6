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
// (the chart mounts it only with app.dashboard.jobs.enabled), it reports "disabled" and returns.
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
		disabled("the app's ServiceAccount token is not mounted (app.dashboard.jobs.enabled=false)", err)
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
	inf := f.Batch().V1().Jobs().Informer()
	put := func(obj any) {
		if j, ok := obj.(*batchv1.Job); ok {
			sink.PutJob(View(j))
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    put,
		UpdateFunc: func(_, obj any) { put(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if j, ok := obj.(*batchv1.Job); ok {
				sink.DeleteJob(j.Name)
			}
		},
	})
	if err != nil {
		sink.SetJobsStatus(live.JobsStatus{State: live.JobsFailing, Detail: "cannot watch Jobs"})
		log.Error("jobs watch failed", "error", err.Error())
		return
	}
	// The reflector retries a failed list or watch with backoff by itself; the handler only says
	// why, and a probe tells when the API answers again (the reflector does not). The detail names
	// the namespace and what is missing, never a token or an address.
	failed := make(chan struct{}, 1)
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		if errors.Is(err, io.EOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return // a watch that ended normally, or must relist: not an outage
		}
		st := live.JobsStatus{State: live.JobsFailing, Detail: "the Kubernetes API does not answer; retrying"}
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			st = live.JobsStatus{State: live.JobsForbidden, Detail: fmt.Sprintf(
				"the app's ServiceAccount may not list Jobs in namespace %s (the chart's Role comes with app.dashboard.jobs.enabled=true)", cfg.Namespace)}
		}
		sink.SetJobsStatus(st)
		log.Warn("jobs watch failed", "state", st.State, "error", err.Error())
		select {
		case failed <- struct{}{}:
		default:
		}
	})
	f.Start(ctx.Done())
	defer f.Shutdown()
	if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		sink.SetJobsStatus(live.JobsStatus{State: live.JobsWatching})
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-failed:
			if probe(ctx, cs, cfg) {
				sink.SetJobsStatus(live.JobsStatus{State: live.JobsWatching})
			}
		}
	}
}

// probeEvery is how often a failed watch is checked for recovery.
var probeEvery = 5 * time.Second

// probe lists one Job until a list succeeds (true) or ctx ends (false).
func probe(ctx context.Context, cs kubernetes.Interface, cfg Config) bool {
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cs.BatchV1().Jobs(cfg.Namespace).List(pctx, metav1.ListOptions{LabelSelector: cfg.Selector, Limit: 1})
		cancel()
		if err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(probeEvery):
		}
	}
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
