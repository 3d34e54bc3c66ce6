package jobwatch

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/keda-demo/keda-demo/app/internal/live"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func job(name string, mutate func(*batchv1.Job)) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "demo", CreationTimestamp: metav1.NewTime(t0),
		Labels: map[string]string{"scaledjob.keda.sh/name": "keda-demo-processor"},
	}}
	if mutate != nil {
		mutate(j)
	}
	return j
}

func cond(t batchv1.JobConditionType, reason string) func(*batchv1.Job) {
	return func(j *batchv1.Job) {
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason})
	}
}

func TestView(t *testing.T) {
	one := int32(1)
	tests := []struct {
		name       string
		job        *batchv1.Job
		state, why string
	}{
		{"new", job("a", nil), live.JobPending, ""},
		{"pod started", job("a", func(j *batchv1.Job) { j.Status.Active, j.Status.Ready = 1, &one }), live.JobRunning, ""},
		{"complete", job("a", cond(batchv1.JobComplete, "")), live.JobSucceeded, ""},
		{"failed", job("a", cond(batchv1.JobFailed, "BackoffLimitExceeded")), live.JobFailed, "BackoffLimitExceeded"},
		{"failing, pod still terminating", job("a", func(j *batchv1.Job) {
			cond(batchv1.JobFailureTarget, "DeadlineExceeded")(j)
			j.Status.Ready = &one
		}), live.JobFailed, "DeadlineExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := View(tt.job)
			require.Equal(t, live.Job{Name: "a", Created: t0, State: tt.state, Reason: tt.why}, v)
		})
	}
}

// sink records what the watch reports.
type sink struct {
	mu     sync.Mutex
	jobs   map[string]live.Job
	status live.JobsStatus
}

func (s *sink) PutJob(j live.Job) { s.mu.Lock(); defer s.mu.Unlock(); s.jobs[j.Name] = j }
func (s *sink) DeleteJob(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[name]
	j.Deleted = true
	s.jobs[name] = j
}
func (s *sink) SetJobsStatus(st live.JobsStatus) { s.mu.Lock(); defer s.mu.Unlock(); s.status = st }
func (s *sink) get() (map[string]live.Job, live.JobsStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]live.Job{}
	for k, v := range s.jobs {
		out[k] = v
	}
	return out, s.status
}

func start(t *testing.T, cs *fake.Clientset) *sink {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{jobs: map[string]live.Job{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, cs, Config{Namespace: "demo", Selector: "scaledjob.keda.sh/name=keda-demo-processor"}, s, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return after its context ended")
		}
	})
	return s
}

func TestWatchFollowsTheScaledJobsJobsOnly(t *testing.T) {
	other := job("other", nil)
	other.Labels = map[string]string{"app": "something-else"}
	cs := fake.NewClientset(job("before", cond(batchv1.JobComplete, "")), other)
	s := start(t, cs)
	require.Eventually(t, func() bool { _, st := s.get(); return st.State == live.JobsWatching }, 5*time.Second, 10*time.Millisecond)

	ctx := context.Background()
	jobs := cs.BatchV1().Jobs("demo")
	_, err := jobs.Create(ctx, job("new", nil), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { j, _ := s.get(); return j["new"].State == live.JobPending }, 5*time.Second, 10*time.Millisecond)
	_, err = jobs.Update(ctx, job("new", cond(batchv1.JobComplete, "")), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { j, _ := s.get(); return j["new"].State == live.JobSucceeded }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, jobs.Delete(ctx, "before", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { j, _ := s.get(); return j["before"].Deleted }, 5*time.Second, 10*time.Millisecond)

	got, _ := s.get()
	require.NotContains(t, got, "other", "the selector keeps other Jobs out")
	require.Equal(t, live.JobSucceeded, got["before"].State)
}

func pod(job string, phase corev1.PodPhase, waiting string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: job + "-pod", Namespace: "demo", Labels: map[string]string{
		"scaledjob.keda.sh/name": "keda-demo-processor", batchv1.JobNameLabel: job,
	}}, Status: corev1.PodStatus{Phase: phase}}
	if waiting != "" {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "processor", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting}}}}
	}
	return p
}

