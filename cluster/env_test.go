// Package cluster holds the scripts that run the demo on this machine; this test checks
// cluster/env.sh, which cluster.sh and tests/e2e/run.sh source.
package cluster

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sourceEnv runs env.sh under set -euo pipefail (as both scripts do) with env and returns what it
// printed on stderr and the KEDA_DEMO_*/KDEMO_* variables it left exported.
func sourceEnv(t *testing.T, env ...string) (stderr string, vars map[string]string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", `set -euo pipefail; . ./env.sh; env`)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KDEMO_") && !strings.HasPrefix(kv, "KEDA_DEMO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	require.NoError(t, err, errb.String())
	vars = map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		if strings.HasPrefix(k, "KDEMO_") || strings.HasPrefix(k, "KEDA_DEMO_") {
			vars[k] = v
		}
	}
	return errb.String(), vars
}

// The old KDEMO_* names are read for one release: an old name alone becomes the new one, with a
// warning; when both are set the new one wins; the old names are gone afterwards, so a script
// started by one that sourced env.sh (run.sh → cluster.sh) does not warn again.
func TestOldEnvNames(t *testing.T) {
	stderr, vars := sourceEnv(t)
	require.Empty(t, stderr)
	require.Empty(t, vars)

	stderr, vars = sourceEnv(t, "KDEMO_SETS=--set a=1 --set b=2", "KDEMO_RUN=", "KEDA_DEMO_CACHE=/c")
	require.Equal(t, map[string]string{"KEDA_DEMO_SETS": "--set a=1 --set b=2", "KEDA_DEMO_RUN": "", "KEDA_DEMO_CACHE": "/c"}, vars)
	require.Equal(t, "KDEMO_RUN is deprecated, use KEDA_DEMO_RUN; read for one release\n"+
		"KDEMO_SETS is deprecated, use KEDA_DEMO_SETS; read for one release\n", stderr)

	stderr, vars = sourceEnv(t, "KDEMO_STATE=/old", "KEDA_DEMO_STATE=/new")
	require.Equal(t, map[string]string{"KEDA_DEMO_STATE": "/new"}, vars)
	require.Equal(t, "KDEMO_STATE is deprecated, use KEDA_DEMO_STATE; read for one release (ignored: KEDA_DEMO_STATE is set)\n", stderr)

	for _, name := range []string{"STATE", "RUN", "CACHE", "BRIDGE", "NET", "APP_PORT", "IMAGEBUILD_ARGS", "SETS"} {
		_, vars = sourceEnv(t, "KDEMO_"+name+"=v")
		require.Equal(t, map[string]string{"KEDA_DEMO_" + name: "v"}, vars, name)
	}
}

// No code outside env.sh reads a KDEMO_* name: the scripts and the e2e read KEDA_DEMO_* only.
func TestScriptsReadOnlyNewNames(t *testing.T) {
	for _, f := range []string{"cluster.sh", "../tests/e2e/run.sh", "../tests/e2e/e2e_test.go", "../Taskfile.yml", "../.ci/run"} {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, line := range strings.Split(string(raw), "\n") {
			code, _, _ := strings.Cut(line, "#")
			if strings.HasPrefix(strings.TrimSpace(code), "//") {
				continue
			}
			require.NotContains(t, code, "KDEMO_", "%s: %s", f, line)
		}
	}
}
