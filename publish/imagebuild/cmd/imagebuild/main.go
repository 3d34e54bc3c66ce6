// Command imagebuild builds keda-demo's two images (app and processor, linux/amd64 + linux/arm64,
// FROM scratch) and pushes them to a registry and/or writes them to an OCI layout.
//
//	go run ./publish/imagebuild/cmd/imagebuild --registry registry.example.com/team
//
// Two backends: "go" compiles the programs and assembles the images with go-containerregistry
// (no Docker needed); "docker" runs `docker buildx build --push` with app/Dockerfile and
// processor/Dockerfile. "auto" (the default) takes docker when an engine answers `docker info`,
// buildx is there, and the credentials are not in REGISTRY_USERNAME/REGISTRY_PASSWORD (handing
// those to Docker would mean writing them into its config).
//
// Progress goes to stderr. Stdout gets one line: the helm --set arguments that install exactly
// the pushed images, e.g. `helm upgrade --install keda-demo ./ $(go run ./publish/imagebuild/cmd/imagebuild ...)`.
//
// `imagebuild single` writes the image of one static binary as an OCI archive (a tar that
// `ctr images import` takes); the e2e cluster's pod sandbox image is made so:
//
//	go run ./publish/imagebuild/cmd/imagebuild single --ref registry.k8s.io/pause:3.10 --bin ./pause --out pause.tar
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "imagebuild:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	registry, tag, layoutDir, backend, platforms, chart, root, revision, source, caBundle string
	appPkg, processorPkg                                                                  string
	tags                                                                                  string
	insecure                                                                              bool
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.registry, "registry", "", "push to `host[:port][/namespace]` (images <registry>/keda-demo-app and <registry>/keda-demo-processor)")
	fs.StringVar(&o.tag, "tag", "", "version tag (default: appVersion of the chart); <tag>-<git short sha> is pushed too")
	fs.StringVar(&o.layoutDir, "oci-layout", "", "also write both indexes into the OCI layout at `dir` (go backend)")
	fs.StringVar(&o.backend, "backend", "auto", "auto, go or docker")
	fs.StringVar(&o.platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	fs.StringVar(&o.chart, "chart", "", "Chart.yaml to read appVersion from (default <root>/Chart.yaml)")
	fs.StringVar(&o.root, "root", "", "repository root, where go build runs (default: the directory of go.work)")
	fs.StringVar(&o.revision, "revision", "", "git commit for the labels and tag (default: git rev-parse HEAD)")
	fs.StringVar(&o.source, "source", ociimage.DefaultSource, "org.opencontainers.image.source label")
	fs.StringVar(&o.caBundle, "ca-bundle", ociimage.HostCABundle, "CA bundle copied into the images (Debian's ca-certificates)")
	fs.StringVar(&o.appPkg, "app-package", ociimage.DefaultPrograms()[0].Package, "main package of the app image")
	fs.StringVar(&o.processorPkg, "processor-package", ociimage.DefaultPrograms()[1].Package, "main package of the processor image")
	fs.StringVar(&o.tags, "tags", "", "comma-separated Go build `tags` (faultinject: the fault tests' processor); only with --oci-layout and without --registry, so such an image is never pushed")
	fs.BoolVar(&o.insecure, "insecure", false, "talk plain HTTP to the registry (loopback and private addresses already do)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.registry == "" && o.layoutDir == "" {
		return o, errors.New("REGISTRY is empty: give --registry host[:port][/namespace] (go tool task images REGISTRY=...) and/or --oci-layout DIR")
	}
	if o.tags != "" && (o.registry != "" || o.layoutDir == "") {
		return o, fmt.Errorf("--tags %q builds a test image: give --oci-layout and no --registry (it is never pushed)", o.tags)
	}
	switch o.backend {
	case "auto", "go", "docker":
	default:
		return o, fmt.Errorf("--backend %q: want auto, go or docker", o.backend)
	}
	return o, nil
}