// A Job's pod tells why it is pending, and that it runs before the Job's status says so.
func TestPodsTellPendingFromRunning(t *testing.T) {
	cs := fake.NewClientset()
	s := start(t, cs)
	require.Eventually(t, func() bool { _, st := s.get(); return st.State == live.JobsWatching }, 5*time.Second, 10*time.Millisecond)
	ctx := context.Background()
	pods := cs.CoreV1().Pods("demo")
	_, err := pods.Create(ctx, pod("j1", corev1.PodPending, "ImagePullBackOff"), metav1.CreateOptions{})
	require.NoError(t, err) // the pod before its Job: shown once the Job is
	_, err = cs.BatchV1().Jobs("demo").Create(ctx, job("j1", nil), metav1.CreateOptions{})
	require.NoError(t, err)
	want := func(state, reason string) {
		t.Helper()
		require.Eventually(t, func() bool { j, _ := s.get(); return j["j1"].State == state && j["j1"].Reason == reason },
			5*time.Second, 10*time.Millisecond, "want %s (%s)", state, reason)
	}
	want(live.JobPending, "ImagePullBackOff")
	_, err = pods.Update(ctx, pod("j1", corev1.PodRunning, ""), metav1.UpdateOptions{})
	require.NoError(t, err)
	want(live.JobRunning, "")
	require.NoError(t, pods.Delete(ctx, "j1-pod", metav1.DeleteOptions{}))
	want(live.JobPending, "")
}

func TestForbiddenIsShownAndRecoveryNoticed(t *testing.T) {
	probeEvery = 20 * time.Millisecond
	cs := fake.NewClientset(job("a", nil))
	var forbidden atomic.Bool
	forbidden.Store(true)
	cs.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbidden.Load() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "", nil)
		}
		return false, nil, nil
	})
	s := start(t, cs)
	require.Eventually(t, func() bool { _, st := s.get(); return st.State == live.JobsForbidden }, 5*time.Second, 10*time.Millisecond)
	_, st := s.get()
	require.Contains(t, st.Detail, "namespace demo")

	forbidden.Store(false) // the Role was granted
	require.Eventually(t, func() bool { _, st := s.get(); return st.State == live.JobsWatching }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { j, _ := s.get(); _, ok := j["a"]; return ok }, 10*time.Second, 10*time.Millisecond)
}

// An API server that refuses connections while it restarts: client-go's reflector retries that in
// silence (no watch error), so only the probe can tell the page, and tell it again when it is back.
func TestSilentOutageIsShownAndRecoveryNoticed(t *testing.T) {
	probeEvery = 20 * time.Millisecond
	cs := fake.NewClientset(job("a", nil))
	s := start(t, cs)
	require.Eventually(t, func() bool { _, st := s.get(); return st.State == live.JobsWatching }, 5*time.Second, 10*time.Millisecond)

	var down atomic.Bool
	down.Store(true)
	cs.PrependReactor("list", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, syscall.ECONNREFUSED
		}
		return false, nil, nil
	})
	require.Eventually(t, func() bool { _, st := s.get(); return st.State == live.JobsFailing }, 5*time.Second, 10*time.Millisecond)
	_, st := s.get()
	require.Equal(t, "the Kubernetes API does not answer; retrying", st.Detail)

	down.Store(false)
	require.Eventually(t, func() bool { _, st := s.get(); return st.State == live.JobsWatching }, 5*time.Second, 10*time.Millisecond)
}

func TestRunWithoutSelectorOrClusterIsDisabled(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tt := range []struct{ selector, detail string }{
		{"", "JOBS_SELECTOR is not set"},
		{"scaledjob.keda.sh/name=x", "not running in Kubernetes"},
	} {
		s := &sink{jobs: map[string]live.Job{}}
		Run(context.Background(), Config{Selector: tt.selector}, s, slog.New(slog.DiscardHandler))
		_, st := s.get()
		require.Equal(t, live.JobsStatus{State: live.JobsDisabled, Detail: tt.detail}, st)
	}
	// In a pod whose token is not mounted (this machine has none at the standard path).
	t.Setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	s := &sink{jobs: map[string]live.Job{}}
	Run(context.Background(), Config{Selector: "scaledjob.keda.sh/name=x"}, s, slog.New(slog.DiscardHandler))
	_, st := s.get()
	require.Equal(t, live.JobsDisabled, st.State)
	require.Contains(t, st.Detail, "token is not mounted")
}
