// Command release installs or upgrades the chart on the local cluster for `task up`, with the
// Helm SDK (the helm CLI refuses a chart whose bitnami dependencies are missing from charts/, even
// when they are disabled), waits until every pod and the ScaledJob are Ready, and prints the app
// Service's ClusterIP:port on stdout. A kept release whose Deployment selector the chart now
// renders differently (immutable, so an upgrade would fail) is uninstalled and installed anew.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	"helm.sh/helm/v3/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var o opts
	flag.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	flag.StringVar(&o.namespace, "namespace", "keda-demo", "namespace of the release (created if missing)")
	flag.StringVar(&o.release, "release", "keda-demo", "release name")
	flag.StringVar(&o.chart, "chart", ".", "chart directory")
	flag.Var(&o.files, "f", "values file (repeatable)")
	flag.Var(&o.sets, "set", "value as key=value (repeatable)")
	flag.Var(&o.secrets, "secret", "Secret to create or update first, as name/key=value (repeatable; the value may be read from a file with name/key=@path)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound of the install or upgrade, and of the wait for Ready")
	flag.Parse()
	addr, err := o.run(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	fmt.Println(addr)
}

type opts struct {
	kubeconfig, namespace, release, chart string
	files, sets, secrets                  multi
	timeout                               time.Duration
}

var scaledJobs = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledjobs"}

func (o opts) run(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout+time.Minute)
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return "", fmt.Errorf("kubeconfig %s: %w", o.kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	if err := o.ensureNamespace(ctx, cs); err != nil {
		return "", err
	}
	for _, s := range o.secrets {
		if err := o.applySecret(ctx, cs, s); err != nil {
			return "", err
		}
	}

	vals := map[string]any{}
	for _, f := range o.files {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return "", fmt.Errorf("values file %s: %w", f, err)
		}
		vals = chartutil.CoalesceTables(v.AsMap(), vals)
	}
	for _, s := range o.sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return "", fmt.Errorf("--set %s: %w", s, err)
		}
	}
	ch, err := loader.Load(o.chart)
	if err != nil {
		return "", fmt.Errorf("load chart %s: %w", o.chart, err)
	}

	ns := o.namespace
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &o.kubeconfig, &ns
	helm := new(action.Configuration)
	if err := helm.Init(flags, ns, "secret", func(string, ...any) {}); err != nil {
		return "", err
	}
	start := time.Now()
	verb := "upgraded"
	if _, err := action.NewHistory(helm).Run(o.release); errors.Is(err, driver.ErrReleaseNotFound) {
		verb = "installed"
		in := action.NewInstall(helm)
		in.ReleaseName, in.Namespace, in.Wait, in.Timeout = o.release, ns, true, o.timeout
		_, err = in.RunWithContext(ctx, ch, vals)
		if err != nil {
			return "", fmt.Errorf("helm install %s: %w", o.release, err)
		}
	} else if err != nil {
		return "", fmt.Errorf("release history %s: %w", o.release, err)
	} else {
		// A kept state (`task down` then `task up`) may hold a release whose Deployment selector
		// this chart renders differently (0.1.0 renamed app.kubernetes.io/name app ->
		// keda-demo-app): a selector is immutable, so the upgrade would fail; reinstall instead.
		changed, err := o.selectorChange(ctx, cs, helm, vals)
		if err != nil {
			return "", err
		}
		if changed != "" {
			fmt.Fprintf(os.Stderr, "release: %s; a Deployment's selector is immutable, so %s is uninstalled and installed anew\n", changed, o.release)
			un := action.NewUninstall(helm)
			// Foreground: the old pods are gone before the new release starts its own.
			un.Wait, un.Timeout, un.DeletionPropagation = true, o.timeout, "foreground"
			if _, err := un.Run(o.release); err != nil {
				return "", fmt.Errorf("helm uninstall %s: %w", o.release, err)
			}
			verb = "reinstalled"
			in := action.NewInstall(helm)
			in.ReleaseName, in.Namespace, in.Wait, in.Timeout = o.release, ns, true, o.timeout
			if _, err := in.RunWithContext(ctx, ch, vals); err != nil {
				return "", fmt.Errorf("helm install %s: %w", o.release, err)
			}
		} else {
			up := action.NewUpgrade(helm)
			up.Namespace, up.Wait, up.Timeout = ns, true, o.timeout
			if _, err := up.RunWithContext(ctx, o.release, ch, vals); err != nil {
				return "", fmt.Errorf("helm upgrade %s: %w", o.release, err)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "release: %s %s in %s\n", verb, o.release, time.Since(start).Round(100*time.Millisecond))
	if err := waitScaledJobReady(ctx, dynamic.NewForConfigOrDie(cfg), ns, o.release); err != nil {
		return "", err
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, o.release+"-app", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("app Service: %w", err)
	}
	return fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port), nil
}

