package charttest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

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
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != apache2SHA256 {
		t.Errorf("LICENSE is not the Apache License 2.0 text (sha256 %x)", sum)
	}
	c := loadChart(t)
	a := c.Metadata.Annotations
	if a["artifacthub.io/license"] != "Apache-2.0" {
		t.Errorf("artifacthub.io/license = %q, want the SPDX id Apache-2.0", a["artifacthub.io/license"])
	}
	categories := []string{"ai-machine-learning", "database", "integration-delivery", "monitoring-logging", "networking", "security", "storage", "streaming-messaging"}
	if !slices.Contains(categories, a["artifacthub.io/category"]) {
		t.Errorf("artifacthub.io/category = %q, not one of Artifact Hub's %v", a["artifacthub.io/category"], categories)
	}
	var links []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	if err := yaml.UnmarshalStrict([]byte(a["artifacthub.io/links"]), &links); err != nil || len(links) == 0 {
		t.Fatalf("artifacthub.io/links: %v (%d links)", err, len(links))
	}
	for _, l := range links {
		if u, err := url.Parse(l.URL); err != nil || u.Scheme != "https" || u.Host == "" || l.Name == "" {
			t.Errorf("artifacthub.io/links entry %+v: want a name and an https URL", l)
		}
	}
	if links[0].URL != c.Metadata.Home {
		t.Errorf("the first link %q should be the source, Chart.yaml's home %q", links[0].URL, c.Metadata.Home)
	}
	var packaged bool
	for _, f := range c.Files {
		packaged = packaged || f.Name == "LICENSE"
	}
	if !packaged {
		t.Error("LICENSE is not in the chart's files: .helmignore must not drop it")
	}
}
