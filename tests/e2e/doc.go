// Package e2e proves the chart on a real single-node Kubernetes cluster built from source, with the
// real KEDA operator. The test is behind the build tag `e2e`, so `go test ./...` never
// starts a cluster; run it with `go tool task e2e` (Linux, root), which builds the pinned
// components (cluster/tools), brings the cluster up (cluster/cluster.sh), runs
// `go test -tags e2e ./tests/e2e/` and tears everything down (tests/e2e/run.sh). One step of the scenario
// runs alone with E2E_TEST_ARGS="-run TestE2E/<step>" (see TestE2E).
package e2e