func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOWORK").Output()
	if err == nil {
		if w := strings.TrimSpace(string(out)); w != "" && w != "off" {
			return filepath.Dir(w), nil
		}
	}
	return os.Getwd()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "single" {
		return runSingle(args[1:], stderr, getenv)
	}
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if o.root == "" {
		if o.root, err = repoRoot(ctx); err != nil {
			return err
		}
	}
	if o.chart == "" {
		o.chart = filepath.Join(o.root, "Chart.yaml")
	}
	plats, err := ociimage.ParsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	programs := ociimage.DefaultPrograms()
	programs[0].Package, programs[1].Package = o.appPkg, o.processorPkg

	version := o.tag
	if version == "" {
		if version, err = ociimage.ReadAppVersion(o.chart); err != nil {
			return err
		}
	}
	var rev ociimage.Revision
	if o.revision != "" {
		rev, err = ociimage.RevisionFromString(o.revision)
	} else {
		rev, err = ociimage.GitRevision(ctx, o.root)
	}
	if err != nil {
		return err
	}
	tags, err := ociimage.Tags(version, rev)
	if err != nil {
		return err
	}
	meta := ociimage.Meta{Version: version, Revision: rev.Full, Source: o.source}
	if meta.Created, err = sourceDateEpoch(getenv); err != nil {
		return err
	}

	// Where the images go.
	repos := make([]name.Repository, len(programs))
	var creds ociimage.Credentials
	if o.registry != "" {
		for i, p := range programs {
			if repos[i], err = ociimage.Repository(o.registry, p, o.insecure); err != nil {
				return err
			}
		}
		if creds, err = ociimage.CredentialsFromEnv(getenv); err != nil {
			return err
		}
	}

	backend := o.backend
	if backend == "auto" {
		backend = "go"
		if o.registry != "" && o.layoutDir == "" && !creds.FromEnv {
			if why := ociimage.DockerAvailable(ctx); why == nil {
				backend = "docker"
			} else {
				fmt.Fprintf(stderr, "backend: go (Docker backend not used: %v)\n", why)
			}
		}
	}
	if backend == "docker" {
		switch {
		case o.registry == "":
			return errors.New("the docker backend only pushes: give --registry, or use --backend go for --oci-layout")
		case o.layoutDir != "":
			return errors.New("--oci-layout needs --backend go")
		case creds.FromEnv:
			return fmt.Errorf("the docker backend pushes with your docker login; unset %s/%s or use --backend go", ociimage.EnvUsername, ociimage.EnvPassword)
		}
	}

	pusher := ociimage.Pusher{Creds: creds}
	if o.registry != "" {
		start := time.Now()
		if err := pusher.CheckPush(ctx, repos...); err != nil {
			return fmt.Errorf("%w\nnothing was built or pushed", err)
		}
		fmt.Fprintf(stderr, "credentials from %s may push to %s (checked in %s)\n", creds.Source, strings.TrimSuffix(o.registry, "/"), time.Since(start).Round(time.Millisecond))
	}

	var pushed []ociimage.Pushed
	if backend == "docker" {
		fmt.Fprintln(stderr, "backend: docker buildx")
		for i, p := range programs {
			start := time.Now()
			refs := tagRefs(repos[i], tags)
			d, err := ociimage.DockerPush(ctx, o.root, p, plats, refs, meta, stderr)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "pushed %s@%s as %s in %s\n", repos[i], d, strings.Join(tags, ", "), time.Since(start).Round(time.Millisecond))
			pushed = append(pushed, ociimage.Pushed{Program: p, Tag: tags[len(tags)-1], Digest: d})
		}
	} else {
		work, err := os.MkdirTemp("", "imagebuild-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		start := time.Now()
		built, err := ociimage.Build(ctx, ociimage.BuildOptions{Dir: o.root, Programs: programs, Platforms: plats, CABundle: o.caBundle, Meta: meta, Log: stderr, Tags: splitTags(o.tags)}, work)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "built %d images in %s\n", len(built), time.Since(start).Round(time.Millisecond))
		for i, b := range built {
			d, err := b.Index.Digest()
			if err != nil {
				return err
			}
			if err := describe(stderr, b); err != nil {
				return err
			}
			if o.layoutDir != "" {
				ref := b.Program.Repository + ":" + tags[0]
				if o.registry != "" {
					ref = repos[i].Tag(tags[0]).String()
				}
				if err := ociimage.WriteLayout(o.layoutDir, ref, b.Index); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "wrote %s (%s) to OCI layout %s\n", ref, d, o.layoutDir)
			}
			if o.registry != "" {
				start := time.Now()
				if _, err := pusher.Push(ctx, b.Index, tagRefs(repos[i], tags)); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "pushed %s@%s as %s in %s\n", repos[i], d, strings.Join(tags, ", "), time.Since(start).Round(time.Millisecond))
			}
			pushed = append(pushed, ociimage.Pushed{Program: b.Program, Tag: tags[len(tags)-1], Digest: d})
		}
	}
	if o.registry != "" {
		fmt.Fprintln(stderr, "install these images with:")
		fmt.Fprintln(stdout, ociimage.HelmArgs(o.registry, pushed))
	}
	return nil
}

