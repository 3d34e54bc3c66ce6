package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/app/internal/config"
	"github.com/keda-demo/keda-demo/messaging/envconfig"
)

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(envconfig.Map(map[string]string{"RABBITMQ_HOST": "mq", "MONGODB_HOST": "db"}))
	require.NoError(t, err)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, 1<<20, c.MaxContentBytes)
	require.Equal(t, 5*time.Second, c.PublishTimeout)
	require.Equal(t, 3*time.Second, c.DataTimeout)
	require.Equal(t, 10*time.Second, c.ShutdownTimeout)
	require.Equal(t, "keda-demo", c.Broker.Topology.Queue)
}

func TestLoadNamesEveryProblem(t *testing.T) {
	_, err := config.Load(envconfig.Map(map[string]string{"MAX_CONTENT_BYTES": "0", "PUBLISH_TIMEOUT": "soon"}))
	require.Error(t, err)
	for _, want := range []string{"RABBITMQ_HOST is required", "MONGODB_HOST is required", `MAX_CONTENT_BYTES="0"`, `PUBLISH_TIMEOUT="soon"`} {
		require.ErrorContains(t, err, want)
	}
}