// selectorChange renders the upgrade (a server-side dry run: nothing changes) and compares each
// rendered Deployment's spec.selector with the one in the cluster; it describes the first that
// differs, or returns "" when none does (or the Deployment does not exist yet).
func (o opts) selectorChange(ctx context.Context, cs kubernetes.Interface, helm *action.Configuration, vals map[string]any) (string, error) {
	// A chart of its own: an upgrade run prunes the disabled subcharts from the one it is given.
	ch, err := loader.Load(o.chart)
	if err != nil {
		return "", fmt.Errorf("load chart %s: %w", o.chart, err)
	}
	dry := action.NewUpgrade(helm)
	dry.Namespace, dry.DryRun, dry.DryRunOption = o.namespace, true, "server"
	rel, err := dry.RunWithContext(ctx, o.release, ch, vals)
	if err != nil {
		return "", fmt.Errorf("helm upgrade --dry-run=server %s: %w", o.release, err)
	}
	for _, m := range releaseutil.SplitManifests(rel.Manifest) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(m), &tm); err != nil || tm.Kind != "Deployment" || tm.APIVersion != "apps/v1" {
			continue
		}
		var want appsv1.Deployment
		if err := yaml.Unmarshal([]byte(m), &want); err != nil {
			return "", fmt.Errorf("rendered Deployment: %w", err)
		}
		ns := want.Namespace
		if ns == "" {
			ns = o.namespace
		}
		have, err := cs.AppsV1().Deployments(ns).Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("Deployment %s/%s: %w", ns, want.Name, err)
		}
		if !apiequality.Semantic.DeepEqual(have.Spec.Selector, want.Spec.Selector) {
			return fmt.Sprintf("Deployment %s/%s's selector changes from %s to %s", ns, want.Name,
				metav1.FormatLabelSelector(have.Spec.Selector), metav1.FormatLabelSelector(want.Spec.Selector)), nil
		}
	}
	return "", nil
}

func (o opts) ensureNamespace(ctx context.Context, cs kubernetes.Interface) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", o.namespace, err)
	}
	return nil
}

// applySecret creates or updates one key of a Secret: name/key=value or name/key=@file.
func (o opts) applySecret(ctx context.Context, cs kubernetes.Interface, spec string) error {
	nk, val, ok := strings.Cut(spec, "=")
	name, key, ok2 := strings.Cut(nk, "/")
	if !ok || !ok2 || name == "" || key == "" {
		return fmt.Errorf("--secret %q: want name/key=value or name/key=@file", nk)
	}
	if strings.HasPrefix(val, "@") {
		b, err := os.ReadFile(val[1:])
		if err != nil {
			return fmt.Errorf("--secret %s/%s: %w", name, key, err)
		}
		val = strings.TrimRight(string(b), "\n")
	}
	api := cs.CoreV1().Secrets(o.namespace)
	s, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{key: val}}, metav1.CreateOptions{})
	case err == nil:
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[key] = []byte(val)
		_, err = api.Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return nil
}

// waitScaledJobReady waits until KEDA reports the release's ScaledJob Ready: only then does a
// message in the queue start a Job.
func waitScaledJobReady(ctx context.Context, dyn dynamic.Interface, ns, release string) error {
	name := release + "-processor"
	var last string
	for {
		sj, err := dyn.Resource(scaledJobs).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(sj.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Ready" {
					if m["status"] == "True" {
						return nil
					}
					last = fmt.Sprintf("Ready=%v: %v", m["status"], m["message"])
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ScaledJob %s/%s not Ready (%s): %w", ns, name, last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