func tagRefs(repo name.Repository, tags []string) []name.Tag {
	out := make([]name.Tag, len(tags))
	for i, t := range tags {
		out[i] = repo.Tag(t)
	}
	return out
}

// describe prints each platform image's compressed size (config + layers, as pulled).
func describe(w io.Writer, b ociimage.Built) error {
	im, err := b.Index.IndexManifest()
	if err != nil {
		return err
	}
	for _, desc := range im.Manifests {
		img, err := b.Index.Image(desc.Digest)
		if err != nil {
			return err
		}
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		size := m.Config.Size
		for _, l := range m.Layers {
			size += l.Size
		}
		fmt.Fprintf(w, "  %s %s: %s compressed (%s)\n", b.Program.Repository, platformOf(desc), mib(size), desc.Digest)
	}
	return nil
}

func platformOf(d v1.Descriptor) string {
	if d.Platform == nil {
		return "?"
	}
	return ociimage.PlatformString(*d.Platform)
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// sourceDateEpoch is the images' timestamp from SOURCE_DATE_EPOCH (zero, i.e. the epoch, if unset).
func sourceDateEpoch(getenv func(string) string) (time.Time, error) {
	s := getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(sec, 0), nil
}

// runSingle is `imagebuild single`: one static binary -> a single-layer OCI archive at --out.
func runSingle(args []string, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("imagebuild single", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ref := fs.String("ref", "", "full image `reference` the archive names, e.g. registry.k8s.io/pause:3.10")
	bin := fs.String("bin", "", "static binary; becomes /<basename> and the entrypoint")
	out := fs.String("out", "", "OCI archive to write (a tar of an OCI image layout)")
	// The binary is usually built by `go build` on this machine for this machine.
	platform := fs.String("platform", "linux/"+runtime.GOARCH, "the binary's `os/arch`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("single: unexpected arguments %q", fs.Args())
	case *ref == "" || *bin == "" || *out == "":
		return errors.New("single: give --ref, --bin and --out")
	}
	plats, err := ociimage.ParsePlatforms(*platform)
	if err != nil {
		return fmt.Errorf("single: %w", err)
	}
	if len(plats) != 1 {
		return fmt.Errorf("single: --platform %q: want one platform", *platform)
	}
	created, err := sourceDateEpoch(getenv)
	if err != nil {
		return fmt.Errorf("single: %w", err)
	}
	data, err := os.ReadFile(*bin)
	if err != nil {
		return fmt.Errorf("single: %w", err)
	}
	img, err := ociimage.SingleBinaryImage(filepath.Base(*bin), data, plats[0], ociimage.Meta{Created: created})
	if err != nil {
		return fmt.Errorf("single: %w", err)
	}
	if err := writeFileAtomically(*out, func(w io.Writer) error { return ociimage.WriteArchive(w, *ref, img) }); err != nil {
		return fmt.Errorf("single: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("single: digest of %s: %w", *ref, err)
	}
	fmt.Fprintf(stderr, "wrote %s (%s, %s) to %s\n", *ref, d, ociimage.PlatformString(plats[0]), *out)
	return nil
}

// writeFileAtomically writes path through a temporary file in the same directory: a cache that
// trusts an existing non-empty file (tests/e2e/run.sh's pause.tar) never finds half of one.
func writeFileAtomically(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, there is nothing left to remove
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// splitTags: "a, b" -> [a b]; "" -> nil.
func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
