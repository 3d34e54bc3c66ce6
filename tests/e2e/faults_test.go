//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// killOnFirstDelivery is the message content on which a processor built with -tags faultinject
// kills itself after the store write and before the ack, once (processor/internal/job).
const killOnFirstDelivery = "faultinject:kill-after-store"

// The broker cluster of KEDA_DEMO_BROKER=cluster (cluster/cluster.sh): haproxy's port and the nodes' AMQP ports.
const clusterPort = "5700"

var clusterNodes = []string{"5701", "5702", "5703"}

// faultBurst is the load each fault meets: enough messages that Jobs run and messages wait.
type faultBurst struct {
	messages, workSeconds, maxReplicas int
	loadEvery                          time.Duration // app-pod-kill: each of its two clients sends this often
}

// burstOfThisRun: `go tool task faults` (KEDA_DEMO_FAULTS_FULL=1) runs the full bursts; the e2e
// of CI smaller ones, so that its e2e part stays within its time.
func burstOfThisRun() faultBurst {
	if os.Getenv("KEDA_DEMO_FAULTS_FULL") != "" {
		return faultBurst{messages: 30, workSeconds: 5, maxReplicas: 10, loadEvery: 250 * time.Millisecond}
	}
	return faultBurst{messages: 12, workSeconds: 3, maxReplicas: 4, loadEvery: 500 * time.Millisecond}
}

// A fault: what it does to the platform (inject returns when the fault has ended, the component
// back), and what its accounting must show besides lost=0 and dup=0.
type fault struct {
	name string
	// setup: "" (what up installs), "faultinject" (a processor built with -tags faultinject) or
	// "broker-cluster" (the release on three clustered RabbitMQ nodes behind haproxy)
	setup   string
	content string // the first message's content, when the fault needs a particular one
	inject  func(t *testing.T, f *faultRun)
	// redelivered: the already-stored outcomes expected; -1 where a redelivery is the broker's
	// correct answer to the fault (a message taken and not yet acked when its holder vanished)
	redelivered int
	// keepsJobs: no Job that existed at the fault is deleted or recreated, none of their pods restarts
	keepsJobs bool
	// maxJobsPerMessage: checked when not 0
	maxJobsPerMessage float64
}

