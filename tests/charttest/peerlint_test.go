package charttest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
	var problems problemList
	for _, files := range [][]string{nil, {profileFile("production")}} {
		var pdb policyv1.PodDisruptionBudget
		require.NoError(t, decodeStrict(mustRender(t, values(t, files)).one(t, "PodDisruptionBudget"), &pdb))
		if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil {
			problems.add("%v: no unhealthyPodEvictionPolicy, want AlwaysAllow", files)
		} else if *p != policyv1.AlwaysAllow {
			problems.add("%v: unhealthyPodEvictionPolicy %s, want AlwaysAllow", files, *p)
		}
	}
	require.Empty(t, problems)
}

// TestPodFailurePolicyConditionStatus: every onPodConditions pattern names the status it matches
// (the API defaults it to True; linters and strict schemas want it written).
func TestPodFailurePolicyConditionStatus(t *testing.T) {
	b, err := yaml.Marshal(get(mustRender(t, values(t, nil)).one(t, "ScaledJob").obj, "spec", "jobTargetRef"))
	require.NoError(t, err)
	var spec batchv1.JobSpec
	require.NoError(t, yaml.UnmarshalStrict(b, &spec), "jobTargetRef")
	var problems problemList
	n := 0
	for _, rule := range spec.PodFailurePolicy.Rules {
		for _, p := range rule.OnPodConditions {
			n++
			if p.Status != corev1.ConditionTrue {
				problems.add("podFailurePolicy rule %s on %s: status %q, want True", rule.Action, p.Type, p.Status)
			}
		}
	}
	require.NotZero(t, n, "no onPodConditions rule: the DisruptionTarget rule is gone")
	require.Empty(t, problems)
}

// TestPriorityClassNames: the app, the processor Jobs and the helm test pod each take a
// priorityClassName, none by default; a name that cannot be a PriorityClass fails the schema.
func TestPriorityClassNames(t *testing.T) {
	var problems problemList
	for _, p := range ourPods(t, mustRender(t, values(t, nil))) {
		if p.spec.PriorityClassName != "" {
			problems.add("%s: priorityClassName %q by default", p.where, p.spec.PriorityClassName)
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
			problems.add("%s: priorityClassName %q, want %q", p.where, p.spec.PriorityClassName, w)
		}
		delete(want, p.where)
	}
	if len(want) > 0 {
		problems.add("pods not rendered: %v", want)
	}
	for _, set := range []string{"app.priorityClassName=Web_Critical", "processor.job.priorityClassName=-low", "tests.priorityClassName=a b"} {
		if _, err := render(t, values(t, nil, set)); err == nil || !strings.Contains(err.Error(), "priorityClassName") {
			problems.add("%s: %v, want a schema error naming priorityClassName", set, err)
		}
	}
	require.Empty(t, problems)
}

// TestNetworkPolicyAdmitsHelmTest: with app.networkPolicy.from set, the chart's own helm test pod
// still reaches the app (and only it, of the release's pods, is added); without from every
// source is admitted, as before.
func TestNetworkPolicyAdmitsHelmTest(t *testing.T) {
	policy := func(r rendered) networkingv1.NetworkPolicy {
		var np networkingv1.NetworkPolicy
		require.NoError(t, decodeStrict(r.one(t, "NetworkPolicy"), &np))
		require.Len(t, np.Spec.Ingress, 1, "ingress rules")
		return np
	}
	open := policy(mustRender(t, values(t, nil, "app.networkPolicy.enabled=true")))
	require.Empty(t, open.Spec.Ingress[0].From, "from is empty in values but the policy admits only these")

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
	var problems problemList
	var userKept, testAdmitted bool
	for _, peer := range from {
		if peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels["team"] == "web" {
			userKept = true
		}
		if peer.NamespaceSelector != nil || peer.IPBlock != nil || peer.PodSelector == nil {
			continue // not a same-namespace pod peer
		}
		sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
		require.NoError(t, err)
		if sel.Matches(labels.Set(test.meta.Labels)) {
			testAdmitted = true
		}
		if sel.Matches(labels.Set(app.meta.Labels)) {
			problems.add("the added peer %v selects the app's own pods too", peer.PodSelector)
		}
		other := labels.Set{}
		for k, v := range test.meta.Labels {
			other[k] = v
		}
		other["app.kubernetes.io/instance"] = "other"
		if sel.Matches(other) {
			problems.add("the added peer %v admits another release's test pod", peer.PodSelector)
		}
	}
	if !userKept {
		problems.add("the peer from values is gone: %+v", from)
	}
	if !testAdmitted {
		problems.add("no peer admits the helm test pod (labels %v): %+v", test.meta.Labels, from)
	}
	require.Empty(t, problems)
}

// TestSpreadIsPerRelease: a topology spread constraint without labelSelector selects this
// release's app pods only (name and instance), so two releases in a namespace do not spread
// against each other; one that brings its own selector keeps it.
func TestSpreadIsPerRelease(t *testing.T) {
	deployment := func(r rendered) appsv1.Deployment {
		var d appsv1.Deployment
		require.NoError(t, decodeStrict(r.one(t, "Deployment"), &d))
		return d
	}
	d := deployment(mustRender(t, values(t, []string{profileFile("production")})))
	tsc := d.Spec.Template.Spec.TopologySpreadConstraints
	require.NotEmpty(t, tsc, "the production profile spreads the app over nodes, but no constraint is rendered")
	own := labels.Set(d.Spec.Template.Labels)
	other := labels.Set{}
	for k, v := range own {
		other[k] = v
	}
	other["app.kubernetes.io/instance"] = "other"
	var problems problemList
	for _, c := range tsc {
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		require.NoError(t, err, c.TopologyKey)
		if !sel.Matches(own) || sel.Matches(other) {
			problems.add("spread over %s selects %v: want this release's app pods only", c.TopologyKey, c.LabelSelector)
		}
	}
	require.Empty(t, problems)

	d = deployment(mustRender(t, values(t, nil, "app.topologySpreadConstraints[0].maxSkew=1",
		"app.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
		"app.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
		"app.topologySpreadConstraints[0].labelSelector.matchLabels.tier=web")))
	got := d.Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector
	require.NotNil(t, got, "a labelSelector from values is gone")
	require.Equal(t, map[string]string{"tier": "web"}, got.MatchLabels, "a labelSelector from values")
}
