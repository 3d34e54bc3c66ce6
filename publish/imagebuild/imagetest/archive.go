package imagetest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
)

// CheckSingleBinaryArchive checks an archive written by ociimage.WriteArchive for a
// ociimage.SingleBinaryImage as `ctr images import` needs it: a tar of an OCI layout whose
// index.json names the image ref by both annotations ctr reads, every blob matching its digest,
// and name, holding binary, as the only file and the entrypoint.
func CheckSingleBinaryArchive(t testing.TB, archive []byte, ref, name string, binary []byte, plat v1.Platform) {
	t.Helper()
	files := readTar(t, archive)
	require.JSONEq(t, `{"imageLayoutVersion":"1.0.0"}`, string(files["oci-layout"]))
	var index v1.IndexManifest
	require.NoError(t, json.Unmarshal(files["index.json"], &index))
	require.Len(t, index.Manifests, 1)
	desc := index.Manifests[0]
	require.Equal(t, types.OCIManifestSchema1, desc.MediaType)
	require.Equal(t, map[string]string{
		ociimage.RefNameAnnotation:             ref,
		ociimage.ContainerdImageNameAnnotation: ref,
	}, desc.Annotations)

	dir := t.TempDir()
	for n, data := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), data, 0o644))
	}
	lp, err := layout.FromPath(dir)
	require.NoError(t, err)
	img, err := lp.Image(desc.Digest)
	require.NoError(t, err)
	require.NoError(t, validate.Image(img), "blobs do not match their digests")

	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, []string{"/" + name}, cfg.Config.Entrypoint)
	require.Equal(t, plat.OS, cfg.OS)
	require.Equal(t, plat.Architecture, cfg.Architecture)

	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	require.NoError(t, err)
	require.Equal(t, name, h.Name)
	require.EqualValues(t, 0o755, h.Mode)
	require.Zero(t, h.Uid+h.Gid, "not owned by root")
	got, err := io.ReadAll(tr)
	require.NoError(t, err)
	require.Equal(t, binary, got)
	_, err = tr.Next()
	require.ErrorIs(t, err, io.EOF, "the layer holds more than the binary")
}

// readTar returns the regular files of a tar by name.
func readTar(t testing.TB, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		require.NoError(t, err)
		require.True(t, h.ModTime.Equal(time.Unix(0, 0)), "%s: mtime %s, want the epoch", h.Name, h.ModTime)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = data
	}
}
