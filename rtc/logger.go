package rtc

import (
	"fmt"
	"strings"

	"github.com/pion/logging"
	"github.com/rs/zerolog"
)

// pionLoggerFactory routes pion's logs to a zerolog.Logger, keeping only
// warnings and errors: pion logs every state change and candidate at info
// and debug, which is noise for an operator (and a cost per call). Each
// line carries the pion scope ("ice", "dtls", "pc", ...) as field "pion".
//
// A few warnings that every call produces in this deployment are logged at
// debug instead (see benign): the controlled ICE agent's wait for the
// browser's first check (no trickle: its addresses are learnt from those
// checks), and the complaints of pion's goroutines racing the teardown.
type pionLoggerFactory struct{ log zerolog.Logger }

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With().Str("pion", scope).Logger()}
}

type pionLogger struct{ log zerolog.Logger }

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}

func (l pionLogger) Warn(msg string) { l.warn(msg) }

func (l pionLogger) Warnf(format string, args ...any) {
	if l.log.GetLevel() <= zerolog.WarnLevel {
		l.warn(fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) warn(msg string) {
	if benign(msg) {
		l.log.Debug().Msg(msg)
		return
	}
	l.log.Warn().Msg(msg)
}

func (l pionLogger) Error(msg string) { l.log.Error().Msg(msg) }

func (l pionLogger) Errorf(format string, args ...any) { l.log.Error().Msgf(format, args...) }

// benignWarnings are substrings of pion warnings that are expected on
// every call: the wait for the browser's first connectivity check, and
// goroutines finding their transport closed under them at the teardown.
var benignWarnings = []string{
	"Failed to ping without candidate pairs",      // ice: no remote candidate before the browser's first check
	"closed pipe",                                 // ice, srtp: reads on closed candidates
	"is already closed",                           // pc: streams accepted during the teardown
	"conn is closed",                              // sctp, dtls: writes after close
	"use of closed network connection",            // any socket closed at the teardown
	"canceled by caller",                          // pc: ICE start cancelled by Close
	"DTLS not established",                        // pc: SCTP never started (closed before connecting)
	"DTLS transport has not started yet",          // pc: SRTP never started
	"mux: no endpoint for packet",                 // stray DTLS alerts after close
	"Could not determine PayloadType for SSRC",    // pc: a stream that began as the call closed
	"should not listening on unspecified address", // udpmux: one socket on 0.0.0.0 is deliberate (see Config.UDPAddr)
}

func benign(msg string) bool {
	for _, s := range benignWarnings {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
