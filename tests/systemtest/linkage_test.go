package systemtest

import (
	"debug/buildinfo"
	"testing"

	"github.com/stretchr/testify/require"
)

// The binaries link the messaging module and nothing test-only: testkit and FerretDB (an entire
// database server) are for tests, and a stray import would ship them in every image.
func TestBinariesLinkNoTestModules(t *testing.T) {
	for name, bin := range map[string]string{"app": appBin, "processor": processorBin} {
		t.Run(name, func(t *testing.T) {
			info, err := buildinfo.ReadFile(bin)
			require.NoError(t, err)
			linked := map[string]bool{}
			for _, d := range info.Deps {
				linked[d.Path] = true
			}
			require.True(t, linked["github.com/keda-demo/keda-demo/messaging"], "messaging not linked: %v", linked)
			for _, banned := range []string{"github.com/keda-demo/keda-demo/tests/testkit", "github.com/FerretDB/FerretDB", "github.com/FerretDB/wire"} {
				require.False(t, linked[banned], "%s is linked into %s", banned, name)
			}
		})
	}
}
