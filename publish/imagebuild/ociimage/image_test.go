package ociimage_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keda-demo/keda-demo/publish/imagebuild/imagetest"
	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
	"github.com/keda-demo/keda-demo/publish/imagebuild/registrytest"
)

var testMeta = ociimage.Meta{Version: "0.1.0", Revision: "0123456789abcdef0123456789abcdef01234567", Source: ociimage.DefaultSource}

// tinyPrograms are the two images built from small stand-in mains (testdata/tiny), so that
// these tests do not depend on the real programs; TestRealImages builds those.
func tinyPrograms() []ociimage.Program {
	ps := ociimage.DefaultPrograms()
	ps[0].Package = "example.com/tiny/cmd/app"
	ps[1].Package = "example.com/tiny/cmd/processor"
	return ps
}

var (
	workDir   string
	tinyOnce  sync.Once
	tinyBuilt []ociimage.Built
	tinyErr   error
)

func TestMain(m *testing.M) {
	var err error
	if workDir, err = os.MkdirTemp("", "imagebuild-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

func buildTiny(t *testing.T, sub string) ([]ociimage.Built, error) {
	t.Helper()
	dir, err := filepath.Abs("testdata/tiny")
	if err != nil {
		t.Fatal(err)
	}
	return ociimage.Build(context.Background(), ociimage.BuildOptions{
		Dir: dir, Programs: tinyPrograms(), Meta: testMeta, Env: []string{"GOWORK=off"}, Log: testLog{t},
	}, filepath.Join(workDir, sub))
}

// tinyImages builds the stand-in images once for all tests.
func tinyImages(t *testing.T) []ociimage.Built {
	t.Helper()
	tinyOnce.Do(func() {
		start := time.Now()
		tinyBuilt, tinyErr = buildTiny(t, "tiny")
		t.Logf("built the tiny images in %s", time.Since(start).Round(time.Millisecond))
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyBuilt
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestLayoutHoldsBothImages(t *testing.T) {
	built := tinyImages(t)
	dir := filepath.Join(t.TempDir(), "oci")
	for range 2 { // writing again replaces, not duplicates
		for _, b := range built {
			if err := ociimage.WriteLayout(dir, b.Program.Repository+":0.1.0", b.Index); err != nil {
				t.Fatal(err)
			}
		}
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("layout index.json has %d entries, want 2: %+v", len(im.Manifests), im.Manifests)
	}
	ca := imagetest.HostCABundle(t)
	for i, b := range built {
		d := im.Manifests[i]
		if got, want := d.Annotations[ociimage.RefNameAnnotation], b.Program.Repository+":0.1.0"; got != want {
			t.Errorf("ref name %q, want %q", got, want)
		}
		want, _ := b.Index.Digest()
		if d.Digest != want {
			t.Errorf("%s: layout digest %s, built %s", b.Program.Name, d.Digest, want)
		}
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		imagetest.CheckIndex(t, idx, b.Program, testMeta, ociimage.DefaultPlatforms(), ca)
	}
}

// Same sources, same labels ⇒ same digests (compiled again from the build cache).
func TestBuildIsReproducible(t *testing.T) {
	first := tinyImages(t)
	again, err := buildTiny(t, "again")
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		a, _ := first[i].Index.Digest()
		b, _ := again[i].Index.Digest()
		if a != b {
			t.Errorf("%s: digests differ between two builds: %s and %s", first[i].Program.Name, a, b)
		}
	}
}

// The base layer (CA bundle, passwd, group) is one blob shared by every image.
func TestBaseLayerShared(t *testing.T) {
	seen := map[v1.Hash]int{}
	var images int
	for _, b := range tinyImages(t) {
		im, _ := b.Index.IndexManifest()
		for _, d := range im.Manifests {
			img, err := b.Index.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := img.Manifest()
			seen[m.Layers[0].Digest]++
			images++
		}
	}
	if len(seen) != 1 {
		t.Errorf("base layers: %v, want one shared by all %d images", seen, images)
	}
}

func pushAll(t *testing.T, r *registrytest.Registry, creds ociimage.Credentials, built []ociimage.Built, tags []string) ([]v1.Hash, error) {
	t.Helper()
	p := ociimage.Pusher{Creds: creds}
	var repos []name.Repository
	for _, b := range built {
		repo, err := ociimage.Repository(r.Host+"/team", b.Program, false)
		if err != nil {
			t.Fatal(err)
		}
		repos = append(repos, repo)
	}
	if err := p.CheckPush(context.Background(), repos...); err != nil {
		return nil, err
	}
	var out []v1.Hash
	for i, b := range built {
		var refs []name.Tag
		for _, tag := range tags {
			refs = append(refs, repos[i].Tag(tag))
		}
		d, err := p.Push(context.Background(), b.Index, refs)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func envCreds(t *testing.T, user, pass string) ociimage.Credentials {
	t.Helper()
	c, err := ociimage.CredentialsFromEnv(func(k string) string {
		return map[string]string{ociimage.EnvUsername: user, ociimage.EnvPassword: pass}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPushPullRoundTrip(t *testing.T) {
	r := registrytest.Start(t)
	built := tinyImages(t)
	tags := []string{"0.1.0", "0.1.0-0123456"}
	start := time.Now()
	digests, err := pushAll(t, r, envCreds(t, r.Username, r.Password), built, tags)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed both images in %s", time.Since(start).Round(time.Millisecond))

	if got := r.Catalog(t); !slices.Equal(got, []string{"team/keda-demo-app", "team/keda-demo-processor"}) {
		t.Errorf("catalog %v", got)
	}
	ca := imagetest.HostCABundle(t)
	auth := remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password})
	for i, b := range built {
		repo := r.Host + "/team/" + b.Program.Repository
		got := r.Tags(t, repo)
		slices.Sort(got)
		if !slices.Equal(got, tags) {
			t.Errorf("%s: tags %v, want %v (never latest)", repo, got, tags)
		}
		want, _ := b.Index.Digest()
		if digests[i] != want {
			t.Errorf("Push returned %s, want %s", digests[i], want)
		}
		for _, tag := range tags {
			ref, err := name.NewTag(repo + ":" + tag)
			if err != nil {
				t.Fatal(err)
			}
			pulled, err := remote.Index(ref, auth)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := pulled.Digest(); d != want {
				t.Errorf("%s: pulled digest %s, pushed %s", ref, d, want)
			}
		}
		// Pull the whole index back by digest (every blob is verified against its digest on
		// the way) and check it like the local one.
		byDigest, err := name.ParseReference(repo + "@" + want.String())
		if err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Index(byDigest, auth)
		if err != nil {
			t.Fatal(err)
		}
		imagetest.CheckIndex(t, pulled, b.Program, testMeta, ociimage.DefaultPlatforms(), ca)
	}
}

func TestWrongPasswordPushesNothing(t *testing.T) {
	r := registrytest.Start(t)
	built := tinyImages(t)
	const wrong = "not-the-password-9f3c"
	_, err := pushAll(t, r, envCreds(t, r.Username, wrong), built, []string{"0.1.0"})
	if !errors.Is(err, ociimage.ErrAuth) {
		t.Fatalf("push with a wrong password: %v, want ErrAuth", err)
	}
	msg := err.Error()
	t.Logf("message: %s", msg)
	for _, want := range []string{"401", "REGISTRY_USERNAME/REGISTRY_PASSWORD", r.Host} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	if strings.Contains(msg, wrong) {
		t.Error("message shows the password")
	}
	// Push directly too (skipping the check): the registry still refuses every blob.
	repo, _ := ociimage.Repository(r.Host+"/team", built[0].Program, false)
	if _, err := (ociimage.Pusher{Creds: envCreds(t, r.Username, wrong)}).Push(context.Background(), built[0].Index, []name.Tag{repo.Tag("0.1.0")}); !errors.Is(err, ociimage.ErrAuth) {
		t.Errorf("direct push with a wrong password: %v", err)
	}
	if got := r.Catalog(t); len(got) != 0 {
		t.Errorf("registry holds %v after failed pushes, want nothing", got)
	}
}

func TestNoCredentialsFailsClearly(t *testing.T) {
	r := registrytest.Start(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // an empty Docker config: anonymous
	creds, err := ociimage.CredentialsFromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	_, err = pushAll(t, r, creds, tinyImages(t), []string{"0.1.0"})
	if !errors.Is(err, ociimage.ErrAuth) || !strings.Contains(err.Error(), "docker login") {
		t.Fatalf("anonymous push: %v", err)
	}
	if got := r.Catalog(t); len(got) != 0 {
		t.Errorf("registry holds %v", got)
	}
}

// Without REGISTRY_USERNAME/REGISTRY_PASSWORD the user's Docker config is used (here one the
// test writes, as `docker login` would).
func TestDockerConfigCredentials(t *testing.T) {
	r := registrytest.Start(t)
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"`+r.Host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	creds, err := ociimage.CredentialsFromEnv(func(string) string { return "" })
	if err != nil || creds.FromEnv {
		t.Fatalf("credentials: %+v %v", creds, err)
	}
	built := tinyImages(t)
	if _, err := pushAll(t, r, creds, built[:1], []string{"0.1.0"}); err != nil {
		t.Fatal(err)
	}
	if got := r.Tags(t, r.Host+"/team/keda-demo-app"); !slices.Equal(got, []string{"0.1.0"}) {
		t.Errorf("tags %v", got)
	}
}

func TestCredentialsFromEnvNeedsBoth(t *testing.T) {
	_, err := ociimage.CredentialsFromEnv(func(k string) string {
		if k == ociimage.EnvUsername {
			return "someone"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "REGISTRY_PASSWORD") {
		t.Fatalf("only a username: %v", err)
	}
}

// TestRealImages builds the real app and processor from the workspace and checks them.
func TestRealImages(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	var programs []ociimage.Program
	for _, p := range ociimage.DefaultPrograms() {
		dir := strings.TrimPrefix(p.Package, "github.com/keda-demo/keda-demo/")
		if m, _ := filepath.Glob(filepath.Join(root, dir, "*.go")); len(m) == 0 {
			t.Logf("%s has no Go files yet: not built", dir)
			continue
		}
		programs = append(programs, p)
	}
	if len(programs) == 0 {
		t.Skip("skipping: neither main package exists yet")
	}
	start := time.Now()
	built, err := ociimage.Build(context.Background(), ociimage.BuildOptions{Dir: root, Programs: programs, Meta: testMeta, Log: testLog{t}}, filepath.Join(workDir, "real"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built the real images in %s", time.Since(start).Round(time.Millisecond))
	ca := imagetest.HostCABundle(t)
	for _, b := range built {
		imagetest.CheckIndex(t, b.Index, b.Program, testMeta, ociimage.DefaultPlatforms(), ca)
		im, _ := b.Index.IndexManifest()
		for _, d := range im.Manifests {
			img, _ := b.Index.Image(d.Digest)
			m, _ := img.Manifest()
			size := m.Config.Size
			for _, l := range m.Layers {
				size += l.Size
			}
			t.Logf("%s %s: %.2f MiB compressed", b.Program.Repository, ociimage.PlatformString(*d.Platform), float64(size)/(1<<20))
		}
	}
}

func TestReadAppVersion(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ chart, want, err string }{
		{"apiVersion: v2\nname: keda-demo\nversion: 0.1.0\nappVersion: \"0.1.0\"\n", "0.1.0", ""},
		{"appVersion: '1.2.3' # the images\n", "1.2.3", ""},
		{"appVersion: 2.0.0\n", "2.0.0", ""},
		{"dependencies:\n  - name: x\n    appVersion: 9.9.9\n", "", "has no appVersion"},
		{"appVersion: \"\"\n", "", "has no appVersion"},
	} {
		f := filepath.Join(dir, "Chart.yaml")
		if err := os.WriteFile(f, []byte(c.chart), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ociimage.ReadAppVersion(f)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: got %q, %v; want %q, %q", c.chart, got, err, c.want, c.err)
		}
	}
	if _, err := ociimage.ReadAppVersion(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "TAG=") {
		t.Errorf("missing chart: %v", err)
	}
}

func TestTags(t *testing.T) {
	rev := ociimage.Revision{Full: "abcdef1234", Short: "abcdef1"}
	got, err := ociimage.Tags("0.1.0", rev)
	if err != nil || !slices.Equal(got, []string{"0.1.0", "0.1.0-abcdef1"}) {
		t.Errorf("Tags: %v %v", got, err)
	}
	rev.Dirty = true
	if got, _ := ociimage.Tags("0.1.0", rev); got[1] != "0.1.0-abcdef1-dirty" {
		t.Errorf("dirty: %v", got)
	}
	for _, bad := range []string{"latest", "1.0.0+build", "-x", ""} {
		if _, err := ociimage.Tags(bad, rev); err == nil {
			t.Errorf("tag %q accepted", bad)
		}
	}
}

func TestRepositoryAndHelmArgs(t *testing.T) {
	ps := ociimage.DefaultPrograms()
	for _, bad := range []string{"https://r.example.com", "team", ""} {
		if _, err := ociimage.Repository(bad, ps[0], false); err == nil {
			t.Errorf("registry %q accepted", bad)
		}
	}
	repo, err := ociimage.Repository("r.example.com/team/", ps[0], false)
	if err != nil || repo.Name() != "r.example.com/team/keda-demo-app" {
		t.Errorf("repository %v %v", repo, err)
	}
	d1, _ := v1.NewHash("sha256:" + strings.Repeat("1", 64))
	d2, _ := v1.NewHash("sha256:" + strings.Repeat("2", 64))
	got := ociimage.HelmArgs("r.example.com/team/", []ociimage.Pushed{{Program: ps[0], Tag: "0.1.0-abc1234", Digest: d1}, {Program: ps[1], Tag: "0.1.0-abc1234", Digest: d2}})
	want := "--set global.kedaDemo.imageRegistry=r.example.com/team --set app.image.tag=0.1.0-abc1234 --set processor.image.tag=0.1.0-abc1234" +
		" --set app.image.digest=" + d1.String() + " --set processor.image.digest=" + d2.String()
	if got != want {
		t.Errorf("HelmArgs:\n%s\nwant\n%s", got, want)
	}
}

func TestDockerBuildArgs(t *testing.T) {
	p := ociimage.DefaultPrograms()[0]
	repo, _ := ociimage.Repository("r.example.com/team", p, false)
	args := ociimage.DockerBuildArgs("/src", p, ociimage.DefaultPlatforms(), []name.Tag{repo.Tag("0.1.0"), repo.Tag("0.1.0-abc1234")}, testMeta, "/tmp/md.json")
	want := "buildx build --file /src/app/Dockerfile --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 --build-arg REVISION=" + testMeta.Revision +
		" --build-arg SOURCE=" + ociimage.DefaultSource + " --provenance=false --sbom=false --metadata-file /tmp/md.json --push" +
		" --tag r.example.com/team/keda-demo-app:0.1.0 --tag r.example.com/team/keda-demo-app:0.1.0-abc1234 /src"
	if got := strings.Join(args, " "); got != want {
		t.Errorf("docker args:\n%s\nwant\n%s", got, want)
	}
}

// TestDockerfilesMatch keeps app/Dockerfile and processor/Dockerfile (the Docker backend, which
// cannot run here: no engine) in step with the Go backend: same base, files, config and labels.
func TestDockerfilesMatch(t *testing.T) {
	for _, p := range ociimage.DefaultPrograms() {
		data, err := os.ReadFile(filepath.Join("..", "..", "..", p.Name, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		df := string(data)
		// Instructions, with continuation lines joined.
		lines := strings.Split(strings.ReplaceAll(df, "\\\n", " "), "\n")
		has := func(prefix string) bool {
			return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), prefix) })
		}
		for _, want := range []string{
			"FROM --platform=$BUILDPLATFORM golang:1.26 AS build",
			"ARG TARGETOS TARGETARCH",
			"FROM scratch",
			"COPY --from=build " + ociimage.HostCABundle + " " + ociimage.CABundlePath,
			"COPY --from=build /out/etc/passwd /out/etc/group /etc/",
			"COPY --from=build /out/usr/local/bin/" + p.Name + " /usr/local/bin/" + p.Name,
			"USER " + ociimage.User,
			"WORKDIR /",
			`ENTRYPOINT ["/usr/local/bin/` + p.Name + `"]`,
			"ARG VERSION=dev REVISION=unknown SOURCE=" + ociimage.DefaultSource,
		} {
			if !has(want) {
				t.Errorf("%s/Dockerfile lacks %q", p.Name, want)
			}
		}
		if got := strings.Count(df, "\nFROM "); got != 2 {
			t.Errorf("%s/Dockerfile: %d stages, want 2", p.Name, got)
		}
		var exposed []string
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "EXPOSE" {
				exposed = append(exposed, f[1:]...)
			}
		}
		if !slices.Equal(exposed, p.ExposedPorts) {
			t.Errorf("%s/Dockerfile exposes %v, want %v", p.Name, exposed, p.ExposedPorts)
		}
		for k, v := range map[string]string{
			ociimage.LabelSource: "$SOURCE", ociimage.LabelRevision: "$REVISION", ociimage.LabelVersion: "$VERSION", ociimage.LabelTitle: p.Repository,
		} {
			if !regexp.MustCompile(`(?m)(LABEL|^)\s+` + regexp.QuoteMeta(k+"="+v) + `(\s|$)`).MatchString(df) {
				t.Errorf("%s/Dockerfile: no label %s=%s", p.Name, k, v)
			}
		}
		// The passwd and group files are printf'd with the Go backend's exact bytes.
		for file, want := range map[string]string{"passwd": ociimage.Passwd, "group": ociimage.Group} {
			m := regexp.MustCompile(`printf '([^']*)' > /out/etc/` + file).FindStringSubmatch(df)
			if m == nil {
				t.Errorf("%s/Dockerfile: no printf of /etc/%s", p.Name, file)
				continue
			}
			if got := strings.ReplaceAll(m[1], `\n`, "\n"); got != want {
				t.Errorf("%s/Dockerfile: /etc/%s is %q, want %q", p.Name, file, got, want)
			}
		}
		if !strings.Contains(df, "go build -trimpath -buildvcs=false -ldflags=\"-s -w\"") || !strings.Contains(df, "CGO_ENABLED=0") {
			t.Errorf("%s/Dockerfile: not the Go backend's build flags", p.Name)
		}
	}
	ignore, err := os.ReadFile("../../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"!app", "!processor", "!messaging"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

// Build tags reach go build: the tiny processor says which build it is (its faultinject.go is
// compiled only with -tags faultinject), for the host's platform so that it can run here.
func TestCompileWithTags(t *testing.T) {
	dir, err := filepath.Abs("testdata/tiny")
	if err != nil {
		t.Fatal(err)
	}
	host := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	for _, c := range []struct {
		tags []string
		want string
	}{{nil, "default"}, {[]string{"faultinject"}, "faultinject"}} {
		out := t.TempDir()
		if err := ociimage.Compile(context.Background(), dir, tinyPrograms(), host, out, []string{"GOWORK=off"}, c.tags, testLog{t}); err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command(filepath.Join(out, "processor")).Output()
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(got)); len(f) == 0 || f[len(f)-1] != c.want {
			t.Errorf("tags %v: the processor printed %q, want a %s build", c.tags, got, c.want)
		}
	}
}
