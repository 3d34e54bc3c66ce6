//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
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
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/keda-demo/keda-demo/cluster/chartdeps"
)

// What cluster/cluster.sh up installs: the release, its namespace, and the private RabbitMQ
// node's vhost and user (whose password contains '@', ':', '/' and '%': the chart must escape it).
const (
	namespace = "keda-demo"
	relName   = "keda-demo"
	rmqVhost  = "keda-demo"
	rmqUser   = "keda-demo"
	rmqPort   = "5682"      // the private node; KEDA_DEMO_BROKER=cluster: haproxy on 5700 before three nodes
	queue     = "keda-demo" // the chart's default global.kedaDemo.queueName

	// Label selectors of the release's app pods and of the ScaledJob's Jobs.
	appPods       = "app.kubernetes.io/name=keda-demo-app,app.kubernetes.io/instance=" + relName
	processorJobs = "scaledjob.keda.sh/name=" + relName + "-processor"
)

var (
	chartDir = "../.."
	runDir   = os.Getenv("KEDA_DEMO_RUN")               // set by tests/e2e/run.sh: logs and PIDs of this run's cluster
	stateDir = os.Getenv("KEDA_DEMO_STATE")             // its kubeconfig, PKI and data
	gateway  = envOr("KEDA_DEMO_NET", "10.89.0") + ".1" // the host, as pods see it (bridge gateway)
	// The scenario's processor.keda.pollingInterval (seconds); E2E_POLLING_INTERVAL overrides it.
	pollingInterval, _ = strconv.Atoi(envOr("E2E_POLLING_INTERVAL", "5"))
	// The scenario's processor.keda.scalingStrategy.strategy; E2E_STRATEGY overrides it.
	strategy = envOr("E2E_STRATEGY", "accurate")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type env struct {
	t           *testing.T // the scenario
	cur         *testing.T // the running step
	ctx         context.Context
	rest        *rest.Config
	cs          kubernetes.Interface
	dyn         dynamic.Interface
	helm        *action.Configuration
	flags       *genericclioptions.ConfigFlags
	chart       *chart.Chart
	amqpURL     string // the private RabbitMQ node, for the test itself (loopback)
	rmqPassword string
	appURL      string // the URL `up` printed

	// What this process has set up in the cluster, which tests/e2e/run.sh makes new for every run: a
	// step run alone finds here what the steps before it would have left.
	installed bool // `up` ran to the end: KEDA and the release are installed
}

var (
	scaledJobs = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledjobs"}
	triggerAut = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "triggerauthentications"}
)

// TestE2E is the chart's scenario on a real cluster: the steps below, in order; a failed step
// stops the rest. Each subtest is named after its method and can run alone, e.g.
//
//	E2E_TEST_ARGS="-run TestE2E/burstScales" go tool task e2e
//
// A step run so installs first what the steps before it would have left (KEDA, the release),
// or, where that cannot be, skips and says which step it must run before.
func TestE2E(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"installWithoutKEDAFails", e.installWithoutKEDAFails},
		{"installReady", e.installReady},
		{"profilesAcceptedByAPIServer", e.profilesAcceptedByAPIServer},
		{"helmTestPasses", e.helmTestPasses},
		{"fiveMessagesStored", e.fiveMessagesStored},
		{"livePageShowsJobsAndRecords", e.livePageShowsJobsAndRecords},
		{"burstScales", e.burstScales},
		{"upgradeKeepsRunningJobs", e.upgradeKeepsRunningJobs},
		{"secondUpRollsNewImages", e.secondUpRollsNewImages},
		{"rollingUpgradeUnderLoad", e.rollingUpgradeUnderLoad},
		{"pendingJobsOutwaitTheOldDeadline", e.pendingJobsOutwaitTheOldDeadline},
		{"poisonMessageDeadLettered", e.poisonMessageDeadLettered},
		{"uninstallLeavesNothing", e.uninstallLeavesNothing},
	}
	for _, s := range steps {
		start := time.Now()
		fn, ran := s.fn, false
		ok := t.Run(s.name, func(t *testing.T) { ran, e.cur = true, t; defer func() { e.cur = nil }(); fn(t) })
		if !ran { // not selected by -run
			continue
		}
		t.Logf("step %s: %v in %s", s.name, map[bool]string{true: "PASS", false: "FAIL"}[ok], time.Since(start).Round(100*time.Millisecond))
		if !ok {
			e.dumpState()
			t.FailNow()
		}
	}
}

// newEnv connects to the cluster of tests/e2e/run.sh (or of `task up`, for the scale benchmark):
// KEDA_DEMO_RUN and KEDA_DEMO_STATE name its folders.
func newEnv(t *testing.T) *env {
	if runDir == "" || stateDir == "" {
		t.Fatal("KEDA_DEMO_RUN and KEDA_DEMO_STATE must be set: run `go tool task e2e` (tests/e2e/run.sh)")
	}
	kc := filepath.Join(stateDir, "admin.kubeconfig")
	must(t, os.Setenv("KUBECONFIG", kc))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	must(t, err)
	cfg.QPS, cfg.Burst = 50, 100
	e := &env{t: t, ctx: ctx, rest: cfg}
	e.cs = kubernetes.NewForConfigOrDie(cfg)
	e.dyn = dynamic.NewForConfigOrDie(cfg)
	e.initHelm()
	e.chart, err = loader.Load(chartDir)
	must(t, err)

	pw, err := os.ReadFile(filepath.Join(stateDir, "rabbitmq-password"))
	must(t, err)
	e.rmqPassword = strings.TrimSpace(string(pw))
	e.amqpURL = e.brokerURL(rmqPort)

	return e
}