// TestFaults: the platform fails mid-burst, with Jobs running and messages waiting; nothing is
// lost, nothing stored twice, and the backlog drains by itself. Each fault is a subtest that runs
// alone, e.g. E2E_TEST_ARGS="-run TestFaults/keda-operator-sigkill" go tool task e2e, and prints one
// line starting fault=<name> (also appended to $KEDA_DEMO_RUN/faults.txt).
func TestFaults(t *testing.T) {
	e := newEnv(t)
	b := burstOfThisRun()
	sets := scenarioSets(
		fmt.Sprintf("processor.workDurationSeconds=%d", b.workSeconds),
		fmt.Sprintf("processor.keda.maxReplicaCount=%d", b.maxReplicas),
		"processor.keda.pollingInterval=2")
	installed := "none"
	install := func(t *testing.T, setup string) {
		if installed == setup {
			return
		}
		var env []string
		e.amqpURL = e.brokerURL(rmqPort)
		switch setup {
		case "faultinject":
			env = []string{"KEDA_DEMO_IMAGEBUILD_ARGS=--tags faultinject"}
		case "broker-cluster":
			env = []string{"KEDA_DEMO_BROKER=cluster"}
			e.amqpURL = e.brokerURL(clusterPort)
		}
		out, _ := e.upWith(t, env, sets)
		m := printedURL.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("up printed no app URL:\n%s", out)
		}
		e.appURL, installed = m[1], setup
		e.appRolledOut(t)
	}
	if os.Getenv("E2E_RUN") == "" { // on the cluster of `task up`: leave it with this tree's images
		t.Cleanup(func() {
			if installed != "" {
				e.cur = nil
				install(t, "")
			}
		})
	}
	faults := []fault{
		{name: "keda-operator-sigkill", keepsJobs: true, inject: func(t *testing.T, f *faultRun) {
			f.cluster(t, "kill-component", "keda-operator", "KILL")
			time.Sleep(5 * time.Second) // as long as a crashed pod's restart would take
			f.cluster(t, "start-component", "keda-operator")
		}},
		{name: "keda-operator-down", keepsJobs: true, inject: func(t *testing.T, f *faultRun) {
			f.cluster(t, "kill-component", "keda-operator", "TERM")
			stopped := time.Now()
			time.Sleep(30 * time.Second)
			if n := f.jobs.createdBetween(stopped.Add(2*time.Second), time.Now()); n > 0 {
				t.Errorf("%d Jobs created while the KEDA operator was down", n)
			}
			f.cluster(t, "start-component", "keda-operator")
		}},
		{name: "apiserver-restart", inject: func(t *testing.T, f *faultRun) {
			page := f.followLivePage()
			defer page.stop()
			f.cluster(t, "kill-component", "kube-apiserver", "KILL")
			// The app needs no API server to accept messages.
			for i := range 3 {
				if _, err := f.post(fmt.Sprintf("during-%d", i), "sent while the API server was down"); err != nil {
					t.Errorf("POST /send with the API server down: %v", err)
				}
			}
			time.Sleep(10 * time.Second)
			if !page.saw(func(s []string) bool { return slices.Contains(s, "unavailable") }) {
				t.Errorf("the live page did not say it cannot see Jobs while the API server was down: %v", page.states())
			}
			f.cluster(t, "start-component", "kube-apiserver")
			f.e.eventually("the live page watching Jobs again", time.Minute, func() (bool, error) {
				s := page.states()
				return len(s) > 0 && s[len(s)-1] == "watching", fmt.Errorf("states %v", s)
			})
			t.Logf("the live page's Jobs states: %v", page.states())
		}},
		{name: "kubelet-restart", inject: func(t *testing.T, f *faultRun) {
			f.cluster(t, "restart", "kubelet", "KILL", "3")
		}},
		{name: "containerd-restart", inject: func(t *testing.T, f *faultRun) {
			f.cluster(t, "restart", "containerd", "KILL", "3")
		}},
		{name: "rabbitmq-node-kill", redelivered: -1, inject: func(t *testing.T, f *faultRun) {
			f.cluster(t, "restart", "rabbitmq", "KILL", "0")
		}},
		{name: "ferretdb-down", inject: func(t *testing.T, f *faultRun) {
			f.cluster(t, "kill-component", "ferretdb", "TERM")
			time.Sleep(20 * time.Second)
			f.cluster(t, "start-component", "ferretdb")
		}},
		{name: "processor-pod-delete", redelivered: -1, inject: func(t *testing.T, f *faultRun) {
			p := f.workingPod(t)
			must(t, f.e.cs.CoreV1().Pods(namespace).Delete(f.e.ctx, p, metav1.DeleteOptions{}))
			t.Logf("deleted processor pod %s mid-work", p)
		}},
		{name: "app-pod-kill", inject: func(t *testing.T, f *faultRun) {
			f.appPodKilledUnderLoad(t, b.loadEvery)
		}},
		// The production profile's claim: a quorum queue on three nodes keeps a majority with one
		// node gone. The release in external mode on three clustered nodes behind haproxy.
		{name: "rabbitmq-cluster-leader-kill", setup: "broker-cluster", redelivered: -1, maxJobsPerMessage: 1.05, inject: func(t *testing.T, f *faultRun) {
			leader := f.queueLeader(t, "")
			f.cluster(t, "kill-component", "rabbitmq-"+leader, "KILL")
			f.e.eventually("the work queue's leader on another node", time.Minute, func() (bool, error) {
				now := f.queueLeader(t, leader)
				return now != "" && now != leader, fmt.Errorf("leader %q", now)
			})
			t.Logf("the work queue's leader moved from kdemo-%s to kdemo-%s", leader, f.queueLeader(t, leader))
			f.cluster(t, "start-component", "rabbitmq-"+leader)
		}},
		{name: "rabbitmq-cluster-stop-app", setup: "broker-cluster", redelivered: -1, maxJobsPerMessage: 1.05, inject: func(t *testing.T, f *faultRun) {
			leader := f.queueLeader(t, "")
			other := clusterNodes[0]
			if other == leader {
				other = clusterNodes[1]
			}
			t.Cleanup(func() { _, _ = f.rabbitmqctl(other, "start_app") })
			_, err := f.rabbitmqctl(other, "stop_app")
			must(t, err)
			time.Sleep(20 * time.Second)
			_, err = f.rabbitmqctl(other, "start_app")
			must(t, err)
			t.Logf("node kdemo-%s (the leader is kdemo-%s): stop_app, 20 s, start_app", other, leader)
		}},
		{name: "state-kept-restart", redelivered: -1, inject: func(t *testing.T, f *faultRun) {
			f.cluster(t, "down")
			installed = "none"
			install(t, "")
		}},
		{name: "processor-kill-before-ack", setup: "faultinject", content: killOnFirstDelivery, redelivered: 1, inject: func(t *testing.T, f *faultRun) {
			// The first message kills its processor between the store write and the ack: wait for
			// its Job's pod to have failed.
			f.e.eventually("a processor killed after its store write", 2*time.Minute, func() (bool, error) {
				l, err := f.e.cs.BatchV1().Jobs(namespace).List(f.e.ctx, metav1.ListOptions{LabelSelector: processorJobs})
				if err != nil {
					return false, err
				}
				for _, j := range l.Items {
					if f.jobs.has(j.Name) && j.Status.Failed > 0 {
						return true, nil
					}
				}
				return false, fmt.Errorf("no Job of this burst has a failed pod yet")
			})
		}},
	}
	var lines []string
	for _, fl := range faults {
		ok := t.Run(fl.name, func(t *testing.T) {
			e.cur = t
			defer func() { e.cur = nil }()
			install(t, fl.setup)
			lines = append(lines, e.runFault(t, fl, b))
		})
		if !ok {
			e.dumpState()
		}
	}
	if len(lines) > 0 {
		t.Logf("faults, burst of %d messages, %d s of work, maxReplicaCount %d:\n%s", b.messages, b.workSeconds, b.maxReplicas, strings.Join(lines, "\n"))
	}
}

