package rtc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// ICEServer is a STUN or TURN server the edge gathers server-reflexive or
// relayed candidates from ("stun:host:port", "turn:host:port?transport=udp",
// "turns:..."). TURN servers need Username and Credential.
type ICEServer struct {
	URLs                 []string
	Username, Credential string
}

// Config configures an Edge.
type Config struct {
	// UDPAddr is the one UDP socket every call's ICE traffic goes through
	// (pion's ICE UDP mux): "0.0.0.0:3478" in production (IPv4; "[::]:3478"
	// or ":3478" for IPv4 and IPv6), "127.0.0.1:0" in tests. Required.
	// With an unspecified IP the host candidates are the machine's
	// interface addresses (pion logs a warning once suggesting one socket
	// per interface: a single socket is right on a single-homed host or
	// behind a 1:1 NAT; on a multi-homed host bind the IP browsers should
	// reach). A loopback IP needs IncludeLoopback.
	UDPAddr string
	// TCPAddr, when set, also listens for ICE-TCP (passive candidates on one
	// TCP port) for networks that block UDP.
	TCPAddr string
	// NAT1To1IPs are public IPs announced instead of the host addresses
	// (cloud VMs behind a 1:1 NAT). Each must parse as an IP.
	NAT1To1IPs []string
	// ICEServers are used by the edge's own gathering (server-reflexive and
	// relayed candidates). pion gathers those on their own ephemeral
	// sockets, not on UDPAddr: behind a 1:1 NAT prefer NAT1To1IPs.
	ICEServers []ICEServer
	// IncludeLoopback gathers loopback candidates (tests, single host).
	IncludeLoopback bool
	// DisconnectedTimeout is how long a connected call may go without any
	// packet from the browser before ICE reports it disconnected, which
	// ends the call with reason "disconnected" (default 5s).
	// FailedTimeout is the further wait before pion reports failed
	// (default 10s); it matters while connecting. Keepalives go out every 2s.
	DisconnectedTimeout, FailedTimeout time.Duration
	// MaxMessageSize is the largest data-channel message the browser may
	// send (announced as a=max-message-size; default 262144, Chrome's own
	// value; at most 1 MiB).
	MaxMessageSize int
	// Logger receives pion's warnings and errors (field "pion" = scope).
	Logger zerolog.Logger

	// interceptors replaces newInterceptors (tests measuring other sets).
	interceptors func(*webrtc.MediaEngine, pionLoggerFactory) (*interceptor.Registry, error)
}

const (
	defaultDisconnectedTimeout = 5 * time.Second
	defaultFailedTimeout       = 10 * time.Second
	iceKeepalive               = 2 * time.Second
	defaultMaxMessageSize      = 256 << 10
	maxMaxMessageSize          = 1 << 20
	sctpReceiveBuffer          = 2 << 20

	certValidity = 30 * 24 * time.Hour
	certRenewal  = 7 * 24 * time.Hour // renew when less is left: longer than any call
)

// ErrEdgeClosed is returned by Accept after Close.
var ErrEdgeClosed = errors.New("rtc: edge closed")

// Edge is Parley's WebRTC media edge: the shared pion API (an Opus-only
// media engine, the RTCP report interceptors), the UDP (and optional TCP)
// ICE mux sockets and one DTLS certificate for all calls. It is safe for
// concurrent use.
type Edge struct {
	api        *webrtc.API
	udpConn    *net.UDPConn
	udpMux     ice.UDPMux
	tcpMux     ice.TCPMux
	iceServers []webrtc.ICEServer
	maxMessage int
	log        zerolog.Logger

	mu     sync.Mutex
	cert   webrtc.Certificate
	closed bool
}

