package rtc

import (
	"errors"
	"strings"
	"testing"
)

// chromeOffer is what Chrome (M120-M130) posts in the OpenAI Realtime
// WebRTC flow: a microphone track (audio m-line with Opus, RED, G.722,
// G.711, CN and telephone-event, the usual header extensions, a=ssrc
// lines) and the data channel's application m-line, bundled, with no
// candidates (createOffer's SDP, posted without waiting for gathering).
// Lines end with CRLF, as browsers send them.
var chromeOffer = crlf(`v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 7d230ae0-f69c-414f-88dc-0c1301b6c2a8
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Xq3b
a=ice-pwd:9sF2mZp1QwErTyUiOpAsDfGh
a=ice-options:trickle
a=fingerprint:sha-256 A3:FD:06:6A:62:BA:4C:F4:84:C3:2F:63:57:10:23:23:0C:12:78:FD:1A:10:3D:34:B9:A8:43:E9:A5:89:66:1F
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:7d230ae0-f69c-414f-88dc-0c1301b6c2a8 e12c72bc-6d9a-4366-b859-acfe40ab65a4
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3735928559 cname:Vx8qZ0m3w1yTgH5k
a=ssrc:3735928559 msid:7d230ae0-f69c-414f-88dc-0c1301b6c2a8 e12c72bc-6d9a-4366-b859-acfe40ab65a4
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:Xq3b
a=ice-pwd:9sF2mZp1QwErTyUiOpAsDfGh
a=ice-options:trickle
a=fingerprint:sha-256 A3:FD:06:6A:62:BA:4C:F4:84:C3:2F:63:57:10:23:23:0C:12:78:FD:1A:10:3D:34:B9:A8:43:E9:A5:89:66:1F
a=setup:actpass
a=mid:1
a=sctp-port:5000
a=max-message-size:262144
`)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// edit returns chromeOffer with every line containing old replaced by
// repl (removed when repl is "").
func edit(t testing.TB, old, repl string) string {
	t.Helper()
	lines := strings.Split(chromeOffer, "\r\n")
	out := lines[:0]
	hit := false
	for _, l := range lines {
		if strings.Contains(l, old) {
			hit = true
			if repl == "" {
				continue
			}
			l = repl
		}
		out = append(out, l)
	}
	if !hit {
		t.Fatalf("edit: %q not in the offer", old)
	}
	return strings.Join(out, "\r\n")
}

