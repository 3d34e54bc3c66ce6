package charttest

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSchemaSharedBlocks: Helm compiles each chart's values.schema.json on its own (added as
// file:///values.schema.json, pkg/chartutil/jsonschema.go), so a "$ref" reaches only its own file's
// "definitions", never another chart's schema. The blocks the charts share are therefore written
// in each file; this keeps the copies identical, so one chart cannot grow laxer than the other.
func TestSchemaSharedBlocks(t *testing.T) {
	load := func(path string) map[string]any {
		var s map[string]any
		require.NoError(t, json.Unmarshal(readFile(t, filepath.Join(chartDir, path)), &s), path)
		return s
	}
	umbrella, app, proc := load("values.schema.json"), load("charts/app/values.schema.json"), load("charts/processor/values.schema.json")
	type pair struct {
		what string
		a, b any
	}
	pairs := []pair{{"tests.resources / app.resources", get(umbrella, "properties", "tests", "properties", "resources"), get(app, "properties", "resources")}}
	for _, k := range []string{"global", "enabled", "image", "logLevel", "resources", "serviceAccount"} {
		pairs = append(pairs, pair{"app." + k + " / processor." + k, get(app, "properties", k), get(proc, "properties", k)})
	}
	// The app's pod-level values are top-level, the processor's are under job.
	for _, k := range []string{"podAnnotations", "podLabels", "nodeSelector", "tolerations", "affinity"} {
		pairs = append(pairs, pair{"app." + k + " / processor.job." + k, get(app, "properties", k), get(proc, "properties", "job", "properties", k)})
	}
	var problems problemList
	for _, p := range pairs {
		if p.a == nil || !reflect.DeepEqual(p.a, p.b) {
			problems.add("schema blocks %s differ (or are missing): %v vs %v", p.what, p.a, p.b)
		}
	}
	require.Empty(t, problems)
}