// brokerURL: the release's vhost and user on the host's broker at 127.0.0.1:port.
func (e *env) brokerURL(port string) string {
	return (&url.URL{Scheme: "amqp", User: url.UserPassword(rmqUser, e.rmqPassword), Host: "127.0.0.1:" + port, Path: "/" + rmqVhost}).String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ---------------------------------------------------------------- setup

// initHelm (re)creates the Helm SDK configuration; Helm caches discovery and the cluster's
// capabilities, so it is created again once KEDA's API exists.
func (e *env) initHelm() {
	e.flags, e.helm = e.newHelm(namespace)
}

// newHelm is a Helm SDK configuration for releases in ns, with discovery read afresh.
func (e *env) newHelm(ns string) (*genericclioptions.ConfigFlags, *action.Configuration) {
	kc := os.Getenv("KUBECONFIG")
	cacheDir := filepath.Join(runDir, "kube-cache") // not ~/.kube/cache
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace, flags.CacheDir = &kc, &ns, &cacheDir
	if dc, err := flags.ToDiscoveryClient(); err == nil {
		dc.Invalidate()
	}
	cfg := new(action.Configuration)
	must(e.tt(), cfg.Init(flags, ns, "secret", func(string, ...any) {}))
	return flags, cfg
}

// scenarioSets are the scenario's values on top of what `up` sets (the external profile pointed at
// the host's RabbitMQ node and FerretDB, the images of this tree).
func scenarioSets(extra ...string) []string {
	sets := []string{
		"processor.keda.pollingInterval=" + strconv.Itoa(pollingInterval),
		"processor.keda.maxReplicaCount=20",
		"processor.keda.scalingStrategy.strategy=" + strategy,
		// keep every finished Job so the test can count them and read their logs
		"processor.keda.successfulJobsHistoryLimit=100",
		"processor.keda.failedJobsHistoryLimit=100",
		"tests.podStartSeconds=90",
	}
	if p := os.Getenv("E2E_PENDING_POD_CONDITIONS"); p != "" {
		sets = append(sets, "processor.keda.scalingStrategy.pendingPodConditions={"+p+"}")
	}
	return append(sets, extra...)
}

// pendingPodConditions is what the scenario's ScaledJob counts as pending, for the report.
func pendingPodConditions() string {
	if p := os.Getenv("E2E_PENDING_POD_CONDITIONS"); p != "" {
		return p
	}
	return "Ready (the chart's default)"
}

// up runs `cluster/cluster.sh up` as `go tool task up` does, with the scenario's values (and
// env, e.g. KEDA_DEMO_IMAGEBUILD_ARGS), and returns what it printed on stdout and how long it took.
func (e *env) up(t *testing.T, env []string, extraSets ...string) (string, time.Duration) {
	t.Helper()
	return e.upWith(t, env, scenarioSets(extraSets...))
}

// upWith runs `cluster/cluster.sh up` with exactly these --set values.
func (e *env) upWith(t *testing.T, env, values []string) (string, time.Duration) {
	t.Helper()
	var sets []string
	for _, s := range values {
		sets = append(sets, "--set", s)
	}
	cmd := exec.CommandContext(e.ctx, "bash", "cluster/cluster.sh", "up")
	cmd.Dir = chartDir
	cmd.Env = append(append(os.Environ(), "KEDA_DEMO_SETS="+strings.Join(sets, " ")), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	t.Logf("cluster.sh up: %s\n%s", d.Round(100*time.Millisecond), out.String())
	must(t, err)
	e.initHelm() // so that Helm sees keda.sh/v1alpha1 and the release
	e.installed = true
	return out.String(), d
}

// values: the profile `up` installs, for the SDK install that must fail without KEDA.
func (e *env) values() map[string]any {
	t := e.t
	v, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "ci", "external-values.yaml"))
	must(t, err)
	vals := v.AsMap()
	for _, s := range scenarioSets("global.kedaDemo.externalRabbitmq.host="+gateway, "global.kedaDemo.externalMongodb.host="+gateway) {
		must(t, strvals.ParseInto(s, vals))
	}
	return vals
}

func (e *env) install(vals map[string]any, wait bool) (*release.Release, error) {
	inst := action.NewInstall(e.helm)
	inst.ReleaseName, inst.Namespace = relName, namespace
	inst.Wait, inst.Timeout = wait, 5*time.Minute
	return inst.RunWithContext(e.ctx, e.chart, vals)
}

// ---------------------------------------------------------------- steps

// installWithoutKEDAFails: in a cluster without KEDA's CRDs, helm install fails at once with the
// chart's "Install KEDA first" and records no release.
func (e *env) installWithoutKEDAFails(t *testing.T) {
	if e.installed || e.kedaCRDsExist(t) {
		t.Skip("KEDA's CRDs are in the cluster already: installWithoutKEDAFails needs a cluster without them (it runs first, before installReady)")
	}
	start := time.Now()
	_, err := e.install(e.values(), false)
	d := time.Since(start)
	if err == nil {
		t.Fatal("helm install succeeded in a cluster without KEDA's CRDs")
	}
	if !strings.Contains(err.Error(), "keda-demo needs KEDA") || !strings.Contains(err.Error(), "Install KEDA first") {
		t.Fatalf("install failed, but not with the chart's message: %v", err)
	}
	if d > 15*time.Second {
		t.Errorf("install took %s to fail; want at once", d)
	}
	if _, err := action.NewGet(e.helm).Run(relName); err == nil {
		t.Error("a release was recorded by the failed install")
	}
	t.Logf("install without KEDA failed after %s with the chart's message", d.Round(time.Millisecond))
}

