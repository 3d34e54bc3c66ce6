package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/envread"
	"github.com/keda-demo/keda-demo/processor/internal/config"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		work    time.Duration
		max     int
		wantErr []string
	}{
		{"defaults", map[string]string{"RABBITMQ_HOST": "mq", "MONGODB_HOST": "db"}, 20 * time.Second, 5, nil},
		{"zero work", map[string]string{"RABBITMQ_HOST": "mq", "MONGODB_HOST": "db", "WORK_DURATION": "0", "MAX_DELIVERIES": "1"}, 0, 1, nil},
		{"bad values", map[string]string{"RABBITMQ_HOST": "mq", "MONGODB_HOST": "db", "WORK_DURATION": "20", "MAX_DELIVERIES": "0"}, 0, 0,
			[]string{`WORK_DURATION="20" must be a Go duration`, `MAX_DELIVERIES="0" must be an integer from 1 to 1000`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(envread.Map(tc.env))
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					require.ErrorContains(t, err, w)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.work, c.WorkDuration)
			require.Equal(t, tc.max, c.MaxDeliveries)
		})
	}
}

// requeue-dead moves messages between two queues: it must start where no MongoDB is configured,
// and still name every broker problem.
func TestLoadRequeueNeedsOnlyTheBroker(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		queue   string
		wantErr []string
	}{
		{"broker parts, no MongoDB", map[string]string{"RABBITMQ_HOST": "mq", "QUEUE_NAME": "orders"}, "orders", nil},
		{"broker URL, no MongoDB", map[string]string{"RABBITMQ_URL": "amqp://u:p@mq:5672/%2F"}, "keda-demo", nil},
		{"no broker", map[string]string{"MONGODB_HOST": "db"}, "", []string{"RABBITMQ_HOST is required"}},
		{"bad broker", map[string]string{"RABBITMQ_HOST": "mq", "RABBITMQ_PORT": "0", "LOG_LEVEL": "loud"}, "",
			[]string{`RABBITMQ_PORT="0"`, `LOG_LEVEL="loud"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.LoadRequeue(envread.Map(tc.env))
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					require.ErrorContains(t, err, w)
				}
				require.NotContains(t, err.Error(), "MONGODB")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.queue, c.Broker.Topology.Queue)
			require.NotEmpty(t, c.Broker.URL)
		})
	}
	// The whole processor does need MongoDB: the difference is the point.
	_, err := config.Load(envread.Map(map[string]string{"RABBITMQ_HOST": "mq"}))
	require.ErrorContains(t, err, "MONGODB_HOST is required")
}

// RUN_TIMEOUT defaults to WORK_DURATION + RunMargin (the one formula the chart's deadline check
// repeats), and must leave the steps before the work and the record of its end some time.
func TestRunTimeoutAndProbeAddr(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"RABBITMQ_HOST": "mq", "MONGODB_HOST": "db"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		run     time.Duration
		setup   time.Duration
		probe   string
		wantErr []string
	}{
		{"defaults", base(), 80 * time.Second, 55 * time.Second, "", nil},
		{"follows WORK_DURATION", base("WORK_DURATION", "5m"), 6 * time.Minute, 55 * time.Second, "", nil},
		{"set", base("WORK_DURATION", "0", "RUN_TIMEOUT", "10s", "PROBE_ADDR", ":8081"), 10 * time.Second, 5 * time.Second, ":8081", nil},
		{"host and port", base("PROBE_ADDR", "127.0.0.1:9000"), 80 * time.Second, 55 * time.Second, "127.0.0.1:9000", nil},
		{"too short", base("RUN_TIMEOUT", "29s"), 0, 0, "", []string{`RUN_TIMEOUT="29s" must be at least WORK_DURATION + 10s (30s)`}},
		{"not a duration", base("RUN_TIMEOUT", "80"), 0, 0, "", []string{`RUN_TIMEOUT="80" must be a Go duration`}},
		{"port only", base("PROBE_ADDR", "8081"), 0, 0, "", []string{`PROBE_ADDR="8081" must be host:port or :port`}},
		{"no port", base("PROBE_ADDR", "localhost:"), 0, 0, "", []string{`PROBE_ADDR="localhost:"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(envread.Map(tc.env))
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					require.ErrorContains(t, err, w)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.run, c.RunTimeout)
			require.Equal(t, tc.setup, c.SetupBound())
			require.Equal(t, tc.probe, c.ProbeAddr)
		})
	}
	require.Equal(t, 60*time.Second, config.RunMargin, "templates/_validate.tpl and docs/configuration.md say 60 s")
}
