package charttest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/labels"
)

// ownDocs are every object the release renders besides the bitnami charts' (hooks included):
// what the chart's labels and global.kedaDemo.commonLabels must reach.
func ownDocs(r rendered) []doc {
	var out []doc
	for _, d := range r.docs {
		if !d.fromBitnami() {
			out = append(out, d)
		}
	}
	return out
}

// selectorsOf returns the label selectors (as match-labels maps) of a rendered object of ours,
// each described by where it is.
func selectorsOf(d doc) map[string]any {
	out := map[string]any{}
	add := func(where string, v any) {
		if v != nil {
			out[where] = v
		}
	}
	switch d.obj["kind"] {
	case "Deployment":
		add("spec.selector.matchLabels", get(d.obj, "spec", "selector", "matchLabels"))
		tsc, _ := get(d.obj, "spec", "template", "spec", "topologySpreadConstraints").([]any)
		for i := range tsc {
			add(fmt.Sprintf("topologySpreadConstraints[%d]", i), get(tsc, i, "labelSelector", "matchLabels"))
		}
	case "Service":
		add("spec.selector", get(d.obj, "spec", "selector"))
	case "PodDisruptionBudget", "ServiceMonitor":
		add("spec.selector.matchLabels", get(d.obj, "spec", "selector", "matchLabels"))
	case "NetworkPolicy":
		add("spec.podSelector.matchLabels", get(d.obj, "spec", "podSelector", "matchLabels"))
		for _, rule := range asList(get(d.obj, "spec", "ingress")) {
			for j, peer := range asList(get(rule, "from")) {
				add(fmt.Sprintf("from[%d].podSelector.matchLabels", j), get(peer, "podSelector", "matchLabels"))
			}
		}
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

// TestNameLabels: app.kubernetes.io/name says whose an object is across the whole cluster
// (keda-demo-app, keda-demo-processor, as kube-state-metrics or keda-operator do), the
// component stays app / processor, and every selector of ours selects name and instance.
func TestNameLabels(t *testing.T) {
	r := mustRender(t, values(t, []string{profileFile("production")},
		"app.ingress.enabled=true", "app.networkPolicy.enabled=true", "app.networkPolicy.from[0].namespaceSelector.matchLabels.team=web",
		"app.serviceMonitor.enabled=true", "app.grafanaDashboard.enabled=true", "app.prometheusRule.enabled=true",
		"global.kedaDemo.registryCredentials.create=true", "global.kedaDemo.registryCredentials.registry=r.example.com",
		"global.kedaDemo.registryCredentials.username=u", "global.kedaDemo.registryCredentials.password=p"))
	var problems problemList
	seen := map[string]bool{}
	for _, d := range ownDocs(r) {
		where := fmt.Sprintf("%s %s", d.obj["kind"], str(get(d.obj, "metadata", "name")))
		l := func(k string) string { return str(get(d.obj, "metadata", "labels", k)) }
		component := l("app.kubernetes.io/component")
		if component == "" || l("app.kubernetes.io/part-of") != "keda-demo" {
			problems.add("%s: component %q, part-of %q", where, component, l("app.kubernetes.io/part-of"))
			continue
		}
		if got, want := l("app.kubernetes.io/name"), "keda-demo-"+component; got != want {
			problems.add("%s: app.kubernetes.io/name %q, want %q", where, got, want)
		}
		seen[component] = true
		for sw, sel := range selectorsOf(d) {
			m, _ := sel.(map[string]any)
			if strings.HasPrefix(sw, "from[") && len(m) == 0 {
				continue // a peer of values (namespaceSelector)
			}
			name := str(m["app.kubernetes.io/name"])
			if !strings.HasPrefix(name, "keda-demo-") || str(m["app.kubernetes.io/instance"]) != releaseName || len(m) != 2 {
				problems.add("%s %s: %v, want app.kubernetes.io/name=keda-demo-<component> and instance=%s only", where, sw, m, releaseName)
			}
		}
	}
	for _, c := range []string{"app", "processor", "smoke-test", "registry"} {
		if !seen[c] {
			problems.add("no object of component %s", c)
		}
	}
	require.Empty(t, problems)
	d := r.one(t, "Deployment")
	check := func(got any, want map[string]any, what string) {
		t.Helper()
		require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), what)
	}
	appSel := map[string]any{"app.kubernetes.io/name": "keda-demo-app", "app.kubernetes.io/instance": releaseName}
	check(get(d.obj, "spec", "selector", "matchLabels"), appSel, "Deployment selector")
	check(get(r.one(t, "Service").obj, "spec", "selector"), appSel, "Service selector")
	check(get(r.one(t, "PodDisruptionBudget").obj, "spec", "selector", "matchLabels"), appSel, "PDB selector")
	check(get(r.one(t, "NetworkPolicy").obj, "spec", "podSelector", "matchLabels"), appSel, "NetworkPolicy podSelector")
	sj := r.one(t, "ScaledJob")
	require.Equal(t, "keda-demo-processor", str(get(sj.obj, "spec", "jobTargetRef", "template", "metadata", "labels", "app.kubernetes.io/name")),
		"processor pods: app.kubernetes.io/name")
}