func TestCheckOffer(t *testing.T) {
	videoOnly := crlf(`v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
m=video 9 UDP/TLS/RTP/SAVPF 96
c=IN IP4 0.0.0.0
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 A3:FD:06:6A
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:96 VP8/90000
`)
	sessionLevel := crlf(`v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 A3:FD:06:6A
m=audio 9 UDP/TLS/RTP/SAVPF 109
c=IN IP4 0.0.0.0
a=setup:actpass
a=mid:audio
a=sendrecv
a=rtcp-mux
a=rtpmap:109 OPUS/48000/2
`)
	tests := []struct {
		name, sdp, code string
	}{
		{"chrome", chromeOffer, ""},
		{"ice and fingerprint at session level, Firefox payload type", sessionLevel, ""},
		{"LF line endings", strings.ReplaceAll(chromeOffer, "\r\n", "\n"), ""},
		{"recvonly audio", edit(t, "a=sendrecv", "a=recvonly"), ""},
		{"no data channel", chromeOffer[:strings.Index(chromeOffer, "m=application")], ""},
		{"empty", "", CodeInvalidSDP},
		{"blank", " \r\n", CodeInvalidSDP},
		{"not sdp", "hello, world", CodeInvalidSDP},
		{"bad version line", "v=x\r\n", CodeInvalidSDP},
		{"truncated m-line", "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio\r\n", CodeInvalidSDP},
		{"too large", chromeOffer + strings.Repeat("a=x-padding:0123456789abcdef\r\n", MaxOfferSize/30), CodeInvalidSDP},
		{"session only", "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", CodeNoAudio},
		{"video only", videoOnly, CodeNoAudio},
		{"data channel only", "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
			chromeOffer[strings.Index(chromeOffer, "m=application"):], CodeNoAudio},
		{"audio rejected (port 0)", edit(t, "m=audio 9", "m=audio 0 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126"), CodeNoAudio},
		{"audio without opus", edit(t, "a=rtpmap:111", "a=rtpmap:111 telephone-event/48000"), CodeNoOpus},
		{"opus not listed on the m-line", edit(t, "m=audio 9", "m=audio 9 UDP/TLS/RTP/SAVPF 63 9 0 8"), CodeNoOpus},
		{"opus mono", edit(t, "a=rtpmap:111", "a=rtpmap:111 opus/48000"), CodeNoOpus},
		{"opus at 16 kHz", edit(t, "a=rtpmap:111", "a=rtpmap:111 opus/16000/2"), CodeNoOpus},
		{"no ice-ufrag", edit(t, "a=ice-ufrag", ""), CodeNoICE},
		{"no ice-pwd", edit(t, "a=ice-pwd", ""), CodeNoICE},
		{"no fingerprint", edit(t, "a=fingerprint", ""), CodeNoICE},
		{"malformed fingerprint", edit(t, "a=fingerprint", "a=fingerprint:sha-256"), CodeNoICE},
		{"bundle tag data channel first", edit(t, "a=group:BUNDLE 0 1", "a=group:BUNDLE 1 0"), ""},
		{"bundle tag names no m-line", edit(t, "a=group:BUNDLE 0 1", "a=group:BUNDLE 7"), CodeNoICE},
		{"no mid", edit(t, "a=mid:0", ""), CodeUnsupported},
		{"plain RTP", edit(t, "m=audio 9", "m=audio 9 RTP/AVP 111"), CodeUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckOffer(tc.sdp)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("CheckOffer: %v", err)
				}
				return
			}
			var oe *OfferError
			if !errors.As(err, &oe) {
				t.Fatalf("CheckOffer = %v, want an *OfferError %q", err, tc.code)
			}
			if oe.Code != tc.code {
				t.Fatalf("code %q (%s), want %q", oe.Code, oe.Message, tc.code)
			}
		})
	}
}

func TestCheckOfferTwoAudioLines(t *testing.T) {
	audio := chromeOffer[strings.Index(chromeOffer, "m=audio"):strings.Index(chromeOffer, "m=application")]
	second := strings.ReplaceAll(audio, "a=mid:0", "a=mid:2")
	offer := strings.Replace(chromeOffer, "a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2", 1) + second
	if err := CheckOffer(offer); err != nil {
		t.Fatal(err)
	}
	info, _ := checkOffer(offer)
	if info.audioLines != 2 || !info.dataLine {
		t.Fatalf("info %+v", info)
	}
}

func FuzzCheckOffer(f *testing.F) {
	f.Add(chromeOffer)
	f.Add(strings.ReplaceAll(chromeOffer, "\r\n", "\n"))
	f.Add(edit(f, "a=rtpmap:111", "a=rtpmap:111 telephone-event/48000"))
	f.Add(edit(f, "a=ice-ufrag", ""))
	f.Add(edit(f, "a=fingerprint", "a=fingerprint:sha-256"))
	f.Add(edit(f, "a=group:BUNDLE 0 1", "a=group:BUNDLE 7"))
	f.Add("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP\r\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckOffer(s)
		if err == nil {
			return
		}
		var oe *OfferError
		if !errors.As(err, &oe) {
			t.Fatalf("not an *OfferError: %v", err)
		}
		switch oe.Code {
		case CodeInvalidSDP, CodeNoAudio, CodeNoOpus, CodeNoICE, CodeUnsupported:
		default:
			t.Fatalf("unknown code %q", oe.Code)
		}
		if err2 := CheckOffer(s); err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("not deterministic: %v then %v", err, err2)
		}
	})
}
