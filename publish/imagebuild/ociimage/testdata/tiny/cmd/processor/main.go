// A stand-in for the real processor in the imagebuild tests: a small static program.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("tiny processor", os.Getuid()) }
