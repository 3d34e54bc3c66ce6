package charttest

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// processorPod is the pod template of the ScaledJob's Jobs.
func processorPod(t *testing.T, r rendered) podOf {
	t.Helper()
	for _, p := range ourPods(t, r) {
		if p.where == "ScaledJob "+str(get(r.one(t, "ScaledJob").obj, "metadata", "name")) {
			return p
		}
	}
	t.Fatal("no ScaledJob pod template")
	return podOf{}
}

// TestPendingUntilTaken: "pending" for KEDA means "has not taken its message yet". The processor
// container's readiness probe asks GET /taken on the port PROBE_ADDR names (the processor answers
// 200 only once basic.get returned its message), and the ScaledJob counts a Job as pending until
// its pod is Ready: by default, in every ci/ profile and in every render case.
func TestPendingUntilTaken(t *testing.T) {
	for _, c := range renderCases(t) {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, values(t, c.files, c.sets...))
			sj := r.one(t, "ScaledJob").obj
			require.Equal(t, []any{"Ready"}, get(sj, "spec", "scalingStrategy", "pendingPodConditions"))

			p := processorPod(t, r)
			require.Len(t, p.spec.Containers, 1)
			ctr := p.spec.Containers[0]
			_, port, err := net.SplitHostPort(envMap(ctr)["PROBE_ADDR"])
			require.NoError(t, err, "PROBE_ADDR %q", envMap(ctr)["PROBE_ADDR"])
			addrPort, err := strconv.Atoi(port)
			require.NoError(t, err)

			rp := ctr.ReadinessProbe
			require.NotNil(t, rp, "the processor container has no readinessProbe")
			require.NotNil(t, rp.HTTPGet, "an HTTP probe: an exec probe would fork a process per Job per second")
			require.Nil(t, rp.Exec)
			require.Equal(t, "/taken", rp.HTTPGet.Path)
			require.Equal(t, intstr.String, rp.HTTPGet.Port.Type, "a named port")
			var named *corev1.ContainerPort
			for i, cp := range ctr.Ports {
				if cp.Name == rp.HTTPGet.Port.StrVal {
					named = &ctr.Ports[i]
				}
			}
			require.NotNil(t, named, "the probe's port %q is not a port of the container", rp.HTTPGet.Port.StrVal)
			require.Equal(t, int32(addrPort), named.ContainerPort, "the probe asks the port PROBE_ADDR listens on")
			require.Equal(t, corev1.ProtocolTCP, named.Protocol)
			// Ready within a second of the take, and one answer flips it either way.
			require.Equal(t, int32(0), rp.InitialDelaySeconds)
			require.Equal(t, int32(1), rp.PeriodSeconds)
			require.Equal(t, int32(1), rp.SuccessThreshold)
			require.Equal(t, int32(1), rp.FailureThreshold)
			require.Nil(t, ctr.LivenessProbe, "RUN_TIMEOUT ends a hung run; a liveness restart would not (restartPolicy Never)")
			require.False(t, p.spec.HostNetwork, "NetworkPolicies and the probe port assume the pod's own network")
		})
	}
}

// TestPendingPodConditionsSettable: the old meaning ("pending until the pod runs") stays one value
// away, and other conditions pass through.
func TestPendingPodConditionsSettable(t *testing.T) {
	r := mustRender(t, values(t, nil, "processor.keda.scalingStrategy.pendingPodConditions=null"))
	_, set := get(r.one(t, "ScaledJob").obj, "spec", "scalingStrategy").(map[string]any)["pendingPodConditions"]
	require.False(t, set, "null leaves KEDA's own default")
	r = mustRender(t, values(t, nil, "processor.keda.scalingStrategy.pendingPodConditions={PodScheduled,Ready}"))
	require.Equal(t, []any{"PodScheduled", "Ready"}, get(r.one(t, "ScaledJob").obj, "spec", "scalingStrategy", "pendingPodConditions"))
}

// TestNoNetworkPolicyOnTheProcessor: the kubelet's probe comes from the node, which NetworkPolicies
// always admit (kubernetes.io: "traffic to and from the node where a Pod is running is always
// allowed"); still, no policy of the chart's selects the processor's pods at all, in any render case
// or with the app's policy on.
func TestNoNetworkPolicyOnTheProcessor(t *testing.T) {
	cases := append(renderCases(t), renderCase{name: "app NetworkPolicy with peers", sets: []string{
		"app.networkPolicy.enabled=true", "app.networkPolicy.from[0].namespaceSelector.matchLabels.team=web",
	}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, values(t, c.files, c.sets...))
			labels := processorPod(t, r).meta.Labels
			for _, np := range r.kind("NetworkPolicy") {
				sel, _ := get(np.obj, "spec", "podSelector").(map[string]any)
				require.Nil(t, sel["matchExpressions"], "check by hand whether %s selects the processor", np.source)
				match, _ := sel["matchLabels"].(map[string]any)
				selects := true
				for k, v := range match {
					if labels[k] != v {
						selects = false
					}
				}
				require.False(t, selects, "%s selects the processor's pods %v", np.source, labels)
			}
		})
	}
}
