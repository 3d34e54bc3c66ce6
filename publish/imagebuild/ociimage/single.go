package ociimage

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ContainerdImageNameAnnotation is the name `ctr images import` gives an image of an OCI archive.
// Without it ctr derives the name from org.opencontainers.image.ref.name, which it may prefix;
// with it the image is found under exactly the reference written (e.g. the sandbox image name
// containerd's config asks for).
const ContainerdImageNameAnnotation = "io.containerd.image.name"

// SingleBinaryImage is the image of one static binary and nothing else: the file /<name>, which
// is also the entrypoint; no CA bundle, user or labels, like the upstream pause image. Only
// m.Created is used (zero: the Unix epoch, so the same binary gives the same digest).
func SingleBinaryImage(name string, binary []byte, plat v1.Platform, m Meta) (v1.Image, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("binary name %q: want a plain file name", name)
	}
	if len(binary) == 0 {
		return nil, fmt.Errorf("binary %s is empty", name)
	}
	l, err := layer([]file{{name: name, mode: 0o755, data: binary}}, m.created())
	if err != nil {
		return nil, fmt.Errorf("layer of %s: %w", name, err)
	}
	return ociImage(plat, m, v1.Config{Entrypoint: []string{"/" + name}},
		mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: m.created()}, CreatedBy: "imagebuild: /" + name}})
}

// WriteArchive writes img to w as the tar of an OCI image layout (oci-layout, index.json,
// blobs/sha256/…) that `ctr images import` takes, the index entry named ref in both annotations
// ctr reads. The tar is reproducible: same image, same bytes.
func WriteArchive(w io.Writer, ref string, img v1.Image) error {
	if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	dir, err := os.MkdirTemp("", "imagebuild-archive-")
	if err != nil {
		return fmt.Errorf("OCI layout for %s: %w", ref, err)
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("OCI layout for %s: %w", ref, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		RefNameAnnotation:             ref,
		ContainerdImageNameAnnotation: ref,
	})); err != nil {
		return fmt.Errorf("OCI layout for %s: %w", ref, err)
	}
	files, err := layoutFiles(dir)
	if err != nil {
		return fmt.Errorf("OCI layout for %s: %w", ref, err)
	}
	if err := writeTar(w, files, Meta{}.created()); err != nil {
		return fmt.Errorf("OCI archive of %s: %w", ref, err)
	}
	return nil
}

// layoutFiles lists the layout at dir as tar entries, in lexical order (WalkDir's), with paths
// relative to dir as `ctr images import` expects them.
func layoutFiles(dir string) ([]file, error) {
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			files = append(files, file{name: rel + "/", mode: 0o755})
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{name: rel, mode: 0o644, data: data})
		return nil
	})
	return files, err
}
