package server

import "time"

// SetWriteTimeout shortens the server's write timeout for a test and returns the restore.
func SetWriteTimeout(d time.Duration) func() {
	old := writeTimeout
	writeTimeout = d
	return func() { writeTimeout = old }
}