// faultRun is one fault's burst and what it saw.
type faultRun struct {
	e      *env
	name   string
	prefix string
	jobs   *jobWatch

	mu       sync.Mutex
	sent     int
	tried    map[string]bool
	accepted map[string]string // name -> message id, for every 202
}

// runFault: a burst, the fault while Jobs run and messages wait, the drain, the accounting line.
func (e *env) runFault(t *testing.T, fl fault, b faultBurst) string {
	e.purge(t)
	f := &faultRun{e: e, name: fl.name, prefix: fmt.Sprintf("fault-%s-%d-", fl.name, time.Now().Unix()), accepted: map[string]string{}, tried: map[string]bool{}}
	f.jobs = e.watchJobs(t, processorJobs)
	defer f.jobs.stop()
	for i := range b.messages {
		content := "fault " + fl.name
		if i == 0 && fl.content != "" {
			content = fl.content
		}
		// A 503 (e.g. an old app pod in its preStop sleep after the broker moved) is retried
		// after a second, as a client honouring Retry-After would, for up to 30 s.
		var err error
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
			if _, err = f.post(fmt.Sprintf("%03d", i), content); err == nil || time.Now().After(end) {
				break
			}
		}
		if err != nil {
			t.Fatalf("the burst before the fault: %v", err)
		}
	}
	e.eventually("Jobs running and messages waiting", 2*time.Minute, func() (bool, error) {
		running, ready := f.runningPods(), e.queueReady()
		return running > 0 && ready > 0, fmt.Errorf("%d processor pods running, %d messages ready", running, ready)
	})
	before := f.snapshot(t)
	t.Logf("%s: injecting with %d of this burst's Jobs present and %d messages ready", fl.name, len(before), e.queueReady())
	fl.inject(t, f)
	ended := time.Now()

	// Recovered: the work queue empty and every accepted message stored (a broker that is still
	// recovering its queue can report it empty).
	e.eventually("the work queue empty after the fault", 10*time.Minute, func() (bool, error) {
		n := e.queueReady()
		return n == 0, fmt.Errorf("%d messages ready", n)
	})
	f.mu.Lock()
	accepted := len(f.accepted)
	f.mu.Unlock()
	e.waitPrefixRecords(t, f.prefix, accepted, 5*time.Minute, 250*time.Millisecond)
	recovery := time.Since(ended)
	created := f.jobs.settle(t, e, 10*time.Minute, 6*time.Second)

	// The accounting, from the records (GET /data), the Jobs (API) and each run's result line.
	recs := e.waitPrefixRecords(t, f.prefix, accepted, time.Minute, 250*time.Millisecond)
	have, idsOfName := map[string]bool{}, map[string]map[string]bool{}
	for _, r := range recs {
		have[r.ID] = true
		if idsOfName[r.Name] == nil {
			idsOfName[r.Name] = map[string]bool{}
		}
		idsOfName[r.Name][r.ID] = true
	}
	lost, dup, redelivered, empty := 0, 0, 0, 0
	for _, id := range f.accepted {
		if !have[id] {
			lost++
			t.Errorf("message %s got its 202 and has no record", id)
		}
	}
	for name, ids := range idsOfName {
		if len(ids) > 1 {
			dup++
			t.Errorf("name %s sent once is stored under %d ids", name, len(ids))
		}
	}
	storedBy, podsFailed := map[string][]string{}, 0
	for name := range created {
		j, err := e.cs.BatchV1().Jobs(namespace).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			continue // deleted: counted below if it existed at the fault
		}
		podsFailed += int(j.Status.Failed) // e.g. exit 69 or 75 during the fault, then retried
		res := e.results(t, *j)
		for _, r := range res {
			switch r.Outcome {
			case "stored":
				storedBy[r.MessageID] = append(storedBy[r.MessageID], name)
			case "already-stored":
				redelivered++
			}
		}
		if len(res) > 0 && res[len(res)-1].Outcome == "queue-empty" {
			empty++
		}
	}
	for id, jobs := range storedBy {
		if len(jobs) > 1 {
			dup++
			t.Errorf("message %s stored by %d Jobs: %v", id, len(jobs), jobs)
		}
	}
	deleted, restarts := f.since(t, before)
	f.mu.Lock()
	line := fmt.Sprintf("fault=%s sent=%d accepted=%d records=%d lost=%d dup=%d redelivered=%d jobs=%d jobs_empty=%d jobs_deleted=%d pod_restarts=%d recovery_s=%.1f pods_failed=%d",
		fl.name, f.sent, len(f.accepted), len(recs), lost, dup, redelivered, len(created), empty, deleted, restarts, recovery.Seconds(), podsFailed)
	f.mu.Unlock()
	fmt.Println(line)
	if w, err := os.OpenFile(filepath.Join(runDir, "faults.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(w, time.Now().UTC().Format(time.RFC3339), line)
		w.Close()
	}
	if fl.redelivered >= 0 && redelivered != fl.redelivered {
		t.Errorf("%d redelivered (already-stored) runs; want %d", redelivered, fl.redelivered)
	}
	if jpm := float64(len(created)) / float64(max(1, len(f.accepted))); fl.maxJobsPerMessage > 0 && jpm > fl.maxJobsPerMessage {
		t.Errorf("%.2f Jobs per message; want at most %.2f", jpm, fl.maxJobsPerMessage)
	}
	if fl.keepsJobs && (deleted > 0 || restarts > 0) {
		t.Errorf("the fault deleted or recreated %d Jobs and restarted %d pods of those it found running", deleted, restarts)
	}
	return line
}

