package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"parley/realtime"
)

// metrics are the gateway's Prometheus series. Label values come from
// closed sets (event types Parley knows, error codes it defines, response
// statuses) so cardinality stays bounded whatever clients send.
type metrics struct {
	sessionsActive  prometheus.Gauge
	sessionsTotal   prometheus.Counter
	sessionsRefused *prometheus.CounterVec
	clientEvents    *prometheus.CounterVec
	errors          *prometheus.CounterVec
	responses       *prometheus.CounterVec
	firstToken      prometheus.Histogram
	responseTime    prometheus.Histogram
	gatewayAdded    prometheus.Histogram
	slowClients     prometheus.Counter
	storageErrors   prometheus.Counter
	sweptRows       prometheus.Counter
	bargeIns        prometheus.Counter
	voiceStages     *prometheus.HistogramVec
	voiceGateway    prometheus.Histogram
	ephemeralKeys   prometheus.Counter
	callsActive     prometheus.Gauge
	callsTotal      prometheus.Counter
	callsRefused    *prometheus.CounterVec
	callsEnded      *prometheus.CounterVec
	callSetup       prometheus.Histogram
	rtpDropped      prometheus.Counter
	sidebands       prometheus.Counter
	rateLimited     *prometheus.CounterVec
}

var knownClientEvents = map[string]bool{
	realtime.TypeSessionUpdate: true, realtime.TypeItemCreate: true, realtime.TypeItemDelete: true,
	realtime.TypeItemRetrieve: true, realtime.TypeItemTruncate: true, realtime.TypeResponseCreate: true,
	realtime.TypeResponseCancel: true, realtime.TypeAudioAppend: true, realtime.TypeAudioCommit: true,
	realtime.TypeAudioClear: true, realtime.TypeOutputAudioClear: true,
}

func newMetrics(reg prometheus.Registerer) *metrics {
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		sessionsActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_realtime_sessions_active", Help: "Realtime sessions open now."}),
		sessionsTotal:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_realtime_sessions_total", Help: "Realtime sessions accepted."}),
		sessionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_realtime_sessions_refused_total",
			Help: "Realtime connections refused, by reason."}, []string{"reason"}),
		clientEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_realtime_client_events_total",
			Help: "Client events received, by type (unknown types counted as \"unknown\")."}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_realtime_errors_total",
			Help: "error events sent, by code."}, []string{"code"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_realtime_responses_total",
			Help: "Responses finished, by status."}, []string{"status"}),
		firstToken: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_response_first_token_seconds",
			Help: "From response.create to the first text delta sent.", Buckets: latency}),
		responseTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_response_duration_seconds",
			Help: "From response.create to response.done.", Buckets: latency}),
		gatewayAdded: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_response_gateway_added_seconds",
			Help: "Time to first delta minus the engine's own time to first token.", Buckets: latency}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_realtime_slow_clients_total",
			Help: "Sessions closed because the client did not read its events."}),
		storageErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_storage_errors_total",
			Help: "Storage writes that failed after retries."}),
		sweptRows: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_retention_swept_rows_total",
			Help: "Expired rows deleted by the retention sweeper."}),
		bargeIns: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_realtime_barge_ins_total",
			Help: "Responses cut short because the user started speaking."}),
		voiceStages: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_voice_turn_seconds",
			Help:    "Spoken turns: from the end of the user's speech to each stage (end_of_turn, first_partial, final_transcript, first_token, first_audio, first_audio_sent).",
			Buckets: latency}, []string{"stage"}),
		voiceGateway: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_voice_gateway_added_seconds",
			Help: "Spoken turns: speech end to first audio sent, minus the silence wait and the time inside engines.", Buckets: latency}),
		ephemeralKeys: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_ephemeral_keys_minted_total",
			Help: "Ephemeral keys minted by POST /v1/realtime/client_secrets."}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_webrtc_calls_active", Help: "WebRTC calls open now."}),
		callsTotal:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_webrtc_calls_total", Help: "WebRTC calls answered."}),
		callsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_webrtc_calls_refused_total",
			Help: "Call offers refused, by error code."}, []string{"code"}),
		callsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_webrtc_calls_ended_total",
			Help: "WebRTC calls ended, by reason (connect_timeout, disconnected, failed, closed, hangup, session)."}, []string{"reason"}),
		callSetup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_webrtc_call_setup_seconds",
			Help: "From the offer received to the answer returned.", Buckets: latency}),
		rtpDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_webrtc_audio_dropped_total",
			Help: "Inbound audio packets dropped because the session could not keep up."}),
		sidebands: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_webrtc_sidebands_total",
			Help: "Sideband WebSockets attached to calls."}),
	}
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_rate_limited_total",
		Help: "Requests refused with 429 by a rate limit, by limit (key, ip)."}, []string{"limit"})
	reg.MustRegister(m.rateLimited)
	reg.MustRegister(m.ephemeralKeys, m.callsActive, m.callsTotal, m.callsRefused, m.callsEnded, m.callSetup, m.rtpDropped, m.sidebands)
	reg.MustRegister(m.sessionsActive, m.sessionsTotal, m.sessionsRefused, m.clientEvents, m.errors, m.responses,
		m.firstToken, m.responseTime, m.gatewayAdded, m.slowClients, m.storageErrors, m.sweptRows, m.bargeIns,
		m.voiceStages, m.voiceGateway)
	return m
}

func registerRuntime(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func eventLabel(typ string) string {
	if knownClientEvents[typ] {
		return typ
	}
	return "unknown"
}
