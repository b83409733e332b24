package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// apiError is the one error shape of Parley's HTTP endpoints:
// {"error":{"type","code","message","param"}}.
type apiError struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeErrorParam(w, status, typ, code, msg, "")
}

// writeErrorParam is writeError naming the offending field.
func writeErrorParam(w http.ResponseWriter, status int, typ, code, msg, param string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	e := apiError{Type: typ, Code: code, Message: msg}
	if param != "" {
		e.Param = &param
	}
	_ = json.NewEncoder(w).Encode(struct {
		Error apiError `json:"error"`
	}{e})
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeRetryAfter(w http.ResponseWriter, seconds int) {
	w.Header().Set("Retry-After", strconv.Itoa(seconds))
}
