package gateway

import (
	"context"
	"net/http"

	"parley/storage"
)

// callLogKey carries, in a request's context, where authorize records the
// principal for the API call log.
type callLogKey struct{}

// logged wraps a realtime endpoint so that each authenticated request
// leaves an API call log entry: the route pattern, the status, the
// tenant and key, the time; never a body or a key.
func (s *Server) logged(route string, h http.HandlerFunc) http.HandlerFunc {
	if s.opts.CallLog == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var p Principal
		sr := &statusRecorder{ResponseWriter: w}
		at := s.now()
		h(sr, r.WithContext(context.WithValue(r.Context(), callLogKey{}, &p)))
		if p.TenantID == "" {
			return // not authenticated: nothing to attribute it to
		}
		status := sr.status
		if status == 0 {
			status = http.StatusOK
		}
		s.opts.CallLog(storage.APICall{TenantID: p.TenantID, KeyID: p.KeyID, Method: r.Method, Route: route, Status: status, At: at.UTC()})
	}
}

// statusRecorder remembers the status a handler wrote. It unwraps for
// http.ResponseController, so the WebSocket upgrade still hijacks the
// connection underneath.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
