package rtc

import (
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Offer error codes (OfferError.Code).
const (
	// CodeInvalidSDP: empty, larger than MaxOfferSize, or not parseable SDP.
	CodeInvalidSDP = "invalid_sdp"
	// CodeNoAudio: no active (non-zero port) audio m-line.
	CodeNoAudio = "no_audio"
	// CodeNoOpus: an active audio m-line does not offer opus/48000/2.
	CodeNoOpus = "no_opus"
	// CodeNoICE: no ice-ufrag / ice-pwd, or no (well-formed) DTLS
	// fingerprint, at session level or in the transport m-line.
	CodeNoICE = "no_ice"
	// CodeUnsupported: well-formed SDP that this edge cannot answer: an
	// m-line without a=mid (Plan B or pre-JSEP offers) or audio not carried
	// over DTLS-SRTP (a profile other than .../SAVPF).
	CodeUnsupported = "unsupported"
)

// MaxOfferSize is the largest offer CheckOffer accepts, in bytes. A
// browser's offer for one audio track and a data channel is 2-5 KB.
const MaxOfferSize = 64 << 10

// OfferError is a bad offer: the client's fault, to be answered with a 400.
// Code is one of the Code* constants.
type OfferError struct {
	Code    string
	Message string
}

func (e *OfferError) Error() string { return "rtc: bad offer (" + e.Code + "): " + e.Message }

func offerErr(code, msg string) *OfferError { return &OfferError{Code: code, Message: msg} }

// offerInfo is what Accept needs to know about a valid offer.
type offerInfo struct {
	audioLines int  // active audio m-lines (the first one is the call's)
	dataLine   bool // an active application m-line: the data channel is expected
}

// CheckOffer validates a browser's offer SDP without creating any WebRTC
// state: it parses the SDP with pion/sdp and checks what Accept needs. It
// returns nil or an *OfferError.
//
// Accepted: at least one active audio m-line, every active audio m-line
// offers opus/48000/2 over DTLS-SRTP (.../SAVPF), every m-line has a=mid,
// and ICE credentials and a DTLS fingerprint are present at session level
// or in the transport m-line (the BUNDLE tag's section, else the first).
// Candidates are not required (no trickle: the browser's addresses are
// learnt from its connectivity checks). The audio direction is not
// checked: a recvonly offer (no microphone) is answered sendonly.
//
// Several audio m-lines are accepted: the call sends on the first that
// lets it and decodes the first inbound audio track; the other tracks are
// read and discarded. Video m-lines are rejected in the answer (port 0),
// since the edge registers no video codec.
func CheckOffer(offerSDP string) error {
	_, err := checkOffer(offerSDP)
	if err != nil {
		return err
	}
	return nil
}

func checkOffer(offerSDP string) (offerInfo, *OfferError) {
	var info offerInfo
	if strings.TrimSpace(offerSDP) == "" {
		return info, offerErr(CodeInvalidSDP, "empty offer")
	}
	if len(offerSDP) > MaxOfferSize {
		return info, offerErr(CodeInvalidSDP, "offer larger than "+strconv.Itoa(MaxOfferSize)+" bytes")
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offerSDP); err != nil {
		return info, offerErr(CodeInvalidSDP, err.Error())
	}
	if len(sd.MediaDescriptions) == 0 {
		return info, offerErr(CodeNoAudio, "offer has no m-lines")
	}
	for i, md := range sd.MediaDescriptions {
		if mid, ok := md.Attribute("mid"); !ok || mid == "" {
			return info, offerErr(CodeUnsupported, "m-line "+strconv.Itoa(i)+" ("+md.MediaName.Media+") has no a=mid")
		}
		if !mediaActive(md) {
			continue
		}
		switch md.MediaName.Media {
		case "audio":
			if !savpf(md.MediaName.Protos) {
				return info, offerErr(CodeUnsupported, "audio m-line "+strconv.Itoa(i)+" is not DTLS-SRTP ("+
					strings.Join(md.MediaName.Protos, "/")+")")
			}
			if !hasOpus(md) {
				return info, offerErr(CodeNoOpus, "audio m-line "+strconv.Itoa(i)+" does not offer opus/48000/2")
			}
			info.audioLines++
		case "application":
			info.dataLine = true
		}
	}
	if info.audioLines == 0 {
		return info, offerErr(CodeNoAudio, "offer has no active audio m-line")
	}
	transport, bundled := transportSection(&sd)
	ufrag, pwd := sessionOrMedia(&sd, transport, "ice-ufrag"), sessionOrMedia(&sd, transport, "ice-pwd")
	if ufrag == "" || pwd == "" {
		return info, offerErr(CodeNoICE, "offer has no ice-ufrag / ice-pwd")
	}
	fp := fingerprint(&sd, transport, bundled)
	if fp == "" {
		return info, offerErr(CodeNoICE, "offer has no DTLS fingerprint")
	}
	if alg, val, ok := strings.Cut(fp, " "); !ok || alg == "" || val == "" || strings.Contains(val, " ") {
		return info, offerErr(CodeNoICE, "malformed DTLS fingerprint")
	}
	return info, nil
}

// mediaActive reports whether an m-line is in use: a non-zero port, or a
// zero port with a=bundle-only (RFC 9143).
func mediaActive(md *sdp.MediaDescription) bool {
	if md.MediaName.Port.Value != 0 {
		return true
	}
	_, bundleOnly := md.Attribute("bundle-only")
	return bundleOnly
}

func savpf(protos []string) bool {
	return len(protos) > 0 && protos[len(protos)-1] == "SAVPF"
}

// hasOpus reports whether md lists a payload type mapped to opus/48000/2.
func hasOpus(md *sdp.MediaDescription) bool {
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		// a=rtpmap:<pt> <name>/<clock>[/<channels>]
		pt, enc, ok := strings.Cut(a.Value, " ")
		if !ok || !listed(md.MediaName.Formats, pt) {
			continue
		}
		parts := strings.Split(strings.TrimSpace(enc), "/")
		if len(parts) == 3 && strings.EqualFold(parts[0], "opus") && parts[1] == "48000" && parts[2] == "2" {
			return true
		}
	}
	return false
}

