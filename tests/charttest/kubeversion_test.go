package charttest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTasksRenderForTheTestedKubernetes: `task lint` and `task template` give helm the pinned
// Kubernetes version; `go tool helm` is built without version flags and would assume v1.20.0,
// which Chart.yaml's kubeVersion refuses.
func TestTasksRenderForTheTestedKubernetes(t *testing.T) {
	for _, task := range []string{"lint", "template"} {
		cmd := exec.Command("go", "tool", "task", "--dry", task)
		cmd.Dir = chartDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("task --dry %s: %v\n%s", task, err, out)
		}
		n := 0
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, "go tool helm "+task+" ") {
				continue
			}
			n++
			if !strings.Contains(line, " --kube-version "+kubeVersion.Version+" ") {
				t.Errorf("task %s runs helm without --kube-version %s: %s", task, kubeVersion.Version, line)
			}
		}
		if n == 0 {
			t.Errorf("task --dry %s shows no `go tool helm %s`:\n%s", task, task, out)
		}
	}
}
