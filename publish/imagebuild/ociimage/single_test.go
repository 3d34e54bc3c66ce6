package ociimage_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/publish/imagebuild/imagetest"
	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
)

const pauseRef = "registry.k8s.io/pause:3.10"

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// The pause image of the e2e cluster: importable by `ctr images import`, with /pause as the only
// file and the entrypoint, created at the epoch.
func TestSingleBinaryArchiveIsImportable(t *testing.T) {
	binary := []byte("\x7fELF stand-in for the pause binary")
	img, err := ociimage.SingleBinaryImage("pause", binary, amd64, ociimage.Meta{})
	require.NoError(t, err)
	var archive bytes.Buffer
	require.NoError(t, ociimage.WriteArchive(&archive, pauseRef, img))
	imagetest.CheckSingleBinaryArchive(t, archive.Bytes(), pauseRef, "pause", binary, amd64)

	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	require.True(t, cfg.Created.Time.Equal(time.Unix(0, 0)), "created %s, want the epoch", cfg.Created)
}

// Same binary, same archive: tests/e2e/run.sh caches it, and a digest that changed for nothing would
// say the sandbox image changed.
func TestSingleBinaryArchiveIsReproducible(t *testing.T) {
	write := func() []byte {
		img, err := ociimage.SingleBinaryImage("pause", []byte("binary"), amd64, ociimage.Meta{})
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, ociimage.WriteArchive(&b, pauseRef, img))
		return b.Bytes()
	}
	require.Equal(t, write(), write())
}

func TestSingleBinaryArchiveErrors(t *testing.T) {
	for _, c := range []struct {
		test, name string
		binary     []byte
		ref        string
		want       string
	}{
		{test: "path as name", name: "bin/pause", binary: []byte("x"), ref: pauseRef, want: "plain file name"},
		{test: "no name", name: "", binary: []byte("x"), ref: pauseRef, want: "plain file name"},
		{test: "empty binary", name: "pause", ref: pauseRef, want: "is empty"},
		{test: "bad reference", name: "pause", binary: []byte("x"), ref: "registry.k8s.io/PAUSE:3.10", want: "image reference"},
		{test: "no reference", name: "pause", binary: []byte("x"), ref: "", want: "image reference"},
	} {
		t.Run(c.test, func(t *testing.T) {
			img, err := ociimage.SingleBinaryImage(c.name, c.binary, amd64, ociimage.Meta{})
			if err == nil {
				err = ociimage.WriteArchive(io.Discard, c.ref, img)
			}
			require.ErrorContains(t, err, c.want)
		})
	}
}
