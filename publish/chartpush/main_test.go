package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/keda-demo/keda-demo/cluster/chartdeps"
	"github.com/keda-demo/keda-demo/cluster/kubepin"
	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
	"github.com/keda-demo/keda-demo/publish/imagebuild/registrytest"
)

const root = "../.."

// chartPaths are the repository's top-level paths that belong in the package.
var chartPaths = []string{".helmignore", "Chart.lock", "Chart.yaml", "LICENSE", "README.md", "charts", "ci", "templates", "values.schema.json", "values.yaml"}

// archives returns a folder for KEDA_DEMO_BITNAMI_CHARTS and whether it holds the real bitnami
// charts. Without them (no registry access here) it writes stand-ins: charts with the pinned
// names and versions and no templates, so the publishing path is tested; what bitnami renders is
// not. charts/ is used when `helm dependency build` filled it.
func archives(t *testing.T) (dir string, real bool) {
	t.Helper()
	ch, complete, err := chartdeps.Load(root)
	require.NoError(t, err)
	if complete {
		return os.Getenv(EnvBitnamiCharts), true
	}
	dir = t.TempDir()
	for _, d := range ch.Metadata.Dependencies {
		if d.Repository == "" {
			continue
		}
		stand := &chart.Chart{Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: d.Name, Version: d.Version,
			Description: "stand-in for the bitnami chart in chartpush tests"}}
		_, err := chartutil.Save(stand, dir)
		require.NoError(t, err)
	}
	t.Logf("bitnami archives absent (set %s or run `go tool helm dependency build`): pushing stand-ins with their names and versions", EnvBitnamiCharts)
	return dir, false
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// helm runs the helm CLI of the root module with its configuration, cache and the Docker config in
// temporary folders, so no credentials of the machine take part.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("go", append([]string{"tool", "helm"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"), "HELM_REGISTRY_CONFIG="+filepath.Join(home, "registry.json"),
		"DOCKER_CONFIG="+filepath.Join(home, "docker"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// packageFiles lists a chart archive: path inside the chart -> content.
func packageFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		name, ok := strings.CutPrefix(h.Name, "keda-demo/")
		require.True(t, ok, "entry %s outside keda-demo/", h.Name)
		files[name] = b
	}
}

func trackedTopLevel(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files").Output()
	require.NoError(t, err)
	var top []string
	for _, p := range strings.Fields(string(out)) {
		first := strings.SplitN(p, "/", 2)[0]
		if !slices.Contains(top, first) {
			top = append(top, first)
		}
	}
	return top
}

func decodeStrict(t *testing.T, manifest string, into any) {
	t.Helper()
	require.NoError(t, yaml.UnmarshalStrict([]byte(manifest), into))
}

