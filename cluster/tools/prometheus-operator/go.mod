// Pin of the prometheus-operator CRDs (example/prometheus-operator-crd/) that the e2e applies
// before it dry-runs the profiles with a ServiceMonitor and a PrometheusRule. NOT part of go.work;
// nothing is built from it, so no package keeps the requirement: `go mod tidy` here would drop it.
// Read with GOWORK=off go mod download -json github.com/prometheus-operator/prometheus-operator.
module github.com/keda-demo/keda-demo/cluster/tools/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
