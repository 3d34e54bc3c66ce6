package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"

	"github.com/keda-demo/keda-demo/cluster/chartdeps"
	"github.com/keda-demo/keda-demo/cluster/kubepin"
)

// chartDir is the umbrella chart: the repository root.
const chartDir = "../.."

const (
	releaseName = "keda-demo"
	namespace   = "demo"
)

// kubeVersion is the tested Kubernetes version, from its one pin (cluster/kubepin), so renders
// are reproducible and match the cluster the e2e runs.
var kubeVersion = func() *chartutil.KubeVersion {
	v, err := kubepin.Version(chartDir)
	if err == nil {
		var kv *chartutil.KubeVersion
		if kv, err = chartutil.ParseKubeVersion(v); err == nil {
			return kv
		}
	}
	panic(fmt.Sprintf("the tested Kubernetes version: %v", err))
}()

// apiVersions are what a cluster with KEDA (and the prometheus-operator CRDs) serves on top of
// Helm's built-in defaults.
var apiVersions = chartutil.VersionSet{
	"keda.sh/v1alpha1",
	"keda.sh/v1alpha1/ScaledJob",
	"keda.sh/v1alpha1/TriggerAuthentication",
	"monitoring.coreos.com/v1",
	"monitoring.coreos.com/v1/ServiceMonitor",
	"monitoring.coreos.com/v1/PrometheusRule",
}

// profiles are the ready-made values files in ci/ (chart-testing installs each of them).
func profiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	require.NoError(t, err, "ci/*-values.yaml")
	require.NotEmpty(t, files, "no ci/*-values.yaml")
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), "-values.yaml"))
	}
	sort.Strings(names)
	return names
}

func profileFile(name string) string {
	return filepath.Join(chartDir, "ci", name+"-values.yaml")
}

// values merges values files and --set style assignments the way the helm CLI does.
func values(t *testing.T, files []string, sets ...string) map[string]any {
	t.Helper()
	base := map[string]any{}
	for _, f := range files {
		v, err := chartutil.ReadValuesFile(f)
		require.NoErrorf(t, err, "read %s", f)
		base = mergeMaps(base, v.AsMap())
	}
	for _, s := range sets {
		require.NoErrorf(t, strvals.ParseInto(s, base), "--set %s", s)
	}
	return base
}