// TestPushShowTemplate: task chart-push's program packages the chart with README (values table),
// LICENSE and the dependencies inside and nothing of the repository that is not the chart; the
// registry then serves it to `helm show chart oci://…` and `helm template oci://…`, which renders
// what the local archive renders.
func TestPushShowTemplate(t *testing.T) {
	r := registrytest.Start(t)
	dir, real := archives(t)
	keep := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--registry", r.Host + "/charts", "--chart", root, "--keep", keep}, &stdout, &stderr,
		env(map[string]string{ociimage.EnvUsername: r.Username, ociimage.EnvPassword: r.Password, EnvBitnamiCharts: dir}))
	require.NoError(t, err, stderr.String())
	ref := "oci://" + r.Host + "/charts/keda-demo"
	require.Equal(t, ref+" --version 0.1.0\n", stdout.String())
	require.Equal(t, []string{"0.1.0"}, r.Tags(t, r.Host+"/charts/keda-demo"))

	local, err := loader.LoadDir(root)
	require.NoError(t, err)
	tgz := filepath.Join(keep, "keda-demo-0.1.0.tgz")
	files := packageFiles(t, tgz)
	for _, p := range []string{"README.md", "LICENSE"} {
		want, err := os.ReadFile(filepath.Join(root, p))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, files[p]), "%s: the package holds %d bytes, the repository %d", p, len(files[p]), len(want))
	}
	require.Contains(t, string(files["README.md"]), "<!-- values-table:start", "the values table travels with the README")
	for _, d := range local.Metadata.Dependencies {
		require.Contains(t, files, "charts/"+d.Name+"/Chart.yaml", "dependency %s in the package", d.Name)
	}
	for _, top := range trackedTopLevel(t) {
		if slices.Contains(chartPaths, top) {
			continue
		}
		for p := range files {
			require.False(t, p == top || strings.HasPrefix(p, top+"/"), "%s is not part of the chart but the package holds %s: add /%s to .helmignore", top, p, top)
		}
	}

	creds := []string{"--plain-http", "--username", r.Username, "--password", r.Password}
	var shown chart.Metadata
	decodeStrict(t, helm(t, append([]string{"show", "chart", ref, "--version", "0.1.0"}, creds...)...), &shown)
	require.Equal(t, *local.Metadata, shown)
	require.Equal(t, "Apache-2.0", shown.Annotations["artifacthub.io/license"])

	// The tested Kubernetes version: the helm CLI built by `go tool` assumes v1.20.0, which
	// Chart.yaml's kubeVersion refuses.
	kube, err := kubepin.Version(root)
	require.NoError(t, err)
	// Fixed bitnami passwords: left empty, the real bitnami charts generate new ones on every render.
	tmpl := []string{"--kube-version", kube, "--api-versions", "keda.sh/v1alpha1", "--namespace", "demo",
		"--set", "mongodb.auth.rootPassword=root-pw,mongodb.auth.passwords={app-pw},rabbitmq.auth.password=rabbit-pw,rabbitmq.auth.erlangCookie=cookie"}
	pulled := helm(t, append(append([]string{"template", "keda-demo", ref, "--version", "0.1.0"}, creds...), tmpl...)...)
	require.Equal(t, helm(t, append([]string{"template", "keda-demo", tgz}, tmpl...)...), pulled)
	kinds := map[string]int{}
	for _, m := range releaseutil.SplitManifests(pulled) {
		var meta struct{ Kind string }
		require.NoError(t, yaml.Unmarshal([]byte(m), &meta))
		kinds[meta.Kind]++
		if meta.Kind == "Deployment" && strings.Contains(m, "app.kubernetes.io/part-of: keda-demo") {
			var d appsv1.Deployment
			decodeStrict(t, m, &d)
			require.Equal(t, "keda-demo-app", d.Name)
		}
	}
	for _, k := range []string{"Deployment", "ScaledJob", "TriggerAuthentication"} {
		require.NotZero(t, kinds[k], "no %s in the render of the pulled chart: %v", k, kinds)
	}
	if real {
		require.NotZero(t, kinds["StatefulSet"], "the bitnami charts render their StatefulSets: %v", kinds)
	}
	t.Logf("pulled chart renders %v (real bitnami charts: %v)", kinds, real)
}

// TestWrongPasswordPushesNothing: refused credentials stop before packaging, with imagebuild's
// explanation and without the password in it.
func TestWrongPasswordPushesNothing(t *testing.T) {
	r := registrytest.Start(t)
	dir, _ := archives(t)
	const wrong = "not-the-password-5d1e"
	var stdout, stderr bytes.Buffer
	keep := t.TempDir()
	err := run(context.Background(), []string{"--registry", r.Host + "/charts", "--chart", root, "--keep", keep}, &stdout, &stderr,
		env(map[string]string{ociimage.EnvUsername: r.Username, ociimage.EnvPassword: wrong, EnvBitnamiCharts: dir}))
	require.ErrorIs(t, err, ociimage.ErrAuth)
	require.NotContains(t, err.Error()+stderr.String(), wrong)
	require.Empty(t, r.Catalog(t))
	left, _ := os.ReadDir(keep)
	require.Empty(t, left, "nothing is packaged when the registry refuses the credentials")
}

// TestDockerConfigCredentials: without REGISTRY_USERNAME/REGISTRY_PASSWORD the Docker config is
// used, as by `task images`.
func TestDockerConfigCredentials(t *testing.T) {
	r := registrytest.Start(t)
	dir, _ := archives(t)
	docker := t.TempDir()
	cfg := `{"auths":{"` + r.Host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(r.Username+":"+r.Password)) + `"}}}`
	require.NoError(t, os.WriteFile(filepath.Join(docker, "config.json"), []byte(cfg), 0o600))
	t.Setenv("DOCKER_CONFIG", docker)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--registry", r.Host, "--chart", root}, &stdout, &stderr,
		env(map[string]string{EnvBitnamiCharts: dir}))
	require.NoError(t, err, stderr.String())
	require.Contains(t, stderr.String(), "credentials from Docker config")
	require.Equal(t, []string{"0.1.0"}, r.Tags(t, r.Host+"/keda-demo"))
}

// TestMissingDependencies: without the archives nothing is pushed and the message says where
// they come from.
func TestMissingDependencies(t *testing.T) {
	if dir, real := archives(t); real && dir == "" {
		t.Skip("charts/ holds the bitnami archives")
	}
	r := registrytest.Start(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--registry", r.Host, "--chart", root}, &stdout, &stderr,
		env(map[string]string{ociimage.EnvUsername: r.Username, ociimage.EnvPassword: r.Password}))
	require.ErrorContains(t, err, "missing in charts/ directory: mongodb, rabbitmq")
	require.ErrorContains(t, err, EnvBitnamiCharts)
	require.Empty(t, r.Tags(t, r.Host+"/keda-demo"))
}