// TestCommonLabels: global.kedaDemo.commonLabels reach every object of ours and every pod of
// ours, never a selector and never a bitnami object; an object's own extra labels (podLabels,
// serviceMonitor.labels, …) win over them; each labels map keeps unique keys.
func TestCommonLabels(t *testing.T) {
	r := mustRender(t, values(t, []string{profileFile("production")},
		"global.kedaDemo.commonLabels.team=payments", `global.kedaDemo.commonLabels.example\.com/cost-center=cc-1`,
		"app.podLabels.team=web", "processor.job.podLabels.tier=batch", "app.serviceMonitor.labels.release=prom",
		"app.ingress.enabled=true", "app.networkPolicy.enabled=true", "app.networkPolicy.from[0].namespaceSelector.matchLabels.team=web",
		"app.serviceMonitor.enabled=true", "app.grafanaDashboard.enabled=true", "app.prometheusRule.enabled=true",
		"global.kedaDemo.registryCredentials.create=true", "global.kedaDemo.registryCredentials.registry=r.example.com",
		"global.kedaDemo.registryCredentials.username=u", "global.kedaDemo.registryCredentials.password=p"))
	own := ownDocs(r)
	require.GreaterOrEqualf(t, len(own), 15, "only %d objects of ours", len(own))
	sm := r.one(t, "ServiceMonitor")
	require.Equalf(t, "prom", str(get(sm.obj, "metadata", "labels", "release")), "ServiceMonitor lost its own labels: %v", get(sm.obj, "metadata", "labels"))
	pods := ourPods(t, r)
	require.GreaterOrEqualf(t, len(pods), 3, "only %d pods of ours", len(pods))
	bd := r.bitnamiDocs()
	if bitnamiArchivesPresent() {
		require.NotEmpty(t, bd, "no bitnami objects rendered")
	}
	var problems problemList
	for _, d := range own {
		where := fmt.Sprintf("%s %s", d.obj["kind"], str(get(d.obj, "metadata", "name")))
		var strict map[string]any
		if err := yaml.Unmarshal([]byte(d.text), &strict); err != nil {
			problems.add("%s: %v", where, err) // a label key written twice
		}
		lbl := labels.Set{}
		for k, v := range get(d.obj, "metadata", "labels").(map[string]any) {
			lbl[k] = str(v)
		}
		if lbl["team"] != "payments" || lbl["example.com/cost-center"] != "cc-1" {
			problems.add("%s: labels %v lack the commonLabels", where, lbl)
		}
		for sw, sel := range selectorsOf(d) {
			m, _ := sel.(map[string]any)
			if _, ok := m["example.com/cost-center"]; ok || (m["team"] != nil && !strings.HasPrefix(sw, "from[")) {
				problems.add("%s %s selects by a commonLabel: %v", where, sw, m)
			}
		}
	}
	for _, p := range pods {
		want := "payments"
		if strings.HasPrefix(p.where, "Deployment ") {
			want = "web" // app.podLabels over commonLabels
		}
		if p.meta.Labels["team"] != want || p.meta.Labels["example.com/cost-center"] != "cc-1" {
			problems.add("%s: pod labels %v, want team=%s and the cost-center", p.where, p.meta.Labels, want)
		}
		if strings.HasPrefix(p.where, "ScaledJob ") && p.meta.Labels["tier"] != "batch" {
			problems.add("%s: processor.job.podLabels lost: %v", p.where, p.meta.Labels)
		}
	}
	for _, d := range bd {
		if get(d.obj, "metadata", "labels", "team") != nil {
			problems.add("bitnami %s %s got our commonLabels", d.obj["kind"], get(d.obj, "metadata", "name"))
		}
	}
	require.Empty(t, problems)
}
