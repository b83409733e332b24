// Package rtc is Parley's WebRTC media edge, on pion/webrtc. It knows
// nothing of Parley sessions: the gateway drives it. It answers browser
// offers in the OpenAI Realtime WebRTC flow (the browser adds a microphone
// track, creates the "oai-events" data channel, posts its offer SDP
// without candidates and sets the answer: no trickle ICE), decodes the
// inbound Opus track to 16 kHz PCM, plays outbound Opus packets paced at
// 20 ms, and carries the data channel's messages.
//
// An Edge owns what calls share: the pion API (an Opus-only media engine,
// the RTCP sender and receiver report interceptors), one UDP socket for
// every call's ICE traffic (pion's UDP mux; optionally one ICE-TCP
// listener) and one DTLS certificate. Edge.Accept validates an offer
// (CheckOffer, also usable alone) and returns a Call and the answer SDP.
//
// # Threading model
//
// Each Call has these goroutines; each stops as said, and Call.Close
// (or the call's own end) waits for all of them:
//
//   - The supervisor (one per call, from Accept): waits for the connect
//     timeout, pion's connection-state changes and CloseAsync; calls
//     OnConnected; on the end it tears the call down, sets Reason and
//     closes Done, then returns. It is the only goroutine that closes the
//     peer connection (pion's GracefulClose, never from a pion callback).
//   - The inbound reader (one per inbound track: the goroutine pion starts
//     for OnTrack): reads RTP into a reused buffer; for the first audio
//     track it decodes and calls OnAudio, other tracks are read and
//     discarded. It stops when the peer connection closes (io.EOF).
//   - RTCP readers (one for the RTP sender, one for the first inbound
//     track's receiver): read RTCP into a reused buffer so the report
//     interceptors see the browser's reports. They stop when the peer
//     connection closes.
//   - The player (at most one, only while audio is queued): started by
//     Play or EndOf when none runs, it waits for the call to be connected,
//     then writes one packet per tick of a 20 ms time.Ticker and calls
//     OnPlayback. It exits at the first tick that finds the queue empty
//     (no ticker runs while nothing is queued), or when the call ends.
//
// The data channel has no goroutine of its own: it is detached, and the
// gateway reads it (EventChannel.Read) from its own goroutine.
//
// The teardown marks the call closing (a goroutine not yet started, for a
// track or the player, is not started any more), stops the player, ends
// the event channel, closes the peer connection (pion's GracefulClose waits
// for pion's goroutines) and waits for the call's goroutines. pion's
// callbacks run on goroutines pion starts per event; the call's handlers
// return at once once the call is closing.
//
// Callbacks therefore run on the call's goroutines: OnAudio on the reader,
// OnPlayback on the player, OnConnected on the supervisor. They must not
// block for long (the reader feeds pion's buffers, the player paces
// audio, the supervisor watches the call), and must not call Call.Close,
// which waits for them: they may call CloseAsync, Play, EndOf, Clear,
// PlayedMS and the EventChannel's methods.
//
// # Lifecycle for the gateway
//
//	call, answer, err := edge.Accept(ctx, offer, rtc.CallOptions{OnAudio: ..., OnPlayback: ...})
//	// reply with answer; then:
//	<-call.Events().Ready()           // or select on call.Done()
//	go readEvents(call.Events())      // Read until io.EOF
//	call.Play(tag, pkt) ... call.EndOf(tag)
//	<-call.Done()                     // call.Reason() says why
//	call.Close()                      // or at any time, from outside the callbacks
//
// Close every call before Edge.Close.
package rtc
