package charttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/provenance"
	"sigs.k8s.io/yaml"
)

// TestChartMetadata: the subcharts carry the umbrella's appVersion (the image tags default to
// it), Chart.yaml's dependency versions match the subcharts, and the bitnami pins are exact.
func TestChartMetadata(t *testing.T) {
	c := loadChart(t)
	require.Equal(t, "0.1.0/0.1.0", c.Metadata.Version+"/"+c.Metadata.AppVersion, "umbrella version/appVersion")
	require.Equal(t, ">=1.34.0-0", c.Metadata.KubeVersion, "kubeVersion")
	require.Truef(t, chartutil.IsCompatibleRange(c.Metadata.KubeVersion, kubeVersion.Version),
		"the tested Kubernetes %s does not satisfy kubeVersion %q", kubeVersion.Version, c.Metadata.KubeVersion)
	var problems problemList
	subs := map[string]*chart.Chart{}
	for _, name := range []string{"app", "processor", "keda-demo-lib"} {
		s, err := loader.Load(filepath.Join(chartDir, "charts", name))
		require.NoErrorf(t, err, "load charts/%s", name)
		subs[name] = s
		if s.Metadata.KubeVersion != "" {
			problems.add("charts/%s kubeVersion %q: Helm checks only the installed chart's, so the umbrella's is the one place", name, s.Metadata.KubeVersion)
		}
		if s.Metadata.AppVersion != c.Metadata.AppVersion {
			problems.add("charts/%s appVersion %q, umbrella %q: they must be equal", name, s.Metadata.AppVersion, c.Metadata.AppVersion)
		}
	}
	pins := map[string]string{"mongodb": "16.5.45", "rabbitmq": "16.0.14"}
	for _, d := range c.Metadata.Dependencies {
		if s, ok := subs[d.Name]; ok {
			if d.Repository != "" || d.Version != s.Metadata.Version {
				problems.add("dependency %s: version %q repository %q, want %q and none (it lives in charts/)", d.Name, d.Version, d.Repository, s.Metadata.Version)
			}
			continue
		}
		if pins[d.Name] != d.Version || d.Repository != "oci://registry-1.docker.io/bitnamicharts" || d.Condition != d.Name+".enabled" {
			problems.add("dependency %s: %+v, want version %s from oci://registry-1.docker.io/bitnamicharts with condition %s.enabled", d.Name, d, pins[d.Name], d.Name)
		}
		delete(pins, d.Name)
	}
	if len(pins) > 0 {
		problems.add("missing dependencies %v", pins)
	}
	require.Empty(t, problems)
	require.Equal(t, "library", subs["keda-demo-lib"].Metadata.Type, "keda-demo-lib must be a library chart")
}

// TestChartLock: Chart.lock (written by hand: no registry is reachable here) is what
// `helm dependency update` would write, so `helm dependency build` accepts it. Run with
// UPDATE_CHART_LOCK=1 to rewrite it after changing Chart.yaml's dependencies.
func TestChartLock(t *testing.T) {
	c := loadChart(t)
	var deps []*chart.Dependency
	for _, d := range c.Metadata.Dependencies {
		deps = append(deps, &chart.Dependency{Name: d.Name, Version: d.Version, Repository: d.Repository})
	}
	digest, err := hashReq(c.Metadata.Dependencies, deps)
	require.NoError(t, err)
	if os.Getenv("UPDATE_CHART_LOCK") != "" {
		b, err := yaml.Marshal(&chart.Lock{Generated: time.Now().UTC().Truncate(time.Second), Digest: digest, Dependencies: deps})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(chartDir, "Chart.lock"), b, 0o644))
		c = loadChart(t)
	}
	require.NotNil(t, c.Lock, "no Chart.lock")
	got, err := hashReq(c.Metadata.Dependencies, c.Lock.Dependencies)
	require.NoError(t, err)
	require.Equal(t, got, c.Lock.Digest, "Chart.lock is out of sync with Chart.yaml: run UPDATE_CHART_LOCK=1 go test ./tests/charttest -run TestChartLock")
	require.Equalf(t, len(deps), len(c.Lock.Dependencies), "Chart.lock has %d dependencies, Chart.yaml %d", len(c.Lock.Dependencies), len(deps))
	var problems problemList
	for i, d := range deps {
		l := c.Lock.Dependencies[i]
		if l.Name != d.Name || l.Version != d.Version || l.Repository != d.Repository {
			problems.add("Chart.lock dependency %d = %+v, want %+v", i, l, d)
		}
	}
	require.Empty(t, problems)
}

// hashReq is helm's internal/resolver.HashReq (v3.21.4): the digest `helm dependency build`
// compares Chart.lock against.
func hashReq(req, lock []*chart.Dependency) (string, error) {
	data, err := json.Marshal([2][]*chart.Dependency{req, lock})
	if err != nil {
		return "", err
	}
	s, err := provenance.Digest(bytes.NewBuffer(data))
	return "sha256:" + s, err
}
