package ociimage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ReadAppVersion returns the top-level appVersion of a Chart.yaml.
func ReadAppVersion(chartYAML string) (string, error) {
	data, err := os.ReadFile(chartYAML)
	if err != nil {
		return "", fmt.Errorf("reading the image tag from appVersion in %s: %w (or pass a tag: TAG=... / --tag)", chartYAML, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "appVersion:") { // top level only: no indentation
			continue
		}
		v := strings.TrimSpace(strings.TrimPrefix(line, "appVersion:"))
		if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if v == "" {
			break
		}
		return v, nil
	}
	return "", fmt.Errorf("%s has no appVersion: add `appVersion: \"0.1.0\"` to the chart, or pass a tag (TAG=... / --tag)", chartYAML)
}

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidateTag rejects what a registry would refuse, and `latest`, which is never pushed.
func ValidateTag(tag string) error {
	if tag == "latest" {
		return fmt.Errorf("tag %q: keda-demo never pushes latest; use a version", tag)
	}
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("tag %q: a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -", tag)
	}
	return nil
}

// Revision is the commit the images are built from.
type Revision struct {
	Full, Short string
	Dirty       bool // tracked files differ from the commit
}

// GitRevision asks git about the work tree at dir.
func GitRevision(ctx context.Context, dir string) (Revision, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--verify", "HEAD").Output()
	if err != nil {
		return Revision{}, fmt.Errorf("git rev-parse HEAD in %s: %w (no git checkout or no commit yet? pass --revision)", dir, err)
	}
	full := strings.TrimSpace(string(out))
	out, err = exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return Revision{}, fmt.Errorf("git rev-parse --short HEAD: %w", err)
	}
	rev := Revision{Full: full, Short: strings.TrimSpace(string(out))}
	out, err = exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return Revision{}, fmt.Errorf("git status: %w", err)
	}
	rev.Dirty = len(bytes.TrimSpace(out)) > 0
	return rev, nil
}

// RevisionFromString takes a commit given by hand; its short form is its first 7 characters.
func RevisionFromString(s string) (Revision, error) {
	if !regexp.MustCompile(`^[0-9a-f]{7,64}$`).MatchString(s) {
		return Revision{}, fmt.Errorf("revision %q: want a hex git commit", s)
	}
	return Revision{Full: s, Short: s[:7]}, nil
}

// Tags are the tags pushed for version at rev: "<version>" (what the chart pulls by default)
// and "<version>-<short sha>", with "-dirty" when the work tree has uncommitted changes.
// The second one is the one to deploy: it changes with every commit.
func Tags(version string, rev Revision) ([]string, error) {
	if err := ValidateTag(version); err != nil {
		return nil, err
	}
	sha := version + "-" + rev.Short
	if rev.Dirty {
		sha += "-dirty"
	}
	if err := ValidateTag(sha); err != nil {
		return nil, err
	}
	return []string{version, sha}, nil
}

// Repository is <registry>/<repository>, e.g. registry.example.com/team/keda-demo-app.
func Repository(registry string, p Program, insecure bool) (name.Repository, error) {
	if strings.Contains(registry, "://") {
		return name.Repository{}, fmt.Errorf("REGISTRY %q: give host[:port][/namespace], without a scheme", registry)
	}
	registry = strings.TrimSuffix(registry, "/")
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(registry+"/"+p.Repository, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("REGISTRY %q: %w", registry, err)
	}
	if host := strings.SplitN(registry, "/", 2)[0]; !strings.ContainsAny(host, ".:") && host != "localhost" {
		return name.Repository{}, fmt.Errorf("REGISTRY %q: start with the registry host (e.g. docker.io/%s, ghcr.io/%s, 127.0.0.1:5000)", registry, registry, registry)
	}
	return repo, nil
}

// Pushed is one pushed image, for HelmArgs.
type Pushed struct {
	Program Program
	Tag     string
	Digest  v1.Hash
}

// HelmArgs are the --set arguments that install exactly these images with the umbrella chart.
// The value keys belong to the chart (global.kedaDemo.imageRegistry, <name>.image.tag and
// <name>.image.digest).
func HelmArgs(registry string, pushed []Pushed) string {
	args := []string{"--set", "global.kedaDemo.imageRegistry=" + strings.TrimSuffix(registry, "/")}
	for _, p := range pushed {
		args = append(args, "--set", p.Program.Name+".image.tag="+p.Tag)
	}
	for _, p := range pushed {
		if p.Digest != (v1.Hash{}) {
			args = append(args, "--set", p.Program.Name+".image.digest="+p.Digest.String())
		}
	}
	return strings.Join(args, " ")
}