// post sends one message of the burst (name prefix+suffix); it returns the id of a 202.
func (f *faultRun) post(suffix, content string) (string, error) {
	name := f.prefix + suffix
	f.mu.Lock()
	if !f.tried[name] { // a retry of the same message is not another one
		f.tried[name] = true
		f.sent++
	}
	f.mu.Unlock()
	id, err := f.e.post(name, content, name) // a retry of the same message is stored once
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	f.accepted[name] = id
	f.mu.Unlock()
	return id, nil
}

// cluster runs cluster/cluster.sh on the cluster of this run (bounded: 5 minutes); a component
// stopped by the step is started again when the step ends, whatever happened.
func (f *faultRun) cluster(t *testing.T, args ...string) {
	t.Helper()
	if args[0] == "kill-component" {
		comp := args[1]
		t.Cleanup(func() { _, _ = f.runCluster("start-component", comp) })
	}
	start := time.Now()
	out, err := f.runCluster(args...)
	t.Logf("cluster.sh %s: %s\n%s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(out))
	must(t, err)
}

func (f *faultRun) runCluster(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"cluster/cluster.sh"}, args...)...)
	cmd.Dir = chartDir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (f *faultRun) burstPods() []corev1.Pod {
	l, err := f.e.cs.CoreV1().Pods(namespace).List(f.e.ctx, metav1.ListOptions{LabelSelector: "job-name"})
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if f.jobs.has(p.Labels["job-name"]) {
			out = append(out, p)
		}
	}
	return out
}

