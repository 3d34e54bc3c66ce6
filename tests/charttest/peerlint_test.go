package charttest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// What kube-linter, Polaris and kubeconform found on the rendered chart, one test per finding.

// TestPDBLetsUnhealthyPodsGo: an app pod that is not Ready never blocks a node drain
// (policy/v1 unhealthyPodEvictionPolicy, GA in Kubernetes 1.31).
func TestPDBLetsUnhealthyPodsGo(t *testing.T) {
	for _, files := range [][]string{nil, {profileFile("production")}} {
		var pdb policyv1.PodDisruptionBudget
		if err := decodeStrict(mustRender(t, values(t, files)).one(t, "PodDisruptionBudget"), &pdb); err != nil {
			t.Fatal(err)
		}
		if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
			t.Errorf("%v: unhealthyPodEvictionPolicy %v, want AlwaysAllow", files, p)
		}
	}
}

// TestPodFailurePolicyConditionStatus: every onPodConditions pattern names the status it matches
// (the API defaults it to True; linters and strict schemas want it written).
func TestPodFailurePolicyConditionStatus(t *testing.T) {
	b, err := yaml.Marshal(get(mustRender(t, values(t, nil)).one(t, "ScaledJob").obj, "spec", "jobTargetRef"))
	if err != nil {
		t.Fatal(err)
	}
	var spec batchv1.JobSpec
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatalf("jobTargetRef: %v", err)
	}
	n := 0
	for _, rule := range spec.PodFailurePolicy.Rules {
		for _, p := range rule.OnPodConditions {
			n++
			if p.Status != corev1.ConditionTrue {
				t.Errorf("podFailurePolicy rule %s on %s: status %q, want True", rule.Action, p.Type, p.Status)
			}
		}
	}
	if n == 0 {
		t.Fatal("no onPodConditions rule: the DisruptionTarget rule is gone")
	}
}

// TestPriorityClassNames: the app, the processor Jobs and the helm test pod each take a
// priorityClassName, none by default; a name that cannot be a PriorityClass fails the schema.
func TestPriorityClassNames(t *testing.T) {
	for _, p := range ourPods(t, mustRender(t, values(t, nil))) {
		if p.spec.PriorityClassName != "" {
			t.Errorf("%s: priorityClassName %q by default", p.where, p.spec.PriorityClassName)
		}
	}
	r := mustRender(t, values(t, nil, "app.priorityClassName=web-critical", "processor.job.priorityClassName=batch-low", "tests.priorityClassName=ci"))
	want := map[string]string{
		"Deployment " + releaseName + "-app":      "web-critical",
		"ScaledJob " + releaseName + "-processor": "batch-low",
		"Pod " + releaseName + "-smoke-test":      "ci",
	}
	for _, p := range ourPods(t, r) {
		if w, ok := want[p.where]; !ok || p.spec.PriorityClassName != w {
			t.Errorf("%s: priorityClassName %q, want %q", p.where, p.spec.PriorityClassName, w)
		}
		delete(want, p.where)
	}
	if len(want) > 0 {
		t.Errorf("pods not rendered: %v", want)
	}
	for _, set := range []string{"app.priorityClassName=Web_Critical", "processor.job.priorityClassName=-low", "tests.priorityClassName=a b"} {
		if _, err := render(t, values(t, nil, set)); err == nil || !strings.Contains(err.Error(), "priorityClassName") {
			t.Errorf("%s: %v, want a schema error naming priorityClassName", set, err)
		}
	}
}

// TestNetworkPolicyAdmitsHelmTest: with app.networkPolicy.from set, the chart's own helm test pod
// still reaches the app (and only it, of the release's pods, is added); without from every
// source is admitted, as before.
func TestNetworkPolicyAdmitsHelmTest(t *testing.T) {
	policy := func(r rendered) networkingv1.NetworkPolicy {
		var np networkingv1.NetworkPolicy
		if err := decodeStrict(r.one(t, "NetworkPolicy"), &np); err != nil {
			t.Fatal(err)
		}
		if len(np.Spec.Ingress) != 1 {
			t.Fatalf("%d ingress rules, want 1", len(np.Spec.Ingress))
		}
		return np
	}
	open := policy(mustRender(t, values(t, nil, "app.networkPolicy.enabled=true")))
	if from := open.Spec.Ingress[0].From; len(from) != 0 {
		t.Errorf("from is empty in values but the policy admits only %v", from)
	}

	r := mustRender(t, values(t, nil, "app.networkPolicy.enabled=true", "app.networkPolicy.from[0].namespaceSelector.matchLabels.team=web"))
	from := policy(r).Spec.Ingress[0].From
	var test, app podOf
	for _, p := range ourPods(t, r) {
		switch p.where {
		case "Pod " + releaseName + "-smoke-test":
			test = p
		case "Deployment " + releaseName + "-app":
			app = p
		}
	}
	var userKept, testAdmitted bool
	for _, peer := range from {
		if peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels["team"] == "web" {
			userKept = true
		}
		if peer.NamespaceSelector != nil || peer.IPBlock != nil || peer.PodSelector == nil {
			continue // not a same-namespace pod peer
		}
		sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matches(labels.Set(test.meta.Labels)) {
			testAdmitted = true
		}
		if sel.Matches(labels.Set(app.meta.Labels)) {
			t.Errorf("the added peer %v selects the app's own pods too", peer.PodSelector)
		}
		other := labels.Set{}
		for k, v := range test.meta.Labels {
			other[k] = v
		}
		other["app.kubernetes.io/instance"] = "other"
		if sel.Matches(other) {
			t.Errorf("the added peer %v admits another release's test pod", peer.PodSelector)
		}
	}
	if !userKept {
		t.Errorf("the peer from values is gone: %+v", from)
	}
	if !testAdmitted {
		t.Errorf("no peer admits the helm test pod (labels %v): %+v", test.meta.Labels, from)
	}
}

// TestSpreadIsPerRelease: a topology spread constraint without labelSelector selects this
// release's app pods only (name and instance), so two releases in a namespace do not spread
// against each other; one that brings its own selector keeps it.
func TestSpreadIsPerRelease(t *testing.T) {
	deployment := func(r rendered) appsv1.Deployment {
		var d appsv1.Deployment
		if err := decodeStrict(r.one(t, "Deployment"), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := deployment(mustRender(t, values(t, []string{profileFile("production")})))
	tsc := d.Spec.Template.Spec.TopologySpreadConstraints
	if len(tsc) == 0 {
		t.Fatal("the production profile spreads the app over nodes, but no constraint is rendered")
	}
	own := labels.Set(d.Spec.Template.Labels)
	other := labels.Set{}
	for k, v := range own {
		other[k] = v
	}
	other["app.kubernetes.io/instance"] = "other"
	for _, c := range tsc {
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(own) || sel.Matches(other) {
			t.Errorf("spread over %s selects %v: want this release's app pods only", c.TopologyKey, c.LabelSelector)
		}
	}

	d = deployment(mustRender(t, values(t, nil, "app.topologySpreadConstraints[0].maxSkew=1",
		"app.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
		"app.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
		"app.topologySpreadConstraints[0].labelSelector.matchLabels.tier=web")))
	if got := d.Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector; got == nil || len(got.MatchLabels) != 1 || got.MatchLabels["tier"] != "web" {
		t.Errorf("a labelSelector from values became %v", got)
	}
}
