package charttest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBadValues: each mistake fails the render (helm install/template) with a message that
// names the value.
func TestBadValues(t *testing.T) {
	cases := []struct {
		name  string
		sets  []string
		files []string
		want  []string
	}{
		{"typo'd subchart key", []string{"app.replicaCont=2"}, nil, []string{"replicaCont"}},
		{"typo'd umbrella key", []string{"replicaCount=2"}, nil, []string{"replicaCount"}},
		{"typo'd global.kedaDemo key", []string{"global.kedaDemo.queueNmae=x"}, nil, []string{"queueNmae"}},
		{"wrong type", []string{"app.replicaCount=two"}, nil, []string{"replicaCount"}},
		{"wrong type bool", []string{"renderOffline=yes"}, nil, []string{"renderOffline"}},
		{"bad scaling strategy", []string{"processor.keda.scalingStrategy.strategy=fastest"}, nil, []string{"strategy", "accurate"}},
		{"bad rollout", []string{"processor.keda.rollout.strategy=default"}, nil, []string{"rollout", "gradual"}},
		{"bad protocol", []string{"processor.keda.trigger.protocol=amqps"}, nil, []string{"protocol"}},
		{"bad mode", []string{"processor.keda.trigger.mode=Length"}, nil, []string{"mode"}},
		{"http-only mode on amqp", []string{"processor.keda.trigger.mode=MessageRate"}, nil, []string{"protocol"}},
		{"pollingInterval 0", []string{"processor.keda.pollingInterval=0"}, nil, []string{"pollingInterval"}},
		{"maxReplicaCount 0", []string{"processor.keda.maxReplicaCount=0"}, nil, []string{"maxReplicaCount"}},
		{"negative history", []string{"processor.keda.failedJobsHistoryLimit=-1"}, nil, []string{"failedJobsHistoryLimit"}},
		{"bad digest", []string{"app.image.digest=latest"}, nil, []string{"digest"}},
		{"bad log level", []string{"processor.logLevel=verbose"}, nil, []string{"logLevel"}},
		// Blocks shared through "$ref": #/definitions/… keep their strictness.
		{"typo'd key in a TLS block", []string{"global.kedaDemo.externalMongodb.tls.enable=true"}, nil, []string{"externalMongodb/tls", "enable"}},
		{"empty CA key", []string{"global.kedaDemo.externalRabbitmq.tls.caKey="}, nil, []string{"externalRabbitmq/tls/caKey"}},
		{"typo'd key in a Secret reference", []string{"global.kedaDemo.externalRabbitmq.urlSecret.nmae=u"}, nil, []string{"externalRabbitmq/urlSecret", "nmae"}},
		{"typo'd probe key", []string{"app.probes.readiness.periodSecond=5"}, nil, []string{"probes/readiness", "periodSecond"}},
		{"probe period 0", []string{"app.probes.liveness.periodSeconds=0"}, nil, []string{"probes/liveness/periodSeconds"}},
		{"external mongodb without host", []string{"mongodb.enabled=false"}, nil, []string{"global.kedaDemo.externalMongodb.host"}},
		{"both embedded and external", []string{"global.kedaDemo.externalRabbitmq.host=mq"}, nil, []string{"rabbitmq.enabled"}},
		{"external rabbitmq without secret", []string{"rabbitmq.enabled=false", "global.kedaDemo.externalRabbitmq.host=mq", "global.kedaDemo.externalRabbitmq.username=u"}, nil, []string{"global.kedaDemo.externalRabbitmq.existingSecret"}},
		{"external mongodb user without secret", []string{"mongodb.enabled=false", "global.kedaDemo.externalMongodb.host=db", "global.kedaDemo.externalMongodb.username=u"}, nil, []string{"global.kedaDemo.externalMongodb.existingSecret"}},
		{"changed embedded rabbitmq user", []string{"rabbitmq.auth.username=admin"}, nil, []string{"rabbitmq.auth.username"}},
		{"changed embedded mongodb user", []string{"mongodb.auth.usernames={admin}"}, nil, []string{"mongodb.auth.usernames"}},
		{"bitnami existing secret", []string{"mongodb.auth.existingSecret=mine"}, nil, []string{"mongodb.auth.existingSecret"}},
		{"offline without passwords", []string{"renderOffline=true"}, nil, []string{"mongodb.auth.rootPassword"}},
		{"offline without rabbitmq password", []string{"renderOffline=true", "mongodb.auth.rootPassword=a", "mongodb.auth.passwords={b}"}, nil, []string{"rabbitmq.auth.password"}},
		{"registry credentials incomplete", []string{"global.kedaDemo.registryCredentials.create=true"}, nil, []string{"global.kedaDemo.registryCredentials"}},
		{"jobs view Role on the namespace's default account", []string{"app.serviceAccount.create=false"}, nil, []string{"app.livePage.jobs.enabled", "app.serviceAccount.name", `"default"`}},
		{"typo'd livePage key", []string{"app.livePage.job.enabled=false"}, nil, []string{"livePage", "job"}},
		{"the old app.dashboard key", []string{"app.dashboard.maxClients=5"}, nil, []string{"app.dashboard was renamed app.livePage", "move its keys there"}},
		{"the old app.dashboard key, Jobs view off", []string{"app.dashboard.jobs.enabled=false"}, nil, []string{"app.dashboard was renamed app.livePage"}},
		{"live heartbeat without a unit", []string{"app.livePage.heartbeat=15"}, nil, []string{"heartbeat"}},
		{"no live clients", []string{"app.livePage.maxClients=0"}, nil, []string{"maxClients"}},
		{"commonLabels repeating the chart's own label", []string{`global.kedaDemo.commonLabels.app\.kubernetes\.io/name=mine`}, nil, []string{"global.kedaDemo.commonLabels", "app.kubernetes.io/name"}},
		{"commonLabels value that is no label value", []string{"global.kedaDemo.commonLabels.team=a b"}, nil, []string{"commonLabels"}},
		{"commonLabels key that is no label key", []string{"global.kedaDemo.commonLabels.-team=a"}, nil, []string{"global.kedaDemo.commonLabels", `"-team" is not a label key`}},
		{"commonLabels key with a name over 63", []string{"global.kedaDemo.commonLabels.example\\.com/" + strings.Repeat("n", 64) + "=a"}, nil, []string{"global.kedaDemo.commonLabels", "is not a label key"}},
		{"typo'd Grafana dashboard key", []string{"app.grafanaDashboard.label.a=b"}, nil, []string{"grafanaDashboard", "label"}},
		{"http trigger with URL secret", []string{"rabbitmq.enabled=false", "global.kedaDemo.externalRabbitmq.urlSecret.name=u", "processor.keda.trigger.protocol=http"}, nil, []string{"processor.keda.trigger.protocol"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, values(t, c.files, c.sets...))
			require.Errorf(t, err, "%v rendered; want an error naming %v", c.sets, c.want)
			require.Emptyf(t, unnamed(err, c.want...), "the error does not name these:\n%v", err)
		})
	}
}

// TestServiceMonitorNeedsAPI: enabling the ServiceMonitor without the prometheus-operator API fails.
func TestServiceMonitorNeedsAPI(t *testing.T) {
	_, err := renderWith(t, values(t, nil, "app.serviceMonitor.enabled=true"), renderOpts{apiVersions: apiVersions[:3]})
	require.ErrorContains(t, err, "app.serviceMonitor.enabled")
}

// unnamed returns the words (quoted) the error does not contain.
func unnamed(err error, words ...string) problemList {
	var out problemList
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			out.add("%q", w)
		}
	}
	return out
}