// installReady: `up` (as `go tool task up` runs it) installs KEDA and the release, waits until
// every pod and the ScaledJob are Ready, and prints the app's URL on 127.0.0.1, a kubectl line
// that works, and how to stop. The kubernetes Service has the API server as its endpoint, so
// pods can reach the API.
func (e *env) installReady(t *testing.T) {
	out, d := e.installRelease(t)
	for _, want := range []string{"kubeconfig: " + filepath.Join(stateDir, "admin.kubeconfig"), "go tool task down"} {
		if !strings.Contains(out, want) {
			t.Errorf("up did not print %q", want)
		}
	}
	kubectl := regexp.MustCompile(`(?m)^\s*kubectl:\s+(.+)$`).FindStringSubmatch(out)
	if kubectl == nil {
		t.Fatal("up printed no kubectl line")
	}
	jobs := run(t, "bash", "-c", kubectl[1]) // the line as printed, e.g. `…/kubectl --kubeconfig … get jobs`
	t.Logf("printed kubectl line works: %s", strings.TrimSpace(jobs))
	pods, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{})
	must(t, err)
	n := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		n++
		if !podReady(&p) {
			t.Errorf("pod %s not Ready (%s)", p.Name, p.Status.Phase)
		}
	}
	if n == 0 {
		t.Fatal("no pods")
	}
	eps, err := e.cs.DiscoveryV1().EndpointSlices("default").List(e.ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
	must(t, err)
	var apiEndpoints []string
	for _, sl := range eps.Items {
		for _, ep := range sl.Endpoints {
			apiEndpoints = append(apiEndpoints, ep.Addresses...)
		}
	}
	if !contains(apiEndpoints, gateway) {
		t.Errorf("the kubernetes Service's endpoints are %v; want the API server on the bridge gateway %s", apiEndpoints, gateway)
	}
	t.Logf("up: KEDA and release ready, %d pods Ready, app at %s, after %s", n, e.appURL, d.Round(time.Millisecond))
}

var printedURL = regexp.MustCompile(`(?m)^\s*app:\s+(http://127\.0\.0\.1:[0-9]+)\b`)

// installRelease runs `up` and takes the app's URL from what it printed.
func (e *env) installRelease(t *testing.T, env ...string) (string, time.Duration) {
	out, d := e.up(t, env)
	m := printedURL.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up printed no app URL on 127.0.0.1:\n%s", out)
	}
	e.appURL = m[1]
	return out, d
}

// needRelease installs the release as installReady leaves it, unless it is installed: what
// every later step starts from, also when it runs alone.
func (e *env) needRelease(t *testing.T) {
	t.Helper()
	if e.installed {
		return
	}
	t.Logf("%s: the release is not installed (installReady did not run): installing it first", t.Name())
	e.installRelease(t)
}

