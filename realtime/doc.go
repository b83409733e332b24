// Package realtime holds the wire types of the OpenAI Realtime API (GA
// dialect) as Parley speaks it: the client events it decodes (with
// precise errors for bad input), the server events it encodes, and the
// session, item and response objects they carry. It has no dependencies on
// the gateway so that clients (the replay tool, tests) can share it.
package realtime
