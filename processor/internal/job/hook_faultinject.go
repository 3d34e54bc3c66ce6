//go:build faultinject

package job

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// In fault-injection builds, PROCESSOR_FAULT picks a fault:
//
//	kill-after-store  SIGKILL after the store write and before the ack, as a node failure would
//	pause-before-get  print "faultinject: before basic.get" on stderr, then wait 1 s before basic.get
//	hang-before-get   print the same line, then hang before basic.get, deaf to every deadline
func init() {
	switch os.Getenv("PROCESSOR_FAULT") {
	case "kill-after-store":
		afterStore = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL); select {} }
	case "pause-before-get":
		beforeGet = func() { fmt.Fprintln(os.Stderr, "faultinject: before basic.get"); time.Sleep(time.Second) }
	case "hang-before-get":
		beforeGet = func() { fmt.Fprintln(os.Stderr, "faultinject: before basic.get"); select {} }
	}
}
