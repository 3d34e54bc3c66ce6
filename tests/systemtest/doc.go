// Package systemtest runs the real app and processor binaries together against a real RabbitMQ and
// a real MongoDB-wire server (FerretDB): five messages through five processor runs, and the faults that cross both
// programs. It needs the workspace (go.work) to build the binaries.
package systemtest
