//go:build faultinject

package job

import (
	"os"
	"syscall"
)

// In fault-injection builds, PROCESSOR_FAULT=kill-after-store kills the process with SIGKILL after
// the store write and before the ack, as a node failure would.
func init() {
	if os.Getenv("PROCESSOR_FAULT") == "kill-after-store" {
		afterStore = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL); select {} }
	}
}
