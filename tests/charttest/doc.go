// Package charttest holds the Go tests of the keda-demo Helm chart (the repository root):
// they render the chart with the Helm SDK for the defaults and every ci/*-values.yaml profile,
// lint it, decode every object strictly into its Kubernetes Go type, validate the KEDA objects
// against KEDA v2.21.0's own CRD schemas, check the restricted Pod Security Standard and the
// cross-references between objects, and prove that bad values fail with a message naming them.
// They need no helm binary, no cluster and no network.
package charttest
