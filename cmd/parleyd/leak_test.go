package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine parleyd starts (HTTP server, sessions, engines, recorder,
// sweeper, storage pools) must be gone once Main returns. Keep-alive
// connections of HTTP clients (the fake upstream's, the engines' idle pool)
// are the only ones allowed to linger.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
