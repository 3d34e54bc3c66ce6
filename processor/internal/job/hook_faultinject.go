//go:build faultinject

package job

import (
	"fmt"
	"os"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keda-demo/keda-demo/messaging/contract"
)

// In fault-injection builds, PROCESSOR_FAULT picks a fault for every run:
//
//	kill-after-store  SIGKILL after the store write and before the ack, as a node failure would
//	pause-before-get  print "faultinject: before basic.get" on stderr, then wait 1 s before basic.get
//	hang-before-get   print the same line, then hang before basic.get, deaf to every deadline
//
// Without it, a message whose content is KillOnFirstDelivery is killed after its store write.
func init() {
	kill := func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL); select {} }
	switch os.Getenv("PROCESSOR_FAULT") {
	case "kill-after-store":
		afterStore = func(amqp.Delivery) { kill() }
	case "pause-before-get":
		beforeGet = func() { fmt.Fprintln(os.Stderr, "faultinject: before basic.get"); time.Sleep(time.Second) }
	case "hang-before-get":
		beforeGet = func() { fmt.Fprintln(os.Stderr, "faultinject: before basic.get"); select {} }
	default:
		afterStore = func(d amqp.Delivery) {
			if m, err := contract.Decode(d.Body); err == nil && m.Content == KillOnFirstDelivery && !d.Redelivered {
				kill()
			}
		}
	}
}
