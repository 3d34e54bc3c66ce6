// Package chartdeps is the one place that finds the bitnami chart archives the umbrella chart
// pins (Chart.yaml's dependencies): in charts/, where `go tool helm dependency build` puts them,
// or in the folder KEDA_DEMO_BITNAMI_CHARTS names (<name>-<version>.tgz), for machines that cannot
// reach the bitnami OCI registry. The chart tests, the e2e, `task up` and chart-push load the
// chart through it.
package chartdeps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
)

// Env names a folder of <name>-<version>.tgz archives for dependencies missing from charts/.
const Env = "KEDA_DEMO_BITNAMI_CHARTS"

// HowToGet says how to get the archives, for messages that report them missing.
const HowToGet = "run `go tool helm dependency build` (needs the bitnami OCI registry), or set " + Env +
	" to a folder holding the archives Chart.lock pins (mongodb-<version>.tgz, rabbitmq-<version>.tgz)"

// Load loads the chart at dir and adds the dependency archives that its charts/ lacks from the
// folder $KEDA_DEMO_BITNAMI_CHARTS names. complete: every dependency is in.
func Load(dir string) (ch *chart.Chart, complete bool, err error) {
	ch, err = loader.Load(dir)
	if err != nil {
		return nil, false, err
	}
	if err := AddArchives(ch, os.Getenv(Env)); err != nil {
		return nil, false, err
	}
	return ch, len(Missing(ch)) == 0, nil
}

// AddArchives loads the dependencies that ch lacks from folder/<name>-<version>.tgz; an archive
// that is not there is left for Missing to name.
func AddArchives(ch *chart.Chart, folder string) error {
	if folder == "" {
		return nil
	}
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	for _, req := range ch.Metadata.Dependencies {
		if have[req.Name] {
			continue
		}
		p := filepath.Join(folder, req.Name+"-"+req.Version+".tgz")
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		dep, err := loader.LoadFile(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if dep.Name() != req.Name {
			return fmt.Errorf("%s holds chart %q, want %q", p, dep.Name(), req.Name)
		}
		ch.AddDependency(dep)
		have[req.Name] = true
	}
	return nil
}

// Missing names the dependencies of ch that are neither in charts/ nor added.
func Missing(ch *chart.Chart) []string {
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	var out []string
	for _, req := range ch.Metadata.Dependencies {
		if !have[req.Name] {
			out = append(out, req.Name+"-"+req.Version)
		}
	}
	return out
}