// kedaCRDsExist reports whether KEDA's ScaledJob CRD is in the cluster.
func (e *env) kedaCRDsExist(t *testing.T) bool {
	_, err := apiext.NewForConfigOrDie(e.rest).ApiextensionsV1().CustomResourceDefinitions().Get(e.ctx, scaledJobs.GroupResource().String(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	must(t, err)
	return true
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// profilesAcceptedByAPIServer: every profile in ci/ (and the defaults, production+external, and
// one with every optional object of the app on), rendered as `helm install --dry-run=server`
// renders it against this cluster, hooks included, is accepted by the API server: a server-side
// apply dry run of each object in a fresh namespace, so the built-in and CRD schemas, field
// validation and admission (Pod Security "restricted") judge what users would install. The
// ServiceMonitor and PrometheusRule need the prometheus-operator CRDs: applied for real, from the
// module pinned in cluster/tools/prometheus-operator. The namespace also warns at restricted:
// enforce judges Pod objects only, warn judges the pod templates of StatefulSets, Deployments and
// Jobs too, so any API warning fails the step. The bitnami objects are in when the archives are
// found (cluster/chartdeps); in CI (CI=true) missing archives fail the step; elsewhere the profiles
// use ci/external-values.yaml's own services and the bitnami objects are left out.
func (e *env) profilesAcceptedByAPIServer(t *testing.T) {
	e.needRelease(t) // KEDA's CRDs
	const manager = "keda-demo-e2e"
	apply := metav1.PatchOptions{FieldManager: manager, Force: new(true)}

	cmd := exec.CommandContext(e.ctx, "go", "mod", "download", "-json", "github.com/prometheus-operator/prometheus-operator")
	cmd.Dir, cmd.Env = filepath.Join(chartDir, "cluster", "tools", "prometheus-operator"), append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	must(t, err)
	var mod struct{ Dir, Version string }
	must(t, json.Unmarshal(out, &mod))
	crds := apiext.NewForConfigOrDie(e.rest).ApiextensionsV1().CustomResourceDefinitions()
	monitoring := []string{"servicemonitors", "prometheusrules"}
	for _, r := range monitoring {
		y, err := os.ReadFile(filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+r+".yaml"))
		must(t, err)
		j, err := yaml.YAMLToJSON(y)
		must(t, err)
		_, err = crds.Patch(e.ctx, r+".monitoring.coreos.com", types.ApplyPatchType, j, apply)
		must(t, err)
	}
	// Established, and in discovery: where Helm's capabilities and the RESTMapper look.
	e.eventually("the prometheus-operator CRDs Established and served", time.Minute, func() (bool, error) {
		for _, r := range monitoring {
			c, err := crds.Get(e.ctx, r+".monitoring.coreos.com", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !slices.ContainsFunc(c.Status.Conditions, func(c apiextv1.CustomResourceDefinitionCondition) bool {
				return c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue
			}) {
				return false, fmt.Errorf("%s: conditions %v", c.Name, c.Status.Conditions)
			}
		}
		l, err := e.cs.Discovery().ServerResourcesForGroupVersion("monitoring.coreos.com/v1")
		if err != nil {
			return false, err
		}
		served := 0
		for _, res := range l.APIResources {
			if slices.Contains(monitoring, res.Name) {
				served++
			}
		}
		return served == 2, fmt.Errorf("monitoring.coreos.com/v1 serves %d of the 2", served)
	})
	t.Logf("prometheus-operator %s CRDs ServiceMonitor and PrometheusRule established", mod.Version)

	nsObj, err := e.cs.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "keda-demo-ssa-",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}, metav1.CreateOptions{})
	must(t, err)
	ns := nsObj.Name
	t.Cleanup(func() { _ = e.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// The ServiceAccount admission plugin rejects the helm test Pod until "default" exists.
	e.eventually("ServiceAccount default in "+ns, time.Minute, func() (bool, error) {
		_, err := e.cs.CoreV1().ServiceAccounts(ns).Get(e.ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	_, helm := e.newHelm(ns) // after the CRDs, so its capabilities have monitoring.coreos.com/v1
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.cs.Discovery()))

	// Every warning the API server sends (Pod Security warn, unknown fields, deprecations) is
	// recorded per request and fails the object.
	warned := &warningRecorder{}
	wcfg := rest.CopyConfig(e.rest)
	wcfg.WarningHandler = warned
	dyn := dynamic.NewForConfigOrDie(wcfg)

	_, bitnami, err := chartdeps.Load(chartDir)
	must(t, err)
	if !bitnami && os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: the bitnami chart archives are missing, so the server-side dry run would leave their objects out: %s", chartdeps.HowToGet)
	}
	if !bitnami {
		t.Logf("bitnami archives neither in charts/ nor in KEDA_DEMO_BITNAMI_CHARTS (%q): every profile is dry-run with mongodb/rabbitmq disabled and ci/external-values.yaml's services, so the bitnami objects are left out", os.Getenv("KEDA_DEMO_BITNAMI_CHARTS"))
	}
	ci := func(p string) string { return filepath.Join(chartDir, "ci", p+"-values.yaml") }
	profiles := []struct {
		name  string
		files []string
		sets  []string
	}{
		{"defaults", nil, nil},
		{"default", []string{ci("default")}, nil},
		{"dev", []string{ci("dev")}, nil},
		{"production", []string{ci("production")}, nil},
		{"external", []string{ci("external")}, nil},
		{"production-external", []string{ci("production"), ci("external")}, nil},
		{"optional", nil, []string{"app.ingress.enabled=true", "app.networkPolicy.enabled=true", "app.serviceMonitor.enabled=true",
			"app.grafanaDashboard.enabled=true", "app.prometheusRule.enabled=true"}},
	}
	objects, bitnamiObjects := 0, 0
	for _, p := range profiles {
		files := p.files
		if !bitnami && !contains(files, ci("external")) {
			files = append(files, ci("external"))
		}
		vals, err := (&values.Options{ValueFiles: files, Values: p.sets}).MergeValues(nil)
		must(t, err)
		inst := action.NewInstall(helm)
		inst.ReleaseName, inst.Namespace = "ssa-"+p.name, ns
		inst.DryRun, inst.DryRunOption = true, "server" // capabilities and lookup from the cluster
		ch, _, err := chartdeps.Load(chartDir)          // anew: the install prunes disabled subcharts
		must(t, err)
		rel, err := inst.RunWithContext(e.ctx, ch, vals)
		if err != nil {
			t.Errorf("profile %s: render: %v", p.name, err)
			continue
		}
		type doc struct {
			yaml string
			hook bool
		}
		split := releaseutil.SplitManifests(rel.Manifest)
		keys := slices.Collect(maps.Keys(split))
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		var docs []doc
		for _, k := range keys {
			docs = append(docs, doc{split[k], false})
		}
		for _, h := range rel.Hooks {
			docs = append(docs, doc{h.Manifest, true})
		}
		n := 0
		for _, d := range docs {
			var obj map[string]any
			must(t, yaml.Unmarshal([]byte(d.yaml), &obj))
			if len(obj) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: obj}
			what := u.GetKind() + " " + u.GetName()
			if !d.hook { // what Helm adds to the objects it installs (not to hooks)
				u.SetLabels(mergeStrings(u.GetLabels(), map[string]string{"app.kubernetes.io/managed-by": "Helm"}))
				u.SetAnnotations(mergeStrings(u.GetAnnotations(), map[string]string{"meta.helm.sh/release-name": rel.Name, "meta.helm.sh/release-namespace": ns}))
			}
			gvk := u.GroupVersionKind()
			rm, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Errorf("profile %s: %s: %v", p.name, what, err)
				continue
			}
			ri := dyn.Resource(rm.Resource)
			var r dynamic.ResourceInterface = ri
			if rm.Scope.Name() == meta.RESTScopeNameNamespace {
				u.SetNamespace(ns)
				r = ri.Namespace(ns)
			}
			body, err := u.MarshalJSON()
			must(t, err)
			dry := apply
			dry.DryRun = []string{metav1.DryRunAll}
			warned.take()
			if _, err := r.Patch(e.ctx, u.GetName(), types.ApplyPatchType, body, dry); err != nil {
				t.Errorf("profile %s: the API server rejects %s: %v", p.name, what, err)
				continue
			}
			if w := warned.take(); len(w) > 0 {
				t.Errorf("profile %s: the API server warns about %s: %s", p.name, what, strings.Join(w, "; "))
				continue
			}
			n++
			if strings.Contains(d.yaml, "# Source: keda-demo/charts/mongodb/") || strings.Contains(d.yaml, "# Source: keda-demo/charts/rabbitmq/") {
				bitnamiObjects++
			}
		}
		objects += n
		t.Logf("profile %s: %d objects (%d hooks) accepted by a server-side apply dry run", p.name, n, len(rel.Hooks))
	}
	if bitnami && bitnamiObjects == 0 {
		t.Error("the bitnami archives were found, yet no bitnami object was dry-run")
	}
	fmt.Printf("e2e: ssa_profiles=%d ssa_objects=%d ssa_bitnami_objects=%d\n", len(profiles), objects, bitnamiObjects)
}

// warningRecorder keeps the API server's warnings (the Warning header) until taken.
type warningRecorder struct {
	mu sync.Mutex
	w  []string
}

func (r *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w = append(r.w, text)
}

func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.w
	r.w = nil
	return w
}

