// Package imagetest checks that an index built by imagebuild (read from an OCI layout or pulled
// from a registry) is what keda-demo ships: the platforms, the config, the file list, and static
// binaries of the right machine.
package imagetest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/keda-demo/keda-demo/publish/imagebuild/ociimage"
)

// FileList is every path in p's image ("/" suffix for directories), the same for both backends.
func FileList(p ociimage.Program) []string {
	return []string{
		"/etc/", "/etc/group", "/etc/passwd", "/etc/ssl/", "/etc/ssl/certs/", "/etc/ssl/certs/ca-certificates.crt",
		"/usr/", "/usr/local/", "/usr/local/bin/", "/usr/local/bin/" + p.Name,
	}
}

// CheckIndex checks idx (p's index labelled with m) on the given platforms. caBundle is the
// expected /etc/ssl/certs/ca-certificates.crt. Pulled indexes are read in full.
func CheckIndex(t testing.TB, idx v1.ImageIndex, p ociimage.Program, m ociimage.Meta, platforms []v1.Platform, caBundle []byte) {
	t.Helper()
	mt, err := idx.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	if mt != types.OCIImageIndex {
		t.Errorf("%s: index media type %s, want %s", p.Name, mt, types.OCIImageIndex)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := m.Labels(p)
	if !maps.Equal(im.Annotations, wantLabels) {
		t.Errorf("%s: index annotations %v, want %v", p.Name, im.Annotations, wantLabels)
	}
	var got, want []string
	for _, pl := range platforms {
		want = append(want, ociimage.PlatformString(pl))
	}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Errorf("%s: manifest %s without platform", p.Name, d.Digest)
			continue
		}
		got = append(got, ociimage.PlatformString(*d.Platform))
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, p, m, *d.Platform, caBundle)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: platforms %v, want %v", p.Name, got, want)
	}
}

func checkImage(t testing.TB, img v1.Image, p ociimage.Program, m ociimage.Meta, plat v1.Platform, caBundle []byte) {
	t.Helper()
	where := p.Name + " " + ociimage.PlatformString(plat)
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("%s: manifest media type %s", where, mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != plat.OS || cf.Architecture != plat.Architecture {
		t.Errorf("%s: config platform %s/%s", where, cf.OS, cf.Architecture)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/" + p.Name}) || len(c.Cmd) != 0 {
		t.Errorf("%s: entrypoint %q cmd %q", where, c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" || c.WorkingDir != "/" {
		t.Errorf("%s: user %q workdir %q, want 65532:65532 and /", where, c.User, c.WorkingDir)
	}
	if !slices.Equal(c.Env, []string{ociimage.DefaultEnvPath}) {
		t.Errorf("%s: env %q", where, c.Env)
	}
	var ports []string
	for port := range c.ExposedPorts {
		ports = append(ports, port)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, p.ExposedPorts) {
		t.Errorf("%s: exposed ports %v, want %v", where, ports, p.ExposedPorts)
	}
	if !maps.Equal(c.Labels, m.Labels(p)) {
		t.Errorf("%s: labels %v, want %v", where, c.Labels, m.Labels(p))
	}
	for _, k := range []string{ociimage.LabelSource, ociimage.LabelRevision, ociimage.LabelVersion, ociimage.LabelTitle} {
		if c.Labels[k] == "" {
			t.Errorf("%s: label %s empty", where, k)
		}
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var names []string
	for _, l := range layers {
		if mt, _ := l.MediaType(); mt != types.OCILayer {
			t.Errorf("%s: layer media type %s", where, mt)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n := "/" + path.Clean(h.Name)
			if h.Typeflag == tar.TypeDir {
				n += "/"
			} else if h.Typeflag != tar.TypeReg {
				t.Errorf("%s: %s is neither file nor directory", where, n)
			}
			if h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s: %s owned by %d:%d, want root", where, n, h.Uid, h.Gid)
			}
			wantMode := int64(0o644)
			if h.Typeflag == tar.TypeDir || n == "/usr/local/bin/"+p.Name {
				wantMode = 0o755
			}
			if h.Mode&0o7777 != wantMode {
				t.Errorf("%s: %s mode %o, want %o", where, n, h.Mode, wantMode)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
			files[n] = data
		}
		rc.Close()
	}
	slices.Sort(names)
	if want := FileList(p); !slices.Equal(names, want) {
		t.Errorf("%s: files\n%q\nwant\n%q", where, names, want)
	}
	if string(files["/etc/passwd"]) != ociimage.Passwd || string(files["/etc/group"]) != ociimage.Group {
		t.Errorf("%s: passwd/group:\n%s\n%s", where, files["/etc/passwd"], files["/etc/group"])
	}
	if !bytes.Equal(files["/etc/ssl/certs/ca-certificates.crt"], caBundle) {
		t.Errorf("%s: CA bundle differs from the host's (%d bytes, want %d)", where, len(files["/etc/ssl/certs/ca-certificates.crt"]), len(caBundle))
	}
	if bin, ok := files["/usr/local/bin/"+p.Name]; ok {
		CheckStaticELF(t, where, bin, plat.Architecture)
	}
}

// CheckStaticELF checks that bin is a statically linked ELF executable for goarch: no program
// interpreter and no shared library needed.
func CheckStaticELF(t testing.TB, where string, bin []byte, goarch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Errorf("%s: not an ELF file: %v", where, err)
		return
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390}[goarch]
	if f.Machine != want {
		t.Errorf("%s: ELF machine %s, want %s", where, f.Machine, want)
	}
	if f.Type != elf.ET_EXEC {
		t.Errorf("%s: ELF type %s, want ET_EXEC (static, not PIE)", where, f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has %s: dynamically linked", where, prog.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: needs shared libraries %v", where, libs)
	}
}

// HostCABundle reads the CA bundle the images are built with, failing the test if missing.
func HostCABundle(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(ociimage.HostCABundle)
	if err != nil {
		t.Fatalf("%v (install Debian's ca-certificates package)", err)
	}
	return b
}