func (f *faultRun) runningPods() int {
	n := 0
	for _, p := range f.burstPods() {
		if p.Status.Phase == corev1.PodRunning {
			n++
		}
	}
	return n
}

// workingPod waits for a processor pod of this burst that holds its message (Ready: the
// processor's readiness says "taken") and returns its name.
func (f *faultRun) workingPod(t *testing.T) string {
	var name string
	f.e.eventually("a processor pod holding its message", time.Minute, func() (bool, error) {
		for _, p := range f.burstPods() {
			if p.DeletionTimestamp == nil && podReady(&p) {
				name = p.Name
				return true, nil
			}
		}
		return false, fmt.Errorf("none Ready")
	})
	return name
}

// queueReady is the work queue's ready count (-1 while the broker does not answer).
func (e *env) queueReady() int {
	conn, err := amqp.DialConfig(e.amqpURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return -1
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return -1
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// jobState is what the fault may change of a Job that existed when it struck.
type jobState struct {
	uid            types.UID
	failedPods     int32
	containerStart int32
}

func (f *faultRun) snapshot(t *testing.T) map[string]jobState {
	l, err := f.e.cs.BatchV1().Jobs(namespace).List(f.e.ctx, metav1.ListOptions{LabelSelector: processorJobs})
	must(t, err)
	out := map[string]jobState{}
	for _, j := range l.Items {
		if f.jobs.has(j.Name) {
			out[j.Name] = jobState{uid: j.UID, failedPods: j.Status.Failed, containerStart: f.containerRestarts(j.Name)}
		}
	}
	return out
}

func (f *faultRun) containerRestarts(job string) int32 {
	var n int32
	for _, p := range f.burstPods() {
		if p.Labels["job-name"] == job {
			for _, c := range p.Status.ContainerStatuses {
				n += c.RestartCount
			}
		}
	}
	return n
}

// since counts the Jobs of the snapshot now deleted or recreated (another UID), and the pods of
// the others that failed or restarted since.
func (f *faultRun) since(t *testing.T, before map[string]jobState) (deleted, restarts int) {
	for name, s := range before {
		j, err := f.e.cs.BatchV1().Jobs(namespace).Get(f.e.ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			deleted++
			t.Logf("Job %s, there at the fault, is gone", name)
			continue
		case err != nil:
			t.Fatal(err)
		case j.UID != s.uid:
			deleted++
			t.Logf("Job %s was recreated", name)
			continue
		}
		if d := int(j.Status.Failed - s.failedPods + f.containerRestarts(name) - s.containerStart); d > 0 {
			restarts += d
			t.Logf("Job %s: %d pod failures or restarts since the fault", name, d)
		}
	}
	return deleted, restarts
}

// appPodKilledUnderLoad: two clients send, one request every `every` each; one app pod is killed
// (no grace) in the middle. Requests may fail (honestly: an error or a 5xx), and every 202 must be stored.
func (f *faultRun) appPodKilledUnderLoad(t *testing.T, every time.Duration) {
	pods, err := f.e.cs.CoreV1().Pods(namespace).List(f.e.ctx, metav1.ListOptions{LabelSelector: appPods})
	must(t, err)
	if len(pods.Items) == 0 {
		t.Fatal("no app pod")
	}
	stop := make(chan struct{})
	var failed []string
	var fmu sync.Mutex
	// a load the Jobs drain in about a minute
	wait := load(stop, 2, every, func(c, i int) {
		if _, err := f.post(fmt.Sprintf("load-%d-%04d", c, i), "sent while an app pod was killed"); err != nil {
			fmu.Lock()
			failed = append(failed, err.Error())
			fmu.Unlock()
		}
	})
	time.Sleep(2 * time.Second)
	victim := pods.Items[0].Name
	zero := int64(0)
	must(t, f.e.cs.CoreV1().Pods(namespace).Delete(f.e.ctx, victim, metav1.DeleteOptions{GracePeriodSeconds: &zero}))
	time.Sleep(4 * time.Second)
	close(stop)
	wait()
	f.mu.Lock()
	t.Logf("app pod %s killed under load: %d requests, %d accepted, %d failed (first: %v)", victim, f.sent, len(f.accepted), len(failed), failed[:min(3, len(failed))])
	f.mu.Unlock()
}

// rabbitmqctl runs rabbitmqctl against one node of the broker cluster (bounded: 1 minute).
func (f *faultRun) rabbitmqctl(node string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"cluster/rabbitmq-node.sh", "ctl", filepath.Join(stateDir, "rabbitmq-cluster", node)}, args...)...)
	cmd.Dir = chartDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl -n kdemo-%s@localhost %s: %w\n%s", node, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// queueLeader is the port of the node leading the work queue, asked of a node other than
