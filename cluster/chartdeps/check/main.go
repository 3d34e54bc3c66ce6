// Command check says where the bitnami chart archives come from (charts/ or the folder
// KEDA_DEMO_BITNAMI_CHARTS names) and fails, naming what is missing, when they are not there:
// the shell side (.ci/run, task chart-push) asks chartdeps instead of looking itself.
//
//	go run ./cluster/chartdeps/check [chart dir]
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/keda-demo/keda-demo/cluster/chartdeps"
)

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	ch, complete, err := chartdeps.Load(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartdeps:", err)
		os.Exit(1)
	}
	if !complete {
		fmt.Fprintf(os.Stderr, "chartdeps: missing %s: %s\n", strings.Join(chartdeps.Missing(ch), ", "), chartdeps.HowToGet)
		os.Exit(1)
	}
	from := "charts/"
	if d := os.Getenv(chartdeps.Env); d != "" {
		from = "charts/ and " + d
	}
	fmt.Fprintf(os.Stderr, "chartdeps: every dependency of %s %s is in (%s)\n", ch.Name(), ch.Metadata.Version, from)
}
