package ociimage

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BuildOptions says what to compile and how to label it.
type BuildOptions struct {
	// Dir is where `go build` runs (-C): the repository root, so that go.work applies.
	Dir string
	// Programs to build; DefaultPrograms() if empty.
	Programs []Program
	// Platforms; DefaultPlatforms() if empty.
	Platforms []v1.Platform
	// CABundle is the file copied to /etc/ssl/certs/ca-certificates.crt; HostCABundle if empty.
	CABundle string
	Meta     Meta
	// Env is added to the environment of `go build` (e.g. GOWORK=off).
	Env []string
	// Tags are Go build tags (-tags), e.g. faultinject for the fault tests' processor.
	Tags []string
	// Log receives progress lines and go build's output; nil discards them.
	Log io.Writer
}

// Built is one program's index.
type Built struct {
	Program Program
	Index   v1.ImageIndex
	// Binaries maps "os/arch" to the compiled file (valid until the caller removes WorkDir).
	Binaries map[string]string
}

// Build cross-compiles every program for every platform and assembles one OCI index per
// program. The binaries are written under workDir.
func Build(ctx context.Context, o BuildOptions, workDir string) ([]Built, error) {
	if len(o.Programs) == 0 {
		o.Programs = DefaultPrograms()
	}
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms()
	}
	if o.CABundle == "" {
		o.CABundle = HostCABundle
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w (install Debian's ca-certificates package)", err)
	}
	base, err := BaseLayer(ca, o.Meta)
	if err != nil {
		return nil, err
	}

	out := make([]Built, len(o.Programs))
	for i, p := range o.Programs {
		out[i] = Built{Program: p, Binaries: map[string]string{}}
	}
	perProgram := make([][]PlatformImage, len(o.Programs))
	for _, plat := range o.Platforms {
		dir := filepath.Join(workDir, plat.OS+"_"+plat.Architecture+plat.Variant)
		start := time.Now()
		if err := Compile(ctx, o.Dir, o.Programs, plat, dir, o.Env, o.Tags, logw); err != nil {
			return nil, err
		}
		fmt.Fprintf(logw, "compiled %s for %s in %s\n", programNames(o.Programs), PlatformString(plat), time.Since(start).Round(time.Millisecond))
		for i, p := range o.Programs {
			binPath := filepath.Join(dir, p.Name)
			bin, err := os.ReadFile(binPath)
			if err != nil {
				return nil, err
			}
			bl, err := BinaryLayer(p.Name, bin, o.Meta)
			if err != nil {
				return nil, err
			}
			img, err := Image(p, plat, base, bl, o.Meta)
			if err != nil {
				return nil, err
			}
			out[i].Binaries[PlatformString(plat)] = binPath
			perProgram[i] = append(perProgram[i], PlatformImage{Platform: plat, Image: img})
		}
	}
	for i, p := range o.Programs {
		out[i].Index = Index(perProgram[i], o.Meta.Labels(p))
	}
	return out, nil
}

func programNames(ps []Program) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, "+")
}

// Compile builds static binaries of all programs for one platform into outDir with a single
// `go build` (shared packages compile once): CGO_ENABLED=0, -trimpath, -ldflags "-s -w", and
// the build tags given.
func Compile(ctx context.Context, dir string, programs []Program, plat v1.Platform, outDir string, env, tags []string, log io.Writer) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-C", dir, "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", outDir + string(filepath.Separator)}
	if len(tags) > 0 {
		args = append(args, "-tags="+strings.Join(tags, ","))
	}
	for _, p := range programs {
		if path.Base(p.Package) != p.Name {
			return fmt.Errorf("program %s: package %s must end in /%s", p.Name, p.Package, p.Name)
		}
		args = append(args, p.Package)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture,
		// Baseline instruction sets, whatever the caller's environment says.
		"GOAMD64=v1", "GOARM64=v8.0",
	)
	if plat.Architecture == "arm" && plat.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(plat.Variant, "v"))
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (GOOS=%s GOARCH=%s): %w", strings.Join(args, " "), plat.OS, plat.Architecture, err)
	}
	return nil
}
