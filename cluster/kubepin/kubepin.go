// Package kubepin reads the one pin of the Kubernetes version this repository tests against:
// the k8s.io/kubernetes version required by the build module of the cluster's Kubernetes
// binaries (GoMod). The chart tests render with it and the Taskfile passes it to helm.
package kubepin

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// GoMod is the pin, relative to the repository root.
const GoMod = "cluster/tools/kubernetes/go.mod"

// Version is the pinned version, e.g. v1.36.3. root is the repository root.
func Version(root string) (string, error) {
	path := filepath.Join(root, GoMod)
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := modfile.ParseLax(path, raw, nil)
	if err != nil {
		return "", err
	}
	for _, r := range f.Require {
		if r.Mod.Path == "k8s.io/kubernetes" {
			if !semver.IsValid(r.Mod.Version) || semver.Prerelease(r.Mod.Version) != "" {
				return "", fmt.Errorf("%s: k8s.io/kubernetes %s is not a release version", path, r.Mod.Version)
			}
			return r.Mod.Version, nil
		}
	}
	return "", fmt.Errorf("%s requires no k8s.io/kubernetes", path)
}
