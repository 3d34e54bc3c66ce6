package charttest

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// podNamed returns our pod template described as where (e.g. "Deployment keda-demo-app").
func podNamed(t *testing.T, r rendered, where string) podOf {
	t.Helper()
	for _, p := range ourPods(t, r) {
		if p.where == where {
			return p
		}
	}
	require.FailNow(t, "no pod template "+where)
	return podOf{}
}

// TestJobsView: the live page's Jobs view gets a read-only, namespaced Role bound to the app's own
// ServiceAccount, and only then the app's token; the processor never gets one.
func TestJobsView(t *testing.T) {
	cases := []struct {
		name    string
		sets    []string
		enabled bool
		account string
	}{
		{"default", nil, true, "keda-demo-app"},
		{"own account", []string{"app.serviceAccount.create=false", "app.serviceAccount.name=demo-viewer"}, true, "demo-viewer"},
		{"off", []string{"app.livePage.jobs.enabled=false"}, false, "keda-demo-app"},
		{"off, default account", []string{"app.livePage.jobs.enabled=false", "app.serviceAccount.create=false"}, false, "default"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, values(t, nil, c.sets...))
			app := podNamed(t, r, "Deployment keda-demo-app")
			proc := podNamed(t, r, "ScaledJob keda-demo-processor")
			require.Equal(t, c.account, app.spec.ServiceAccountName)
			require.Equal(t, c.enabled, *app.spec.AutomountServiceAccountToken)
			require.False(t, *proc.spec.AutomountServiceAccountToken)
			env := envMap(app.spec.Containers[0])
			require.Equal(t, "20", env["LIVE_MAX_CLIENTS"])
			require.Equal(t, "15s", env["LIVE_HEARTBEAT"])

			// Records keep their Job's name: the Job controller's pod label, through the downward API.
			var jobName *corev1.EnvVar
			for i, e := range proc.spec.Containers[0].Env {
				if e.Name == "JOB_NAME" {
					jobName = &proc.spec.Containers[0].Env[i]
				}
			}
			require.NotNil(t, jobName)
			require.Equal(t, "metadata.labels['batch.kubernetes.io/job-name']", jobName.ValueFrom.FieldRef.FieldPath)

			if !c.enabled {
				require.Empty(t, r.ours("Role"))
				require.Empty(t, r.ours("RoleBinding"))
				require.NotContains(t, env, "JOBS_SELECTOR")
				return
			}
			require.Equal(t, "scaledjob.keda.sh/name="+str(get(r.one(t, "ScaledJob").obj, "metadata", "name")), env["JOBS_SELECTOR"])
			role := r.one(t, "Role")
			require.Equal(t, namespace, str(get(role.obj, "metadata", "namespace")))
			require.Equal(t, []any{
				map[string]any{"apiGroups": []any{"batch"}, "resources": []any{"jobs"}, "verbs": []any{"get", "list", "watch"}},
				map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"get", "list", "watch"}},
			}, get(role.obj, "rules"))
			rb := r.one(t, "RoleBinding")
			require.Equal(t, map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": str(get(role.obj, "metadata", "name"))}, get(rb.obj, "roleRef"))
			require.Equal(t, []any{map[string]any{"kind": "ServiceAccount", "name": c.account, "namespace": namespace}}, get(rb.obj, "subjects"))
		})
	}
}
