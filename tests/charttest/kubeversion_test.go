package charttest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTasksRenderForTheTestedKubernetes: `task lint` and `task template` give helm the pinned
// Kubernetes version; `go tool helm` is built without version flags and would assume v1.20.0,
// which Chart.yaml's kubeVersion refuses.
func TestTasksRenderForTheTestedKubernetes(t *testing.T) {
	var problems problemList
	for _, task := range []string{"lint", "template"} {
		cmd := exec.Command("go", "tool", "task", "--dry", task)
		cmd.Dir = chartDir
		out, err := cmd.CombinedOutput()
		require.NoErrorf(t, err, "task --dry %s:\n%s", task, out)
		n := 0
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, "go tool helm "+task+" ") {
				continue
			}
			n++
			if !strings.Contains(line, " --kube-version "+kubeVersion.Version+" ") {
				problems.add("task %s runs helm without --kube-version %s: %s", task, kubeVersion.Version, line)
			}
		}
		if n == 0 {
			problems.add("task --dry %s shows no `go tool helm %s`:\n%s", task, task, out)
		}
	}
	require.Empty(t, problems)
}
