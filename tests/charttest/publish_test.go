package charttest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// apache2SHA256 is the digest of https://www.apache.org/licenses/LICENSE-2.0.txt, the text KEDA,
// Helm and the bitnami charts ship.
const apache2SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"

// TestLicenseAndArtifactHub: the repository (and so the packaged chart) carries the Apache-2.0
// text, and Chart.yaml the Artifact Hub annotations that name it and link the sources, in the
// formats Artifact Hub parses (artifacthub.io/docs/topics/annotations/helm/).
func TestLicenseAndArtifactHub(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "LICENSE"))
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	require.Equal(t, apache2SHA256, hex.EncodeToString(sum[:]), "LICENSE is not the Apache License 2.0 text")
	c := loadChart(t)
	a := c.Metadata.Annotations
	require.Equal(t, "Apache-2.0", a["artifacthub.io/license"], "artifacthub.io/license: want the SPDX id Apache-2.0")
	categories := []string{"ai-machine-learning", "database", "integration-delivery", "monitoring-logging", "networking", "security", "storage", "streaming-messaging"}
	require.Contains(t, categories, a["artifacthub.io/category"], "artifacthub.io/category: not one of Artifact Hub's")
	var links []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	require.NoError(t, yaml.UnmarshalStrict([]byte(a["artifacthub.io/links"]), &links), "artifacthub.io/links")
	require.NotEmpty(t, links, "artifacthub.io/links: no links")
	var problems problemList
	for _, l := range links {
		if u, err := url.Parse(l.URL); err != nil || u.Scheme != "https" || u.Host == "" || l.Name == "" {
			problems.add("artifacthub.io/links entry %+v: want a name and an https URL", l)
		}
	}
	require.Empty(t, problems)
	require.Equalf(t, c.Metadata.Home, links[0].URL, "the first link should be the source, Chart.yaml's home %q", c.Metadata.Home)
	var packaged bool
	for _, f := range c.Files {
		packaged = packaged || f.Name == "LICENSE"
	}
	require.True(t, packaged, "LICENSE is not in the chart's files: .helmignore must not drop it")
}
