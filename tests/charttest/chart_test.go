package charttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	if c.Metadata.AppVersion != "0.1.0" || c.Metadata.Version != "0.1.0" {
		t.Errorf("umbrella version/appVersion %s/%s, want 0.1.0/0.1.0", c.Metadata.Version, c.Metadata.AppVersion)
	}
	if c.Metadata.KubeVersion != ">=1.34.0-0" {
		t.Errorf("kubeVersion %q, want >=1.34.0-0", c.Metadata.KubeVersion)
	}
	if !chartutil.IsCompatibleRange(c.Metadata.KubeVersion, kubeVersion.Version) {
		t.Errorf("the tested Kubernetes %s does not satisfy kubeVersion %q", kubeVersion.Version, c.Metadata.KubeVersion)
	}
	subs := map[string]*chart.Chart{}
	for _, name := range []string{"app", "processor", "keda-demo-lib"} {
		s, err := loader.Load(filepath.Join(chartDir, "charts", name))
		if err != nil {
			t.Fatalf("load charts/%s: %v", name, err)
		}
		subs[name] = s
		if s.Metadata.KubeVersion != "" {
			t.Errorf("charts/%s kubeVersion %q: Helm checks only the installed chart's, so the umbrella's is the one place", name, s.Metadata.KubeVersion)
		}
		if s.Metadata.AppVersion != c.Metadata.AppVersion {
			t.Errorf("charts/%s appVersion %q, umbrella %q: they must be equal", name, s.Metadata.AppVersion, c.Metadata.AppVersion)
		}
	}
	if subs["keda-demo-lib"].Metadata.Type != "library" {
		t.Error("keda-demo-lib must be a library chart")
	}
	pins := map[string]string{"mongodb": "16.5.45", "rabbitmq": "16.0.14"}
	for _, d := range c.Metadata.Dependencies {
		if s, ok := subs[d.Name]; ok {
			if d.Repository != "" || d.Version != s.Metadata.Version {
				t.Errorf("dependency %s: version %q repository %q, want %q and none (it lives in charts/)", d.Name, d.Version, d.Repository, s.Metadata.Version)
			}
			continue
		}
		if pins[d.Name] != d.Version || d.Repository != "oci://registry-1.docker.io/bitnamicharts" || d.Condition != d.Name+".enabled" {
			t.Errorf("dependency %s: %+v, want version %s from oci://registry-1.docker.io/bitnamicharts with condition %s.enabled", d.Name, d, pins[d.Name], d.Name)
		}
		delete(pins, d.Name)
	}
	if len(pins) > 0 {
		t.Errorf("missing dependencies %v", pins)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("UPDATE_CHART_LOCK") != "" {
		b, err := yaml.Marshal(&chart.Lock{Generated: time.Now().UTC().Truncate(time.Second), Digest: digest, Dependencies: deps})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(chartDir, "Chart.lock"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		c = loadChart(t)
	}
	if c.Lock == nil {
		t.Fatal("no Chart.lock")
	}
	if got, err := hashReq(c.Metadata.Dependencies, c.Lock.Dependencies); err != nil || got != c.Lock.Digest {
		t.Errorf("Chart.lock is out of sync with Chart.yaml (digest %s, want %s): run UPDATE_CHART_LOCK=1 go test ./tests/charttest -run TestChartLock", c.Lock.Digest, got)
	}
	if len(c.Lock.Dependencies) != len(deps) {
		t.Fatalf("Chart.lock has %d dependencies, Chart.yaml %d", len(c.Lock.Dependencies), len(deps))
	}
	for i, d := range deps {
		l := c.Lock.Dependencies[i]
		if l.Name != d.Name || l.Version != d.Version || l.Repository != d.Repository {
			t.Errorf("Chart.lock dependency %d = %+v, want %+v", i, l, d)
		}
	}
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
