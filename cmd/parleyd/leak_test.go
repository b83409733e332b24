package main

import (
	"testing"

	"go.uber.org/goleak"

	"parley/tts/espeak"
)

// Every goroutine parleyd starts (HTTP server, sessions, engines, recorder,
// sweeper, storage pools) must be gone once Main returns. Keep-alive
// connections of HTTP clients (the fake upstream's, the engines' idle pool)
// and the espeak-ng worker are the only ones allowed to linger.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		// libespeak-ng has process-wide state: one worker owns it for the
		// life of the process (see tts/espeak).
		goleak.IgnoreTopFunction(espeak.WorkerTopFunction),
	)
}