func mergeStrings(a, b map[string]string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

// helmTestPasses: helm test (the app image's smoke test through the Service name and cluster DNS).
func (e *env) helmTestPasses(t *testing.T) {
	e.needRelease(t)
	start := time.Now()
	rt := action.NewReleaseTesting(e.helm)
	rt.Namespace, rt.Timeout = namespace, 5*time.Minute
	rel, err := rt.Run(relName)
	var hooks []*release.Hook
	if rel != nil {
		hooks = rel.Hooks
	}
	for _, h := range hooks {
		if h.Kind == "Pod" && h.LastRun.Phase != release.HookPhaseUnknown {
			logs, _ := e.cs.CoreV1().Pods(namespace).GetLogs(h.Name, &corev1.PodLogOptions{}).DoRaw(e.ctx)
			t.Logf("helm test pod %s: %s\n%s", h.Name, h.LastRun.Phase, strings.TrimSpace(string(logs)))
		}
	}
	must(t, err)
	for _, h := range hooks {
		for _, ev := range h.Events {
			if ev == release.HookTest && h.LastRun.Phase != release.HookPhaseSucceeded {
				t.Errorf("test hook %s: %s", h.Name, h.LastRun.Phase)
			}
		}
	}
	t.Logf("helm test passed in %s", time.Since(start).Round(time.Millisecond))
}

// fiveMessagesStored: five POST /send through the app's Service give five records in GET /data
// and at least five Jobs, all succeeded, every surplus one with "queue empty".
func (e *env) fiveMessagesStored(t *testing.T) {
	e.needRelease(t)
	before := e.jobNames(t)
	var ids []string
	for i := 1; i <= 5; i++ {
		ids = append(ids, e.send(t, fmt.Sprintf("five-%d", i)))
	}
	e.waitRecords(t, ids, 3*time.Minute)
	jobs := e.settleJobs(t, before)
	e.checkJobs(t, jobs, len(ids))
	t.Logf("5 POSTs -> 5 records in GET /data; %d Jobs, all succeeded", len(jobs))
}

// burstScales: a burst of 20 messages scales to at least 20 Jobs and gives 20 records; it prints
// (and writes to $E2E_RUN/e2e-result.txt) the figures of the scaling.
func (e *env) burstScales(t *testing.T) {
	e.needRelease(t)
	const n = 20
	before := e.jobNames(t)
	// Note when each new Job first appears.
	var mu sync.Mutex
	seen := map[string]time.Time{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			l, err := e.cs.BatchV1().Jobs(namespace).List(e.ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			for _, j := range l.Items {
				if _, old := before[j.Name]; !old {
					if _, ok := seen[j.Name]; !ok {
						seen[j.Name] = now
					}
				}
			}
			mu.Unlock()
		}
	}()
	start := time.Now()
	var ids []string
	for i := 1; i <= n; i++ {
		ids = append(ids, e.send(t, fmt.Sprintf("burst-%02d", i)))
	}
	sent := time.Since(start)
	lastRecord := e.waitRecords(t, ids, 5*time.Minute)
	jobs := e.settleJobs(t, before)
	close(stop)
	wg.Wait()
	first := time.Duration(0)
	for _, at := range seen {
		if d := at.Sub(start); first == 0 || d < first {
			first = d
		}
	}
	surplus := e.checkJobs(t, jobs, n)
	line := fmt.Sprintf("e2e: messages=%d jobs=%d jobs_per_message=%.2f first_job_s=%.1f last_record_s=%.1f publish_s=%.1f surplus_queue_empty=%d polling_interval_s=%d strategy=%s pending_pod_conditions=%q",
		n, len(jobs), float64(len(jobs))/n, first.Seconds(), lastRecord.Sub(start).Seconds(), sent.Seconds(), surplus, pollingInterval, strategy, pendingPodConditions())
	fmt.Println(line)
	_ = os.WriteFile(filepath.Join(runDir, "e2e-result.txt"), []byte(line+"\n"), 0o644)
	t.Log(line)
}

// upgradeKeepsRunningJobs: helm upgrade with a changed value while three Jobs run changes the
// ScaledJob but deletes none of the running Jobs, and their messages are stored.
func (e *env) upgradeKeepsRunningJobs(t *testing.T) {
	e.needRelease(t)
	before := e.jobNames(t)
	var ids []string
	for i := 1; i <= 3; i++ {
		ids = append(ids, e.send(t, fmt.Sprintf("upgrade-%d", i)))
	}
	// Wait until three Jobs run.
	var running []string
	e.eventually("3 processor pods running", 2*time.Minute, func() (bool, error) {
		running = running[:0]
		pods, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{LabelSelector: "job-name"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if _, old := before[p.Labels["job-name"]]; !old && p.Status.Phase == corev1.PodRunning {
				running = append(running, p.Labels["job-name"])
			}
		}
		return len(running) >= 3, nil
	})
	sj0, err := e.dyn.Resource(scaledJobs).Namespace(namespace).Get(e.ctx, relName+"-processor", metav1.GetOptions{})
	must(t, err)
	// `up` again with a changed value: the same images (same digests), an upgraded release.
	_, d := e.up(t, nil, "processor.logLevel=debug")
	rel, err := action.NewGet(e.helm).Run(relName)
	must(t, err)
	sj1, err := e.dyn.Resource(scaledJobs).Namespace(namespace).Get(e.ctx, relName+"-processor", metav1.GetOptions{})
	must(t, err)
	if sj1.GetGeneration() == sj0.GetGeneration() {
		t.Errorf("the upgrade did not change the ScaledJob (generation %d)", sj0.GetGeneration())
	}
	t.Logf("up (upgrade) -> rev %d in %s; ScaledJob generation %d -> %d; Jobs running during the upgrade: %v",
		rel.Version, d.Round(time.Millisecond), sj0.GetGeneration(), sj1.GetGeneration(), running)
	// Give KEDA two polls to act on the new generation, then the running Jobs must still be there.
	time.Sleep(time.Duration(2*pollingInterval)*time.Second + time.Second)
	for _, name := range running {
		j, err := e.cs.BatchV1().Jobs(namespace).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("Job %s running during the upgrade: %v", name, err)
			continue
		}
		if j.DeletionTimestamp != nil {
			t.Errorf("Job %s is being deleted", name)
		}
	}
	e.waitRecords(t, ids, 2*time.Minute)
	jobs := e.settleJobs(t, before)
	e.checkJobs(t, jobs, len(ids))
}