// NewEdge validates cfg, binds the sockets and builds the pion API.
func NewEdge(cfg Config) (*Edge, error) {
	if cfg.UDPAddr == "" {
		return nil, errors.New("rtc: UDPAddr is required")
	}
	for _, s := range cfg.NAT1To1IPs {
		if net.ParseIP(s) == nil {
			return nil, fmt.Errorf("rtc: NAT1To1IPs: %q is not an IP address", s)
		}
	}
	iceServers, err := validateICEServers(cfg.ICEServers)
	if err != nil {
		return nil, err
	}
	if cfg.DisconnectedTimeout < 0 || cfg.FailedTimeout < 0 {
		return nil, errors.New("rtc: negative ICE timeout")
	}
	if cfg.DisconnectedTimeout == 0 {
		cfg.DisconnectedTimeout = defaultDisconnectedTimeout
	}
	if cfg.FailedTimeout == 0 {
		cfg.FailedTimeout = defaultFailedTimeout
	}
	switch {
	case cfg.MaxMessageSize == 0:
		cfg.MaxMessageSize = defaultMaxMessageSize
	case cfg.MaxMessageSize < 1024 || cfg.MaxMessageSize > maxMaxMessageSize:
		return nil, fmt.Errorf("rtc: MaxMessageSize %d not in [1024, %d]", cfg.MaxMessageSize, maxMaxMessageSize)
	}
	network, err := udpNetwork(cfg.UDPAddr)
	if err != nil {
		return nil, err
	}
	uaddr, err := net.ResolveUDPAddr(network, cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("rtc: UDPAddr: %w", err)
	}
	if uaddr.IP != nil && uaddr.IP.IsLoopback() && !cfg.IncludeLoopback {
		return nil, fmt.Errorf("rtc: UDPAddr %s is a loopback address: set IncludeLoopback", cfg.UDPAddr)
	}
	cert, err := newCertificate()
	if err != nil {
		return nil, err
	}

	lf := pionLoggerFactory{log: cfg.Logger}
	e := &Edge{iceServers: iceServers, maxMessage: cfg.MaxMessageSize, log: cfg.Logger, cert: cert}
	e.udpConn, err = net.ListenUDP(network, uaddr)
	if err != nil {
		return nil, fmt.Errorf("rtc: listen UDP: %w", err)
	}
	e.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: lf.NewLogger("udpmux"), UDPConn: e.udpConn})

	var se webrtc.SettingEngine
	se.LoggerFactory = lf
	se.SetICEUDPMux(e.udpMux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCPAddr != "" {
		l, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			_ = e.udpMux.Close()
			return nil, fmt.Errorf("rtc: listen TCP: %w", err)
		}
		e.tcpMux = webrtc.NewICETCPMux(lf.NewLogger("tcpmux"), l, 8)
		se.SetICETCPMux(e.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	se.DisableActiveTCP(true) // a server never dials the browser
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// No mDNS: a server has nothing to hide and cannot resolve the
	// browser's .local names anyway (its address comes from its checks);
	// pion's default would open a multicast socket per call.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(cfg.DisconnectedTimeout, cfg.FailedTimeout, iceKeepalive)
	if len(cfg.NAT1To1IPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        append([]string(nil), cfg.NAT1To1IPs...),
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			_ = e.closeMuxes()
			return nil, fmt.Errorf("rtc: NAT1To1IPs: %w", err)
		}
	}
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(uint32(cfg.MaxMessageSize))
	se.SetSCTPMaxReceiveBufferSize(sctpReceiveBuffer)

	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opusCapability, PayloadType: 111},
		webrtc.RTPCodecTypeAudio); err != nil {
		_ = e.closeMuxes()
		return nil, fmt.Errorf("rtc: register opus: %w", err)
	}
	build := func(_ *webrtc.MediaEngine, lf pionLoggerFactory) (*interceptor.Registry, error) {
		return newInterceptors(lf)
	}
	if cfg.interceptors != nil {
		build = cfg.interceptors
	}
	ir, err := build(me, lf)
	if err != nil {
		_ = e.closeMuxes()
		return nil, err
	}
	e.api = webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))
	return e, nil
}