// skip ("" when no node answers).
func (f *faultRun) queueLeader(t *testing.T, skip string) string {
	for _, n := range clusterNodes {
		if n == skip {
			continue
		}
		out, err := f.rabbitmqctl(n, "list_queues", "-p", rmqVhost, "--no-table-headers", "name", "leader", "members")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == queue {
				t.Logf("work queue on kdemo-%s: %s", n, strings.Join(fields[1:], " "))
				return strings.TrimSuffix(strings.TrimPrefix(fields[1], "kdemo-"), "@localhost")
			}
		}
	}
	return ""
}

// livePage follows the live page's event stream (GET /events) and keeps the Jobs states it
// announces ("watching", "unavailable", …), in order.
type livePage struct {
	mu   sync.Mutex
	seen []string
	stop func()
}

func (p *livePage) states() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

func (p *livePage) saw(cond func([]string) bool) bool { return cond(p.states()) }

func (f *faultRun) followLivePage() *livePage {
	ctx, cancel := context.WithCancel(f.e.ctx)
	p := &livePage{}
	done := make(chan struct{})
	p.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		for ctx.Err() == nil { // the stream reconnects, as the page does
			p.follow(ctx, f.e.appURL+"/events")
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return p
}

func (p *livePage) follow(ctx context.Context, u string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var st struct {
			State      string
			JobsStatus struct{ State string } `json:"jobsStatus"`
		}
		if json.Unmarshal([]byte(data), &st) != nil {
			continue
		}
		state := ""
		switch event {
		case "snapshot":
			state = st.JobsStatus.State
		case "jobs-status":
			state = st.State
		}
		if state != "" {
			p.mu.Lock()
			if len(p.seen) == 0 || p.seen[len(p.seen)-1] != state {
				p.seen = append(p.seen, state)
			}
			p.mu.Unlock()
		}
	}
}

// appRolledOut waits until every app pod runs the Deployment's current template and none is
// terminating: an old pod in its preStop sleep still answers, with the old configuration (after
// a change of broker, it would queue messages on the broker the release left).
func (e *env) appRolledOut(t *testing.T) {
	e.eventually("the app's rollout finished, no old pod left", 3*time.Minute, func() (bool, error) {
		d, err := e.cs.AppsV1().Deployments(namespace).Get(e.ctx, relName+"-app", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want {
			return false, fmt.Errorf("deployment: %d updated, %d available of %d", d.Status.UpdatedReplicas, d.Status.AvailableReplicas, want)
		}
		pods, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{LabelSelector: appPods})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				return false, fmt.Errorf("pod %s terminating", p.Name)
			}
		}
		return int32(len(pods.Items)) == want, fmt.Errorf("%d app pods, want %d", len(pods.Items), want)
	})
}