// secondUpRollsNewImages: a second `up` after a change to the tree (here a different revision
// label, so different image digests) keeps the cluster and its data, and the app runs the new
// image: pinned by digest, so the pods roll although the tag is the same.
func (e *env) secondUpRollsNewImages(t *testing.T) {
	e.needRelease(t)
	first := e.send(t, "before-second-up")
	e.waitRecords(t, []string{first}, 3*time.Minute)
	image := func() string {
		d, err := e.cs.AppsV1().Deployments(namespace).Get(e.ctx, relName+"-app", metav1.GetOptions{})
		must(t, err)
		return d.Spec.Template.Spec.Containers[0].Image
	}
	before := image()
	out, d := e.installRelease(t, fmt.Sprintf("KEDA_DEMO_IMAGEBUILD_ARGS=--revision %040x", time.Now().UnixNano()))
	after := image()
	if !strings.Contains(before, "@sha256:") || !strings.Contains(after, "@sha256:") {
		t.Fatalf("app image not pinned by digest: %s -> %s", before, after)
	}
	if before == after {
		t.Fatalf("the second up kept the app image %s", before)
	}
	if !strings.Contains(out, strings.SplitN(after, "@", 2)[1]) {
		t.Errorf("the Deployment runs %s, not an image the second up built", after)
	}
	dg := strings.SplitN(after, "@", 2)[1]
	e.eventually("every app pod on "+dg, 2*time.Minute, func() (bool, error) {
		pods, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{LabelSelector: appPods})
		if err != nil || len(pods.Items) == 0 {
			return false, err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != after || !podReady(&p) {
				return false, fmt.Errorf("pod %s: %s ready=%v", p.Name, p.Spec.Containers[0].Image, podReady(&p))
			}
		}
		return true, nil
	})
	// The record stored before the second up is still there (the data outlives `up`).
	e.waitRecords(t, []string{first}, 30*time.Second)
	fmt.Printf("e2e: second_up_s=%.1f\n", d.Seconds())
	t.Logf("second up in %s: app image %s -> %s; record %s still in GET /data", d.Round(100*time.Millisecond), before, after, first)
}

// rollingUpgradeUnderLoad: clients send without pause while every app pod is replaced (a changed
// pod annotation); not one request fails. The old pods keep serving through their preStop sleep
// while the endpoint removal spreads, and a keep-alive connection the app closes on SIGTERM is
// retried by the client: each request carries an Idempotency-Key, which makes a POST replayable
// for Go's transport (and stores the record once). The backlog (one Job per message) is purged
// afterwards: storing is what fiveMessagesStored and burstScales prove.
func (e *env) rollingUpgradeUnderLoad(t *testing.T) {
	e.needRelease(t)
	jobsBefore := e.jobNames(t)
	pods := func() map[string]bool {
		list, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{LabelSelector: appPods})
		must(t, err)
		names := map[string]bool{}
		for _, p := range list.Items {
			names[p.Name] = true
		}
		return names
	}
	old := pods()
	var (
		mu       sync.Mutex
		accepted []string
		failures []string
	)
	stop := make(chan struct{})
	wait := load(stop, 2, 100*time.Millisecond, func(c, i int) {
		key := fmt.Sprintf("rollout-%d-%d-%d", c, i, time.Now().UnixNano())
		_, err := e.post(key, "rollout", key)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, key+": "+err.Error())
			return
		}
		accepted = append(accepted, key)
	})
	time.Sleep(2 * time.Second) // load before the rollout starts
	_, d := e.up(t, nil, "app.podAnnotations.e2e-rollout="+strconv.FormatInt(time.Now().UnixNano(), 36))
	e.eventually("every old app pod gone", 2*time.Minute, func() (bool, error) {
		for name := range pods() {
			if old[name] {
				return false, fmt.Errorf("pod %s still there", name)
			}
		}
		return true, nil
	})
	time.Sleep(2 * time.Second) // and load after it ended
	close(stop)
	wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during the rolling upgrade; first: %v", len(failures), len(failures)+len(accepted), failures[:min(5, len(failures))])
	}
	if len(accepted) < 50 {
		t.Errorf("only %d requests accepted: the load did not run through the rollout", len(accepted))
	}
	purged := e.purge(t)
	e.settleJobs(t, jobsBefore)
	t.Logf("purged %d queued messages of the load", purged)
	fmt.Printf("e2e: rollout_requests=%d rollout_failures=%d\n", len(accepted)+len(failures), len(failures))
	t.Logf("rolling upgrade in %s under load: %d accepted, %d failed", d.Round(100*time.Millisecond), len(accepted), len(failures))
}

