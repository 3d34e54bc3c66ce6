//go:build faultinject

package main

// Present only in a build with -tags faultinject: the imagebuild tests check that --tags reaches go build.
func init() { build = "faultinject" }
