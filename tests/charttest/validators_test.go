package charttest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func docOf(t *testing.T, text string) doc {
	t.Helper()
	obj := map[string]any{}
	require.NoError(t, yaml.Unmarshal([]byte(text), &obj))
	return doc{source: "test", text: text, obj: obj}
}

// TestValidatorsCatchMistakes proves the checks are not vacuous: each catches a typical mistake.
func TestValidatorsCatchMistakes(t *testing.T) {
	sj := kedaSchemas(t)["ScaledJob"]
	bad := docOf(t, `apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: x}
spec:
  pollingInterval: 0
  maxReplicaCount: "10"
  unknownField: 1
  rollout: {strategy: default}
  scalingStrategy: {strategy: fastest}
  jobTargetRef:
    template:
      spec:
        restartPolicy: Never
        containers: [{name: c, image: i, imagePullPolicy: Sometimes, bogus: 1}]
  triggers: []
`)
	var missed problemList
	got := strings.Join(sj.validate(bad), "\n")
	for _, want := range []string{"spec.pollingInterval", "spec.maxReplicaCount", "unknownField", "spec.rollout.strategy", "spec.scalingStrategy.strategy", "bogus", "spec.triggers"} {
		if !strings.Contains(got, want) {
			missed.add("KEDA CRD validation missed %s; got:\n%s", want, got)
		}
	}
	ta := kedaSchemas(t)["TriggerAuthentication"]
	got = strings.Join(ta.validate(docOf(t, `apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: x}
spec:
  secretTargetRef: [{parameter: host, name: s}]
  secretRefs: []
`)), "\n")
	for _, want := range []string{"key", "secretRefs"} {
		if !strings.Contains(got, want) {
			missed.add("TriggerAuthentication validation missed %s; got:\n%s", want, got)
		}
	}
	if err := decodeStrict(docOf(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n"), nil); err == nil || !strings.Contains(err.Error(), "replica") {
		missed.add("strict decoding missed an unknown field: %v", err)
	}
	insecure := rendered{docs: []doc{docOf(t, `apiVersion: v1
kind: Pod
metadata: {name: x, labels: {app.kubernetes.io/part-of: keda-demo}}
spec:
  containers: [{name: c, image: i}]
`)}}
	got = strings.Join(restrictedProblems(t, ourPods(t, insecure), nil), "\n")
	for _, want := range []string{"restricted", "readOnlyRootFilesystem", "automountServiceAccountToken"} {
		if !strings.Contains(got, want) {
			missed.add("the restricted check missed %s for a pod without any securityContext:\n%s", want, got)
		}
	}
	require.Empty(t, missed)
}