// pendingJobsOutwaitTheOldDeadline: with the node cordoned, three messages get their Jobs but
// the pods cannot be scheduled; held there for 100 s (past the old deadline of work + 60 s = 80 s,
// which counted pending time), then uncordoned, every Job succeeds and each message is stored
// once: activeDeadlineSeconds is sized for waiting, the processor bounds its own run.
func (e *env) pendingJobsOutwaitTheOldDeadline(t *testing.T) {
	e.needRelease(t)
	nodes, err := e.cs.CoreV1().Nodes().List(e.ctx, metav1.ListOptions{})
	must(t, err)
	if len(nodes.Items) != 1 {
		t.Fatalf("want the single node of up, got %d nodes", len(nodes.Items))
	}
	node := nodes.Items[0].Name
	cordon := func(on bool) error {
		patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
		_, err := e.cs.CoreV1().Nodes().Patch(context.Background(), node, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	must(t, cordon(true))
	t.Cleanup(func() { _ = cordon(false) })
	before := e.jobNames(t)
	var ids []string
	for i := 1; i <= 3; i++ {
		ids = append(ids, e.send(t, fmt.Sprintf("pending-%d", i)))
	}
	e.eventually("3 Jobs whose pods cannot be scheduled", 2*time.Minute, func() (bool, error) {
		pods, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{LabelSelector: "job-name"})
		if err != nil {
			return false, err
		}
		pending := 0
		for _, p := range pods.Items {
			if _, old := before[p.Labels["job-name"]]; !old && p.Status.Phase == corev1.PodPending {
				pending++
			}
		}
		return pending >= 3, fmt.Errorf("%d pending pods", pending)
	})
	const hold = 100 * time.Second
	t.Logf("holding the Jobs pending for %s (the old deadline was WORK_DURATION + 60 s = 80 s)", hold)
	time.Sleep(hold)
	must(t, cordon(false))
	e.waitRecords(t, ids, 3*time.Minute)
	jobs := e.settleJobs(t, before)
	e.checkJobs(t, jobs, len(ids))
	for _, j := range jobs {
		for _, c := range j.Status.Conditions {
			if c.Reason == "DeadlineExceeded" {
				t.Errorf("Job %s: DeadlineExceeded after waiting", j.Name)
			}
		}
	}
	fmt.Printf("e2e: pending_held_s=%.0f pending_jobs=%d records=%d\n", hold.Seconds(), len(jobs), len(ids))
}

// poisonMessageDeadLettered: a message that is not JSON is dead-lettered by one Job, and the Job
// count then stays flat for three polling intervals with the work queue empty.
func (e *env) poisonMessageDeadLettered(t *testing.T) {
	e.needRelease(t)
	conn, err := amqp.Dial(e.amqpURL)
	must(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	must(t, err)
	dlq := queue + ".dead-letter"
	q0, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil)
	must(t, err)
	before := e.jobNames(t)
	must(t, ch.PublishWithContext(e.ctx, "", queue, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: "poison-1",
		Body: []byte(`{"name": 42, this is not JSON`),
	}))
	e.eventually("the poison message in "+dlq, 2*time.Minute, func() (bool, error) {
		q, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil)
		return err == nil && q.Messages == q0.Messages+1, err
	})
	jobs := e.settleJobs(t, before)
	if len(jobs) != 1 {
		t.Errorf("%d Jobs for one poison message; want 1", len(jobs))
	}
	for _, j := range jobs {
		if o := e.outcomes(t, j); !contains(o, "dead-lettered-invalid") {
			t.Errorf("Job %s outcomes %v; want dead-lettered-invalid", j.Name, o)
		}
	}
	n0 := len(e.jobNames(t))
	time.Sleep(time.Duration(3*pollingInterval)*time.Second + 2*time.Second)
	if n1 := len(e.jobNames(t)); n1 != n0 {
		t.Errorf("Job count went from %d to %d over three polling intervals after the poison message", n0, n1)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	must(t, err)
	if q.Messages != 0 {
		t.Errorf("%d messages left in %s", q.Messages, queue)
	}
	t.Logf("poison message dead-lettered by %d Job; Job count flat at %d over %ds", len(jobs), n0, 3*pollingInterval)
}

// uninstallLeavesNothing: helm uninstall --wait leaves no object of the release.
func (e *env) uninstallLeavesNothing(t *testing.T) {
	e.needRelease(t)
	un := action.NewUninstall(e.helm)
	un.Wait, un.Timeout = true, 3*time.Minute
	start := time.Now()
	_, err := un.Run(relName)
	must(t, err)
	e.installed, e.appURL = false, ""
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + relName}
	var left []string
	e.eventually("no object of the release left", 2*time.Minute, func() (bool, error) {
		left = left[:0]
		add := func(kind string, names ...string) {
			for _, n := range names {
				left = append(left, kind+"/"+n)
			}
		}
		c := e.cs
		if l, err := c.CoreV1().Pods(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("Pod", o.Name)
			}
		}
		if l, err := c.BatchV1().Jobs(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("Job", o.Name)
			}
		}
		if l, err := c.AppsV1().Deployments(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("Deployment", o.Name)
			}
		}
		if l, err := c.AppsV1().ReplicaSets(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("ReplicaSet", o.Name)
			}
		}
		if l, err := c.CoreV1().Services(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("Service", o.Name)
			}
		}
		if l, err := c.CoreV1().Secrets(namespace).List(e.ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				if o.Labels["app.kubernetes.io/instance"] == relName || o.Labels["owner"] == "helm" {
					add("Secret", o.Name)
				}
			}
		}
		if l, err := c.CoreV1().ConfigMaps(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("ConfigMap", o.Name)
			}
		}
		if l, err := c.CoreV1().ServiceAccounts(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("ServiceAccount", o.Name)
			}
		}
		if l, err := c.PolicyV1().PodDisruptionBudgets(namespace).List(e.ctx, sel); err == nil {
			for _, o := range l.Items {
				add("PodDisruptionBudget", o.Name)
			}
		}
		for kind, gvr := range map[string]schema.GroupVersionResource{"ScaledJob": scaledJobs, "TriggerAuthentication": triggerAut} {
			if l, err := e.dyn.Resource(gvr).Namespace(namespace).List(e.ctx, metav1.ListOptions{}); err == nil {
				for _, o := range l.Items {
					add(kind, o.GetName())
				}
			}
		}
		return len(left) == 0, fmt.Errorf("left: %v", left)
	})
	t.Logf("helm uninstall: nothing of the release left after %s", time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------- helpers

// send posts one message (content "e2e <name>") until it gets its 202, for up to 30 s, and
// returns its id.
func (e *env) send(t *testing.T, name string) string {
	var id string
	e.eventually("POST /send "+name, 30*time.Second, func() (ok bool, err error) {
		id, err = e.post(name, "e2e "+name, "")
		return err == nil, err
	})
	return id
}

// post is one POST /send (bounded: 15 s) with an Idempotency-Key unless key is empty (a retry
// after an unknown outcome then stores the message once, and Go's transport may replay it); it
// returns the id of a 202 and an error naming the status and body of anything else.
func (e *env) post(name, content, key string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, e.appURL+"/send?"+url.Values{"name": {name}, "content": {content}}.Encode(), nil)
	if err != nil {
		return "", err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := postClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST /send %s: %s: %s", name, resp.Status, body)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
		return "", fmt.Errorf("POST /send %s: 202 without an id: %s", name, body)
	}
	return r.ID, nil
}

var postClient = &http.Client{Timeout: 15 * time.Second}