// opusCapability is the one codec: Opus at 48 kHz, 2 channels as RFC 7587
// requires (the audio is mono), asking the browser for in-band FEC.
var opusCapability = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// newInterceptors is the lean interceptor set: RTCP sender and receiver
// reports only (one goroutine each per call, a 1 s ticker). No NACK (audio
// is not retransmitted), no TWCC (the edge does no bandwidth estimation:
// Chrome then adapts its audio from the receiver reports' loss), no stats
// interceptor (nothing reads getStats).
func newInterceptors(lf pionLoggerFactory) (*interceptor.Registry, error) {
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReportsWithOptions(ir,
		[]report.ReceiverOption{report.WithReceiverLoggerFactory(lf)},
		report.WithSenderLoggerFactory(lf)); err != nil {
		return nil, fmt.Errorf("rtc: interceptors: %w", err)
	}
	return ir, nil
}

// udpNetwork picks the socket family from UDPAddr's host: an IPv4 literal
// ("0.0.0.0") binds IPv4 only, an IPv6 literal ("[::]") or no host
// (":3478") a dual-stack socket, as net.Listen would; Go would otherwise
// make "0.0.0.0" dual-stack too, and gather IPv6 host candidates nobody
// asked for.
func udpNetwork(addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("rtc: UDPAddr: %w", err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		return "udp4", nil
	}
	return "udp", nil
}

func validateICEServers(servers []ICEServer) ([]webrtc.ICEServer, error) {
	out := make([]webrtc.ICEServer, 0, len(servers))
	for i, s := range servers {
		if len(s.URLs) == 0 {
			return nil, fmt.Errorf("rtc: ICEServers[%d]: no URLs", i)
		}
		for _, u := range s.URLs {
			uri, err := stun.ParseURI(u)
			if err != nil {
				return nil, fmt.Errorf("rtc: ICEServers[%d]: %q: %w", i, u, err)
			}
			if (uri.Scheme == stun.SchemeTypeTURN || uri.Scheme == stun.SchemeTypeTURNS) && (s.Username == "" || s.Credential == "") {
				return nil, fmt.Errorf("rtc: ICEServers[%d]: %q needs Username and Credential", i, u)
			}
		}
		ws := webrtc.ICEServer{URLs: append([]string(nil), s.URLs...)}
		if s.Username != "" || s.Credential != "" {
			ws.Username, ws.Credential, ws.CredentialType = s.Username, s.Credential, webrtc.ICECredentialTypePassword
		}
		out = append(out, ws)
	}
	return out, nil
}

// newCertificate makes the edge's DTLS certificate: ECDSA P-256,
// self-signed (browsers check its fingerprint against the answer, not a
// chain), valid certValidity.
func newCertificate() (webrtc.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("rtc: certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("rtc: certificate serial: %w", err)
	}
	now := time.Now()
	cert, err := webrtc.NewCertificate(key, x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "parley"},
		Issuer:       pkix.Name{CommonName: "parley"},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(certValidity),
		Version:      2,
	})
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("rtc: certificate: %w", err)
	}
	return *cert, nil
}

// certificate returns the shared certificate, renewing it when it has
// less than certRenewal left (pion refuses expired certificates).
func (e *Edge) certificate() (webrtc.Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return webrtc.Certificate{}, ErrEdgeClosed
	}
	if time.Until(e.cert.Expires()) < certRenewal {
		cert, err := newCertificate()
		if err != nil {
			return webrtc.Certificate{}, err
		}
		e.cert = cert
	}
	return e.cert, nil
}

// MaxMessageSize is the largest data-channel message the answers announce
// (Config.MaxMessageSize): a reader's buffer of this size takes any
// message a compliant browser sends.
func (e *Edge) MaxMessageSize() int { return e.maxMessage }

// UDPAddr returns the bound UDP address (the port chosen for ":0").
func (e *Edge) UDPAddr() *net.UDPAddr {
	a, _ := e.udpConn.LocalAddr().(*net.UDPAddr)
	return a
}

// Close closes the mux sockets; Accept fails afterwards. Calls are not
// tracked: close them first (Call.Close), since a call whose sockets are
// gone only ends when ICE notices (DisconnectedTimeout).
func (e *Edge) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	return e.closeMuxes()
}

func (e *Edge) closeMuxes() error {
	err := e.udpMux.Close()
	if e.tcpMux != nil {
		err = errors.Join(err, e.tcpMux.Close())
	}
	return err
}
