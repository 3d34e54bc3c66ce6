package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/envconfig"
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
			c, err := config.Load(envconfig.Map(tc.env))
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
