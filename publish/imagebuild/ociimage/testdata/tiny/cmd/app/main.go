// A stand-in for the real app in the imagebuild tests: a small static program.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("tiny app", os.Getuid()) }
