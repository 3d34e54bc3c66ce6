package charttest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLiveChartWindow: app.livePage.chartWindow reaches the app as LIVE_CHART_WINDOW (5m unless
// set), and a value without a unit is refused naming the key.
func TestLiveChartWindow(t *testing.T) {
	env := envMap(podNamed(t, mustRender(t, values(t, nil)), "Deployment keda-demo-app").spec.Containers[0])
	require.Equal(t, "5m", env["LIVE_CHART_WINDOW"])

	env = envMap(podNamed(t, mustRender(t, values(t, nil, "app.livePage.chartWindow=90s")), "Deployment keda-demo-app").spec.Containers[0])
	require.Equal(t, "90s", env["LIVE_CHART_WINDOW"])

	_, err := render(t, values(t, nil, "app.livePage.chartWindow=300"))
	require.ErrorContains(t, err, "chartWindow")
}