// load runs `clients` senders, each calling send(client, i) for i = 0, 1, … with a pause of
// `every` after each call, until stop is closed; the returned func waits for them to end.
func load(stop <-chan struct{}, clients int, every time.Duration, send func(client, i int)) (wait func()) {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				send(c, i)
				time.Sleep(every)
			}
		}()
	}
	return wg.Wait
}

// waitRecords waits until every id is in GET /data and returns when that was first seen.
func (e *env) waitRecords(t *testing.T, ids []string, timeout time.Duration) time.Time {
	var missing []string
	e.eventually(fmt.Sprintf("%d records in GET /data", len(ids)), timeout, func() (bool, error) {
		resp, err := http.Get(e.appURL + "/data?limit=1000")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var recs []struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
			return false, err
		}
		have := map[string]bool{}
		for _, r := range recs {
			have[r.ID] = true
		}
		missing = missing[:0]
		for _, id := range ids {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0, fmt.Errorf("missing %v", missing)
	})
	return time.Now()
}

func (e *env) jobNames(t *testing.T) map[string]bool {
	l, err := e.cs.BatchV1().Jobs(namespace).List(e.ctx, metav1.ListOptions{})
	must(t, err)
	m := map[string]bool{}
	for _, j := range l.Items {
		m[j.Name] = true
	}
	return m
}

func jobFinished(j *batchv1.Job) (done, ok bool) {
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			switch c.Type {
			case batchv1.JobComplete:
				return true, true
			case batchv1.JobFailed:
				return true, false
			}
		}
	}
	return false, false
}

// settleJobs waits until every Job created since `before` has finished and no new Job has
// appeared for three polling intervals; it returns those Jobs.
func (e *env) settleJobs(t *testing.T, before map[string]bool) []batchv1.Job {
	var jobs []batchv1.Job
	lastNew, count := time.Now(), 0
	e.eventually("new Jobs finished and no more created", 5*time.Minute, func() (bool, error) {
		l, err := e.cs.BatchV1().Jobs(namespace).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		jobs = jobs[:0]
		unfinished := 0
		for _, j := range l.Items {
			if before[j.Name] {
				continue
			}
			jobs = append(jobs, j)
			if done, _ := jobFinished(&j); !done {
				unfinished++
			}
		}
		if len(jobs) != count {
			count, lastNew = len(jobs), time.Now()
		}
		return unfinished == 0 && time.Since(lastNew) > time.Duration(3*pollingInterval)*time.Second, fmt.Errorf("%d new Jobs, %d unfinished", len(jobs), unfinished)
	})
	sort.Slice(jobs, func(i, k int) bool { return jobs[i].CreationTimestamp.Before(&jobs[k].CreationTimestamp) })
	return jobs
}

// checkJobs: at least `messages` Jobs, every one succeeded, exactly `messages` stored a record
// and every other one ended with "queue empty". Returns the number of surplus Jobs.
func (e *env) checkJobs(t *testing.T, jobs []batchv1.Job, messages int) int {
	t.Helper()
	if len(jobs) < messages {
		t.Errorf("%d Jobs for %d messages", len(jobs), messages)
	}
	stored, empty := 0, 0
	for i := range jobs {
		j := &jobs[i]
		if _, ok := jobFinished(j); !ok {
			t.Errorf("Job %s did not succeed: %+v", j.Name, j.Status)
		}
		o := e.outcomes(t, *j)
		switch {
		case contains(o, "stored"):
			stored++
		case contains(o, "queue-empty"):
			empty++
		default:
			t.Errorf("Job %s: outcomes %v", j.Name, o)
		}
	}
	if stored != messages {
		t.Errorf("%d Jobs stored a record; want %d", stored, messages)
	}
	if stored+empty != len(jobs) {
		t.Errorf("%d stored + %d queue-empty != %d Jobs", stored, empty, len(jobs))
	}
	return empty
}

// outcomes reads the processor's one-line result ("outcome" field) from the Job's pods' logs.
func (e *env) outcomes(t *testing.T, j batchv1.Job) []string {
	var out []string
	for _, l := range e.results(t, j) {
		out = append(out, l.Outcome)
	}
	return out
}

// result is the processor's one-line result of a run, as its log says it.
type result struct {
	Outcome   string
	MessageID string `json:"message_id"`
}

// results reads the processor's result lines from the logs of the Job's pods.
func (e *env) results(t *testing.T, j batchv1.Job) []result {
	pods, err := e.cs.CoreV1().Pods(namespace).List(e.ctx, metav1.ListOptions{LabelSelector: "job-name=" + j.Name})
	must(t, err)
	var out []result
	for _, p := range pods.Items {
		b, err := e.cs.CoreV1().Pods(namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "processor"}).DoRaw(e.ctx)
		if err != nil {
			out = append(out, result{Outcome: "logs-unavailable: " + err.Error()})
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var l result
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Outcome != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (e *env) tt() *testing.T {
	if e.cur != nil {
		return e.cur
	}
	return e.t
}

func (e *env) eventually(what string, timeout time.Duration, f func() (bool, error)) {
	e.tt().Helper()
	e.eventuallyEvery(what, timeout, 250*time.Millisecond, f)
}

// eventuallyEvery is eventually, asking every `every`.
func (e *env) eventuallyEvery(what string, timeout, every time.Duration, f func() (bool, error)) {
	t := e.tt()
	t.Helper()
	end := time.Now().Add(timeout)
	var last error
	for {
		ok, err := f()
		if ok {
			return
		}
		last = err
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s (last: %v)", what, timeout, last)
		}
		time.Sleep(every)
	}
}

// dumpState logs what helps to see why a step failed.
func (e *env) dumpState() {
	t := e.t
	pods, err := e.cs.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			t.Logf("pod %s: %s ready=%v", p.Name, p.Status.Phase, podReady(&p))
		}
	}
	evs, err := e.cs.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, ev := range evs.Items {
			if ev.Type != corev1.EventTypeNormal {
				t.Logf("event %s %s: %s", ev.InvolvedObject.Name, ev.Reason, ev.Message)
			}
		}
	}
	t.Logf("logs of the cluster's processes: %s/logs", runDir)
}
