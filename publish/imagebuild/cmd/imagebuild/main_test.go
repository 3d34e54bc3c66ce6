package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/publish/imagebuild/imagetest"
	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
	"github.com/keda-demo/keda-demo/publish/imagebuild/registrytest"
)

const revision = "89abcdef0123456789abcdef0123456789abcdef"

// tinyArgs point the command at the stand-in mains of ../../ociimage/testdata/tiny and a Chart.yaml
// saying appVersion 0.1.0, so the test depends neither on the real programs nor on git.
func tinyArgs(t *testing.T, extra ...string) []string {
	t.Helper()
	t.Setenv("GOWORK", "off")
	root, err := filepath.Abs("../../ociimage/testdata/tiny")
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(t.TempDir(), "Chart.yaml")
	if err := os.WriteFile(chart, []byte("apiVersion: v2\nname: keda-demo\nversion: 0.1.0\nappVersion: \"0.1.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return append([]string{"--root", root, "--chart", chart, "--revision", revision,
		"--app-package", "example.com/tiny/cmd/app", "--processor-package", "example.com/tiny/cmd/processor"}, extra...)
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The whole `task images` path: check the credentials, build, write the layout, push both tags,
// print the helm arguments on stdout, and nothing else there.
func TestImagesPushesAndPrintsHelmArgs(t *testing.T) {
	r := registrytest.Start(t)
	registry := r.Host + "/team"
	oci := filepath.Join(t.TempDir(), "oci")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), tinyArgs(t, "--registry", registry, "--oci-layout", oci), &stdout, &stderr,
		env(map[string]string{ociimage.EnvUsername: r.Username, ociimage.EnvPassword: r.Password}))
	t.Logf("stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String()+stderr.String(), r.Password) {
		t.Error("the password was printed")
	}

	auth := remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password})
	var pushed []ociimage.Pushed
	ca := imagetest.HostCABundle(t)
	meta := ociimage.Meta{Version: "0.1.0", Revision: revision, Source: ociimage.DefaultSource}
	for _, p := range ociimage.DefaultPrograms() {
		repo := registry + "/" + p.Repository
		tags := r.Tags(t, repo)
		slices.Sort(tags)
		if want := []string{"0.1.0", "0.1.0-89abcde"}; !slices.Equal(tags, want) {
			t.Errorf("%s: tags %v, want %v", repo, tags, want)
		}
		ref, err := name.ParseReference(repo + ":0.1.0-89abcde")
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(ref, auth)
		if err != nil {
			t.Fatal(err)
		}
		imagetest.CheckIndex(t, idx, p, meta, ociimage.DefaultPlatforms(), ca)
		d, _ := idx.Digest()
		pushed = append(pushed, ociimage.Pushed{Program: p, Tag: "0.1.0-89abcde", Digest: d})
	}
	want := ociimage.HelmArgs(registry, pushed) + "\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", stdout.String(), want)
	}
	if !strings.Contains(stdout.String(), "--set global.kedaDemo.imageRegistry="+registry+" --set app.image.tag=0.1.0-89abcde --set processor.image.tag=0.1.0-89abcde --set app.image.digest=sha256:") {
		t.Errorf("helm args: %s", stdout.String())
	}

	// The layout holds the same two indexes, named by their full references.
	lp, err := layout.FromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := lp.ImageIndex()
	im, _ := root.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("layout has %d entries", len(im.Manifests))
	}
	for i, d := range im.Manifests {
		if d.Digest != pushed[i].Digest || d.Annotations[ociimage.RefNameAnnotation] != registry+"/"+pushed[i].Program.Repository+":0.1.0" {
			t.Errorf("layout entry %d: %s %v", i, d.Digest, d.Annotations)
		}
	}
}

func TestImagesWrongPasswordBuildsAndPushesNothing(t *testing.T) {
	r := registrytest.Start(t)
	const wrong = "wrong-password-17a2"
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), tinyArgs(t, "--registry", r.Host+"/team"), &stdout, &stderr,
		env(map[string]string{ociimage.EnvUsername: r.Username, ociimage.EnvPassword: wrong}))
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	for _, want := range []string{"refused the credentials", "401", "REGISTRY_USERNAME/REGISTRY_PASSWORD", "nothing was built or pushed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(msg+stdout.String()+stderr.String(), wrong) {
		t.Error("the password was printed")
	}
	if stdout.Len() != 0 || strings.Contains(stderr.String(), "compiled") {
		t.Errorf("built or printed after a failed check:\nstdout %q\nstderr %q", stdout.String(), stderr.String())
	}
	if got := r.Catalog(t); len(got) != 0 {
		t.Errorf("registry holds %v", got)
	}
}

func TestImagesArgumentErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "REGISTRY is empty"},
		{[]string{"--registry", "r.example.com/team", "--tag", "latest"}, nil, "never pushes latest"},
		{[]string{"--registry", "https://r.example.com"}, nil, "without a scheme"},
		{[]string{"--registry", "r.example.com", "--backend", "docker"}, map[string]string{ociimage.EnvUsername: "u", ociimage.EnvPassword: "p"}, "docker login"},
		{[]string{"--registry", "r.example.com"}, map[string]string{ociimage.EnvUsername: "u"}, "set both"},
		{[]string{"--oci-layout", "x", "--platforms", "windows/amd64"}, nil, "only linux"},
		{[]string{"--registry", "r.example.com", "--oci-layout", "x", "--tags", "faultinject"}, nil, "never pushed"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tinyArgs(t, c.args...), &stdout, &stderr, env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	// Without --tag the tag is the chart's appVersion, which must be there.
	chart := filepath.Join(t.TempDir(), "Chart.yaml")
	os.WriteFile(chart, []byte("apiVersion: v2\nname: keda-demo\nversion: 0.1.0\n"), 0o644)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append(tinyArgs(t, "--oci-layout", t.TempDir()), "--chart", chart), &stdout, &stderr, env(nil))
	if err == nil || !strings.Contains(err.Error(), "has no appVersion") {
		t.Errorf("chart without appVersion: %v", err)
	}
}

// `imagebuild single`, as tests/e2e/run.sh calls it for the pause image: the archive appears at --out
// (written through a temporary file) and nothing else is left in its directory.
func TestSingleWritesImportableArchive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	binary := []byte("\x7fELF stand-in")
	require.NoError(t, os.WriteFile(bin, binary, 0o755))
	outDir := t.TempDir()
	out := filepath.Join(outDir, "pause.tar")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"single", "--ref", "registry.k8s.io/pause:3.10", "--bin", bin, "--out", out, "--platform", "linux/arm64"},
		&stdout, &stderr, env(nil))
	require.NoError(t, err, stderr.String())
	require.Empty(t, stdout.String())
	require.Contains(t, stderr.String(), "wrote registry.k8s.io/pause:3.10 (sha256:")
	archive, err := os.ReadFile(out)
	require.NoError(t, err)
	imagetest.CheckSingleBinaryArchive(t, archive, "registry.k8s.io/pause:3.10", "pause", binary, v1.Platform{OS: "linux", Architecture: "arm64"})
	left, err := os.ReadDir(outDir)
	require.NoError(t, err)
	require.Len(t, left, 1, "temporary files left beside the archive")
}

func TestSingleArgumentErrors(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pause")
	require.NoError(t, os.WriteFile(bin, []byte("x"), 0o755))
	out := filepath.Join(t.TempDir(), "pause.tar")
	for _, c := range []struct {
		test string
		args []string
		env  map[string]string
		want string
	}{
		{"no ref", []string{"--bin", bin, "--out", out}, nil, "give --ref, --bin and --out"},
		{"no out", []string{"--ref", "registry.k8s.io/pause:3.10", "--bin", bin}, nil, "give --ref, --bin and --out"},
		{"positional", []string{"--ref", "registry.k8s.io/pause:3.10", "--bin", bin, "--out", out, "extra"}, nil, "unexpected arguments"},
		{"missing binary", []string{"--ref", "registry.k8s.io/pause:3.10", "--bin", bin + ".missing", "--out", out}, nil, "no such file"},
		{"two platforms", []string{"--ref", "registry.k8s.io/pause:3.10", "--bin", bin, "--out", out, "--platform", "linux/amd64,linux/arm64"}, nil, "want one platform"},
		{"windows", []string{"--ref", "registry.k8s.io/pause:3.10", "--bin", bin, "--out", out, "--platform", "windows/amd64"}, nil, "only linux"},
		{"bad ref", []string{"--ref", "registry.k8s.io/Pause", "--bin", bin, "--out", out}, nil, "image reference"},
		{"no out dir", []string{"--ref", "registry.k8s.io/pause:3.10", "--bin", bin, "--out", filepath.Join(out, "missing", "pause.tar")}, nil, "no such file"},
		{"bad SOURCE_DATE_EPOCH", []string{"--ref", "registry.k8s.io/pause:3.10", "--bin", bin, "--out", out}, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, "SOURCE_DATE_EPOCH"},
	} {
		t.Run(c.test, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"single"}, c.args...), &stdout, &stderr, env(c.env))
			require.ErrorContains(t, err, c.want)
			require.NoFileExists(t, out)
		})
	}
}
