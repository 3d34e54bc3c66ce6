package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/config"
	"github.com/keda-demo/keda-demo/messaging/envread"
)

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(envread.Map(map[string]string{"RABBITMQ_HOST": "mq", "MONGODB_HOST": "db"}))
	require.NoError(t, err)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, 1<<20, c.MaxContentBytes)
	require.Equal(t, 5*time.Second, c.PublishTimeout)
	require.Equal(t, 3*time.Second, c.DataTimeout)
	require.Equal(t, 10*time.Second, c.ShutdownTimeout)
	require.Equal(t, "keda-demo", c.Broker.Topology.Queue)
	require.Equal(t, 20, c.LiveMaxClients)
	require.Equal(t, 15*time.Second, c.LiveHeartbeat)
	require.Equal(t, 5*time.Minute, c.LiveChartWindow)
	require.Empty(t, c.JobsSelector, "no Jobs view unless the chart names the ScaledJob")
}

func TestLoadNamesEveryProblem(t *testing.T) {
	_, err := config.Load(envread.Map(map[string]string{"MAX_CONTENT_BYTES": "0", "PUBLISH_TIMEOUT": "soon", "LIVE_MAX_CLIENTS": "0", "LIVE_HEARTBEAT": "100ms", "LIVE_CHART_WINDOW": "10s"}))
	require.Error(t, err)
	for _, want := range []string{"RABBITMQ_HOST is required", "MONGODB_HOST is required", `MAX_CONTENT_BYTES="0"`, `PUBLISH_TIMEOUT="soon"`, `LIVE_MAX_CLIENTS="0"`, `LIVE_HEARTBEAT="100ms"`, `LIVE_CHART_WINDOW="10s"`} {
		require.ErrorContains(t, err, want)
	}
}

func TestLiveChartWindowIsBounded(t *testing.T) {
	env := map[string]string{"RABBITMQ_HOST": "mq", "MONGODB_HOST": "db", "LIVE_CHART_WINDOW": "90s"}
	c, err := config.Load(envread.Map(env))
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, c.LiveChartWindow)
	env["LIVE_CHART_WINDOW"] = "2h"
	_, err = config.Load(envread.Map(env))
	require.ErrorContains(t, err, `LIVE_CHART_WINDOW="2h" must be at most 1h0m0s`)
}