// mergeMaps is the helm CLI's merge of several -f files (pkg/cli/values).
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v, ok := v.(map[string]any); ok {
			if bv, ok := out[k]; ok {
				if bv, ok := bv.(map[string]any); ok {
					out[k] = mergeMaps(bv, v)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// loadChart loads the chart anew (an install prunes disabled subcharts from what it is given),
// with the bitnami archives from charts/ or KEDA_DEMO_BITNAMI_CHARTS (cluster/chartdeps).
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, _, err := chartdeps.Load(chartDir)
	require.NoError(t, err, "load chart")
	return c
}

var bitnamiOnce = sync.OnceValue(func() bool {
	_, complete, err := chartdeps.Load(chartDir)
	return err == nil && complete
})

// bitnamiArchivesPresent reports whether the bitnami archives are in charts/ or in the folder
// KEDA_DEMO_BITNAMI_CHARTS names.
func bitnamiArchivesPresent() bool { return bitnamiOnce() }

// requireBitnami is for the tests that check what only the real bitnami templates render. Without
// the archives they skip on a developer's machine and fail in CI (CI=true), so CI never passes
// on our own templates alone.
func requireBitnami(t *testing.T) {
	t.Helper()
	if bitnamiArchivesPresent() {
		return
	}
	msg := "the bitnami chart archives are neither in charts/ nor in $" + chartdeps.Env + ": " + chartdeps.HowToGet
	if os.Getenv("CI") == "true" {
		require.FailNow(t, msg+" (CI=true: this test needs them)")
	}
	t.Skip(msg)
}

// bitnamiCounts counts the renders that held objects of the real bitnami templates and those
// objects; TestMain writes them to $KEDA_DEMO_BITNAMI_REPORT for .ci/run to print (go test hides
// a passing test's output).
var bitnamiCounts struct{ renders, objects atomic.Int64 }

func TestMain(m *testing.M) {
	code := m.Run()
	if p := os.Getenv("KEDA_DEMO_BITNAMI_REPORT"); p != "" {
		line := fmt.Sprintf("bitnami: renders=%d objects=%d\n", bitnamiCounts.renders.Load(), bitnamiCounts.objects.Load())
		if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "charttest:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fromBitnami reports whether a rendered object comes from a bitnami chart's templates.
func (d doc) fromBitnami() bool {
	return strings.HasPrefix(d.source, "keda-demo/charts/mongodb/") || strings.HasPrefix(d.source, "keda-demo/charts/rabbitmq/")
}

// bitnamiDocs are the objects the bitnami charts rendered.
func (r rendered) bitnamiDocs() []doc {
	var out []doc
	for _, d := range r.docs {
		if d.fromBitnami() {
			out = append(out, d)
		}
	}
	return out
}

type renderOpts struct {
	apiVersions chartutil.VersionSet
}

// rendered is one release rendered client-side, as `helm template` / `helm install --dry-run` do.
type rendered struct {
	docs  []doc
	notes string
}

type doc struct {
	source string // template path
	hook   bool
	text   string
	obj    map[string]any
}

func (r rendered) kind(kind string) []doc {
	var out []doc
	for _, d := range r.docs {
		if d.obj["kind"] == kind {
			out = append(out, d)
		}
	}
	return out
}

// ours returns the objects of a kind that belong to keda-demo itself (label
// app.kubernetes.io/part-of=keda-demo), ignoring what the bitnami charts render.
func (r rendered) ours(kind string) []doc {
	var ds []doc
	for _, d := range r.kind(kind) {
		if str(get(d.obj, "metadata", "labels", "app.kubernetes.io/part-of")) == "keda-demo" {
			ds = append(ds, d)
		}
	}
	return ds
}

// one returns the single object of a kind that belongs to keda-demo itself.
func (r rendered) one(t *testing.T, kind string) doc {
	t.Helper()
	ds := r.ours(kind)
	require.Equalf(t, 1, len(ds), "want exactly one keda-demo %s", kind)
	return ds[0]
}

// render renders the chart with the Helm SDK: Install action, dry-run, client-only, a fixed
// KubeVersion and APIVersions that include keda.sh/v1alpha1.
func render(t *testing.T, vals map[string]any) (rendered, error) {
	t.Helper()
	return renderWith(t, vals, renderOpts{apiVersions: apiVersions})
}

func renderWith(t *testing.T, vals map[string]any, o renderOpts) (rendered, error) {
	t.Helper()
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	inst := action.NewInstall(cfg)
	inst.DryRun = true
	inst.DryRunOption = "client"
	inst.ClientOnly = true
	inst.Replace = true
	inst.ReleaseName = releaseName
	inst.Namespace = namespace
	inst.KubeVersion = kubeVersion
	inst.APIVersions = o.apiVersions
	rel, err := inst.Run(loadChart(t), vals)
	if err != nil {
		return rendered{}, err
	}
	var out rendered
	out.notes = rel.Info.Notes
	add := func(source, text string, hook bool) {
		for _, m := range releaseutil.SplitManifests(text) {
			if strings.TrimSpace(m) == "" {
				continue
			}
			obj := map[string]any{}
			require.NoErrorf(t, yaml.Unmarshal([]byte(m), &obj), "%s: not YAML:\n%s", source, m)
			if len(obj) == 0 {
				continue
			}
			out.docs = append(out.docs, doc{source: source, hook: hook, text: m, obj: obj})
		}
	}
	for _, m := range releaseutil.SplitManifests(rel.Manifest) {
		src := ""
		if first, _, ok := strings.Cut(m, "\n"); ok && strings.HasPrefix(first, "# Source: ") {
			src = strings.TrimPrefix(first, "# Source: ")
		}
		add(src, m, false)
	}
	for _, h := range rel.Hooks {
		add(h.Path, h.Manifest, true)
	}
	if n := len(out.bitnamiDocs()); n > 0 {
		bitnamiCounts.renders.Add(1)
		bitnamiCounts.objects.Add(int64(n))
	}
	return out, nil
}

func mustRender(t *testing.T, vals map[string]any) rendered {
	t.Helper()
	r, err := render(t, vals)
	require.NoError(t, err, "render")
	return r
}

// lintOverlay is what `task lint` adds: helm lint knows no keda.sh API, so it renders offline,
// and offline the chart requires explicit bitnami passwords.
var lintOverlay = append([]string{"renderOffline=true"}, fixedPasswords...)

// get walks a decoded object: get(obj, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		case int:
			s, ok := v.([]any)
			if !ok || p >= len(s) {
				return nil
			}
			v = s[p]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// problemList is what a check over many objects found. It is asserted once, with
// require.Empty, so a failure names every bad object (require stops at the first failed
// assertion); it prints one problem a line.
type problemList []string

func (p *problemList) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func (p problemList) String() string { return "\n" + strings.Join(p, "\n") }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
