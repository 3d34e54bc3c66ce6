// A stand-in for the real processor in the imagebuild tests: a small static program.
package main

import (
	"fmt"
	"os"
)

var build = "default" // faultinject.go sets it in a -tags faultinject build

func main() { fmt.Println("tiny processor", os.Getuid(), build) }
