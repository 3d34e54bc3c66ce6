package ociimage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DockerAvailable reports why the Docker backend cannot be used (nil when it can): it needs a
// reachable engine (`docker info`) and the buildx plugin.
func DockerAvailable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("no docker CLI")
	}
	if err := exec.CommandContext(ctx, "docker", "info").Run(); err != nil {
		return fmt.Errorf("docker info failed (no Docker engine reachable): %w", err)
	}
	if err := exec.CommandContext(ctx, "docker", "buildx", "version").Run(); err != nil {
		return fmt.Errorf("docker buildx is missing: %w", err)
	}
	return nil
}

// DockerBuildArgs are the arguments of `docker` that build p's Dockerfile (<dir>/<name>/Dockerfile,
// context dir, the repository root) for all platforms and push it under tags. Labels come from
// the Dockerfile's LABEL lines, filled by the VERSION, REVISION and SOURCE build args. Provenance
// and SBOM attestations are off so that the index holds exactly the platform images.
func DockerBuildArgs(dir string, p Program, plats []v1.Platform, tags []name.Tag, m Meta, metadataFile string) []string {
	ps := make([]string, len(plats))
	for i, pl := range plats {
		ps[i] = PlatformString(pl)
	}
	labels := m.Labels(p)
	args := []string{"buildx", "build",
		"--file", filepath.Join(dir, p.Name, "Dockerfile"),
		"--platform", strings.Join(ps, ","),
		"--build-arg", "VERSION=" + labels[LabelVersion],
		"--build-arg", "REVISION=" + labels[LabelRevision],
		"--build-arg", "SOURCE=" + labels[LabelSource],
		"--provenance=false", "--sbom=false",
		"--metadata-file", metadataFile,
		"--push",
	}
	for _, t := range tags {
		args = append(args, "--tag", t.String())
	}
	return append(args, dir)
}

// DockerPush builds and pushes p with `docker buildx build --push` and returns the index digest.
// Docker uses its own login (docker login); credentials are not handed to it by us.
func DockerPush(ctx context.Context, dir string, p Program, plats []v1.Platform, tags []name.Tag, m Meta, log io.Writer) (v1.Hash, error) {
	tmp, err := os.MkdirTemp("", "imagebuild-docker-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(tmp)
	meta := filepath.Join(tmp, "metadata.json")
	cmd := exec.CommandContext(ctx, "docker", DockerBuildArgs(dir, p, plats, tags, m, meta)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return v1.Hash{}, fmt.Errorf("docker buildx build %s: %w", p.Name, err)
	}
	data, err := os.ReadFile(meta)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("docker buildx metadata: %w", err)
	}
	var md struct {
		Digest string `json:"containerimage.digest"`
	}
	if err := json.Unmarshal(data, &md); err != nil {
		return v1.Hash{}, fmt.Errorf("docker buildx metadata: %w", err)
	}
	return v1.NewHash(md.Digest)
}
