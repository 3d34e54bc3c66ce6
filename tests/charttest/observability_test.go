package charttest

import (
	"encoding/json"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chartutil"
)

// kedaMetrics are the KEDA operator's metrics the dashboard and rules may use (KEDA v2.21,
// pkg/metricscollector/prommetrics.go in kedacore/keda).
var kedaMetrics = map[string]bool{
	"keda_scaler_active": true, "keda_scaler_metrics_value": true, "keda_scaler_metrics_latency_seconds": true,
	"keda_scaler_detail_errors_total": true, "keda_scaled_object_errors_total": true, "keda_scaled_job_errors_total": true,
	"keda_scaled_object_paused": true, "keda_resource_registered_total": true, "keda_trigger_registered_total": true,
	"keda_internal_scale_loop_latency_seconds": true, "keda_build_info": true,
}

// appMetrics reads the names the app registers from its metrics package, with the series a
// histogram adds, plus the Go and process collectors' prefixes it registers too.
func appMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f, err := goparser.ParseFile(token.NewFileSet(), chartDir+"/app/internal/metrics/metrics.go", nil, 0)
	require.NoError(t, err)
	names := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		sel, ok := lit.Type.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
			return true
		}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if key, _ := kv.Key.(*ast.Ident); !ok || key.Name != "Name" {
				continue
			}
			bl, ok := kv.Value.(*ast.BasicLit)
			require.True(t, ok, "metric names are literals")
			name, err := strconv.Unquote(bl.Value)
			require.NoError(t, err)
			names[name] = true
			if sel.Sel.Name == "HistogramOpts" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[name+s] = true
				}
			}
		}
		return true
	})
	require.Contains(t, names, "kedademo_queue_messages")
	return names
}

// grafanaVars are what Grafana puts in place of its variables before it sends a query.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "${__rate_interval}", "1m", "$__interval", "30s", "${__interval}", "30s",
	"$__range", "1h", "${__range}", "1h", "$namespace", "demo", "${namespace}", "demo",
	"$scaledjob", "keda-demo-processor", "${scaledjob}", "keda-demo-processor",
)

// TestDashboardAndRules: the Grafana dashboard is JSON, every expression of it and of the
// PrometheusRule parses with Prometheus' own parser, and names only metrics that exist: the
// app's, KEDA's or kube-state-metrics' kube_job_*.
func TestDashboardAndRules(t *testing.T) {
	r := mustRender(t, values(t, nil, "app.grafanaDashboard.enabled=true", "app.prometheusRule.enabled=true"))
	known := appMetrics(t)
	p := parser.NewParser(parser.Options{})
	exprs := map[string]string{} // expression → where

	cm := r.one(t, "ConfigMap")
	require.Equal(t, "1", str(get(cm.obj, "metadata", "labels", "grafana_dashboard")), "the sidecar's label")
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Type  string
				Query any
			}
		}
	}
	raw := str(get(cm.obj, "data", "keda-demo.json"))
	require.NoError(t, json.Unmarshal([]byte(raw), &dash))
	require.NotContains(t, raw, "__SCALEDJOB__")
	require.NotContains(t, raw, "__NAMESPACE__")
	require.GreaterOrEqual(t, len(dash.Panels), 6)
	for _, panel := range dash.Panels {
		require.NotEmpty(t, panel.Targets, panel.Title)
		for _, tg := range panel.Targets {
			exprs[tg.Expr] = "dashboard panel " + panel.Title
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+), \w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := get(v.Query, "query").(string)
		m := labelValues.FindStringSubmatch(q)
		require.NotNil(t, m, "variable %s: %q", v.Name, q)
		require.True(t, known[m[1]], "variable %s uses %s", v.Name, m[1])
	}

	rule := r.one(t, "PrometheusRule")
	for _, g := range get(rule.obj, "spec", "groups").([]any) {
		for _, rl := range get(g, "rules").([]any) {
			exprs[str(get(rl, "expr"))] = "alert " + str(get(rl, "alert"))
		}
	}
	require.GreaterOrEqual(t, len(exprs), 10)

	used := map[string]bool{}
	for expr, where := range exprs {
		e, err := p.ParseExpr(grafanaVars.Replace(expr))
		require.NoError(t, err, "%s: %s", where, expr)
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			require.NotEmpty(t, vs.Name, "%s: a selector without a metric name: %s", where, expr)
			used[vs.Name] = true
			require.True(t, known[vs.Name] || kedaMetrics[vs.Name] || strings.HasPrefix(vs.Name, "kube_job_"),
				"%s uses %s: neither the app's, KEDA's nor kube-state-metrics' kube_job_*", where, vs.Name)
			return nil
		})
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d expressions, metrics: %s", len(exprs), strings.Join(names, " "))
	for _, want := range []string{"kedademo_queue_messages", "kube_job_status_active", "keda_scaled_job_errors_total", "kedademo_publish_duration_seconds_bucket"} {
		require.True(t, used[want], "the dashboard shows %s", want)
	}
}

// TestDashboardAndRulesOffByDefault: neither object without asking.
func TestDashboardAndRulesOffByDefault(t *testing.T) {
	r := mustRender(t, values(t, nil))
	require.Empty(t, r.ours("ConfigMap"))
	require.Empty(t, r.ours("PrometheusRule"))
}

// TestMonitoringAPICapability: the ServiceMonitor and the PrometheusRule each render when the
// cluster (or --api-versions) has their kind or just the group/version monitoring.coreos.com/v1,
// and each refuses, naming its value, when neither is there.
func TestMonitoringAPICapability(t *testing.T) {
	keda := chartutil.VersionSet{"keda.sh/v1alpha1", "keda.sh/v1alpha1/ScaledJob", "keda.sh/v1alpha1/TriggerAuthentication"}
	objects := map[string]string{"ServiceMonitor": "app.serviceMonitor.enabled", "PrometheusRule": "app.prometheusRule.enabled"}
	for _, tc := range []struct {
		name   string
		extra  func(kind string) []string
		render bool
	}{
		{"group/version only", func(string) []string { return []string{"monitoring.coreos.com/v1"} }, true},
		{"kind only", func(kind string) []string { return []string{"monitoring.coreos.com/v1/" + kind} }, true},
		{"both", func(kind string) []string {
			return []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/" + kind}
		}, true},
		{"neither", func(string) []string { return nil }, false},
		{"another group", func(kind string) []string {
			return []string{"monitoring.coreos.com/v1alpha1", "monitoring.example.com/v1/" + kind}
		}, false},
	} {
		for kind, value := range objects {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				caps := append(slices.Clone(keda), tc.extra(kind)...)
				r, err := renderWith(t, values(t, nil, value+"=true"), renderOpts{apiVersions: caps})
				if !tc.render {
					require.ErrorContains(t, err, value+" is true but the cluster has no monitoring.coreos.com/v1 "+kind+" API")
					return
				}
				require.NoError(t, err)
				require.Len(t, r.ours(kind), 1)
			})
		}
	}
}
