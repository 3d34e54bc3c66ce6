// Package ociimage builds the keda-demo container images without Docker: it cross-compiles the Go
// programs, lays them FROM scratch next to a CA bundle and passwd/group entries for user 65532,
// assembles a linux/amd64 + linux/arm64 OCI index, writes it to an OCI layout and pushes it with
// go-containerregistry. It also writes the image of a single static binary as an OCI archive
// (the e2e cluster's pause image, SingleBinaryImage and WriteArchive).
//
// app/Dockerfile and processor/Dockerfile (the Docker backend) produce the same file list and
// config; TestDockerfilesMatch keeps the two in step.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The fixed parts of every image. The Dockerfiles repeat these values.
const (
	// UID and GID of the nonroot user the programs run as.
	UID = 65532
	// User is the config's User field.
	User = "65532:65532"
	// BinDir holds the program, which is the ENTRYPOINT.
	BinDir = "/usr/local/bin"
	// CABundlePath is where Go's crypto/x509 looks first on linux.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	// HostCABundle is Debian's ca-certificates bundle, copied into the image.
	HostCABundle = "/etc/ssl/certs/ca-certificates.crt"
	// DefaultEnvPath is the PATH BuildKit puts into images built FROM scratch; set here too so
	// that both backends give the same config.
	DefaultEnvPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	// Passwd and Group are /etc/passwd and /etc/group (the Dockerfiles printf the same bytes).
	Passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"
	Group  = "root:x:0:\nnonroot:x:65532:\n"

	// OCI label / annotation keys.
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelTitle    = "org.opencontainers.image.title"

	// DefaultSource is the org.opencontainers.image.source label.
	DefaultSource = "https://github.com/keda-demo/keda-demo"
)

// Program is one image: a Go main package and where it goes.
type Program struct {
	// Name is the binary's name (/usr/local/bin/<Name>) and must be the last element of
	// Package, since `go build -o dir/` names binaries that way.
	Name string
	// Package is the main package's import path, built from the build directory.
	Package string
	// Repository is the image repository's last element, e.g. keda-demo-app.
	Repository string
	// ExposedPorts such as "8080/tcp".
	ExposedPorts []string
}

// Entrypoint is the image's ENTRYPOINT.
func (p Program) Entrypoint() []string { return []string{path.Join(BinDir, p.Name)} }

// DefaultPrograms are keda-demo's two images.
func DefaultPrograms() []Program {
	return []Program{
		{Name: "app", Package: "github.com/keda-demo/keda-demo/app/cmd/app", Repository: "keda-demo-app", ExposedPorts: []string{"8080/tcp"}},
		{Name: "processor", Package: "github.com/keda-demo/keda-demo/processor/cmd/processor", Repository: "keda-demo-processor"},
	}
}

// DefaultPlatforms are the platforms of every index.
func DefaultPlatforms() []v1.Platform {
	return []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
}

// Meta is what the labels say.
type Meta struct {
	Version  string // the tag, usually Chart.yaml's appVersion
	Revision string // full git commit
	Source   string // repository URL
	// Created is the config's and the layers' timestamp; zero means the Unix epoch, which keeps
	// images reproducible (same sources ⇒ same digests).
	Created time.Time
}

// Labels are the image config's labels (and the index's annotations).
func (m Meta) Labels(p Program) map[string]string {
	src := m.Source
	if src == "" {
		src = DefaultSource
	}
	return map[string]string{
		LabelSource:   src,
		LabelRevision: m.Revision,
		LabelVersion:  m.Version,
		LabelTitle:    p.Repository,
	}
}

func (m Meta) created() time.Time {
	if m.Created.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return m.Created.UTC().Truncate(time.Second)
}

// file is one entry of a layer's tar.
type file struct {
	name string // without leading slash; a trailing slash marks a directory
	mode int64
	data []byte
}

// writeTar writes files as a reproducible tar: root-owned entries, all with the same mtime, in
// the given order.
func writeTar(w io.Writer, files []file, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		if f.name[len(f.name)-1] == '/' {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar header of %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("tar entry %s: %w", f.name, err)
		}
	}
	return tw.Close()
}

// layer builds a gzip-compressed, reproducible tar layer and compresses it once:
// go-containerregistry uses already-compressed input as is.
func layer(files []file, mtime time.Time) (v1.Layer, error) {
	var tbuf bytes.Buffer
	if err := writeTar(&tbuf, files, mtime); err != nil {
		return nil, err
	}
	var gbuf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gbuf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tbuf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gz := gbuf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// BaseLayer holds what every image shares: the CA bundle and passwd/group. It is the same blob
// in both images and on both platforms, so a registry stores it once.
func BaseLayer(caBundle []byte, m Meta) (v1.Layer, error) {
	if len(caBundle) == 0 {
		return nil, fmt.Errorf("empty CA bundle")
	}
	return layer([]file{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(Group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(Passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caBundle},
	}, m.created())
}

// BinaryLayer holds /usr/local/bin/<name>.
func BinaryLayer(name string, binary []byte, m Meta) (v1.Layer, error) {
	return layer([]file{
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: "usr/local/bin/" + name, mode: 0o755, data: binary},
	}, m.created())
}

// Image assembles one platform's image of p.
func Image(p Program, plat v1.Platform, base, bin v1.Layer, m Meta) (v1.Image, error) {
	ports := map[string]struct{}{}
	for _, port := range p.ExposedPorts {
		ports[port] = struct{}{}
	}
	if len(ports) == 0 {
		ports = nil
	}
	created := v1.Time{Time: m.created()}
	cfg := v1.Config{
		Entrypoint:   p.Entrypoint(),
		Env:          []string{DefaultEnvPath},
		User:         User,
		WorkingDir:   "/",
		ExposedPorts: ports,
		Labels:       m.Labels(p),
	}
	return ociImage(plat, m, cfg,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "imagebuild: CA bundle, /etc/passwd, /etc/group (nonroot 65532)"}},
		mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "imagebuild: " + path.Join(BinDir, p.Name)}},
	)
}

// ociImage is an OCI (not Docker) image of plat with cfg and the layers, in order, created at
// m's time.
func ociImage(plat v1.Platform, m Meta, cfg v1.Config, layers ...mutate.Addendum) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: plat.Architecture,
		OS:           plat.OS,
		Variant:      plat.Variant,
		Created:      v1.Time{Time: m.created()},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return mutate.Append(img, layers...)
}

// PlatformImage is one entry of an index.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
}

// Index makes the multi-platform OCI image index, annotated with the labels.
func Index(images []PlatformImage, annotations map[string]string) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, pi := range images {
		plat := pi.Platform
		adds = append(adds, mutate.IndexAddendum{Add: pi.Image, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	if len(annotations) > 0 {
		idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)
	}
	return idx
}

// PlatformString is "os/arch[/variant]".
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatforms parses "linux/amd64,linux/arm64".
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := v1.ParsePlatform(part)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", part, err)
		}
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %q: only linux images are built", part)
		}
		if seen[PlatformString(*p)] {
			continue
		}
		seen[PlatformString(*p)] = true
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform given")
	}
	sort.Slice(out, func(i, j int) bool { return PlatformString(out[i]) < PlatformString(out[j]) })
	return out, nil
}