func listed(formats []string, pt string) bool {
	for _, f := range formats {
		if f == pt {
			return true
		}
	}
	return false
}

// transportSection is the m-line whose ICE and DTLS attributes carry the
// bundled transport, as pion picks it: the BUNDLE group's tag section (nil
// if the tag names no m-line), else the first m-line. bundled reports
// whether there is a BUNDLE group.
func transportSection(sd *sdp.SessionDescription) (md *sdp.MediaDescription, bundled bool) {
	if group, ok := sd.Attribute("group"); ok {
		fields := strings.Fields(group)
		if len(fields) > 1 && fields[0] == "BUNDLE" {
			for _, md := range sd.MediaDescriptions {
				if mid, _ := md.Attribute("mid"); mid == fields[1] {
					return md, true
				}
			}
			return nil, true
		}
	}
	return sd.MediaDescriptions[0], false
}

// sessionOrMedia returns the session-level attribute key, else md's (md
// may be nil).
func sessionOrMedia(sd *sdp.SessionDescription, md *sdp.MediaDescription, key string) string {
	if v, ok := sd.Attribute(key); ok && v != "" {
		return v
	}
	if md == nil {
		return ""
	}
	v, _ := md.Attribute(key)
	return v
}

// fingerprint mirrors pion: session level first, then the BUNDLE tag's
// section when bundled, else the first m-line that has one.
func fingerprint(sd *sdp.SessionDescription, transport *sdp.MediaDescription, bundled bool) string {
	if fp := sessionOrMedia(sd, transport, "fingerprint"); fp != "" || bundled {
		return fp
	}
	for _, md := range sd.MediaDescriptions {
		if fp, ok := md.Attribute("fingerprint"); ok && fp != "" {
			return fp
		}
	}
	return ""
}
