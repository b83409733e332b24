package manage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"parley/storage"
)

// apiErr is an error answer: the one shape
// {"error":{"type","code","message","param"}}, as the gateway writes it.
type apiErr struct {
	status     int
	typ        string // derived from status when empty
	code, msg  string
	param      string
	retryAfter time.Duration
	wwwAuth    string
}

func (e *apiErr) Error() string { return e.code + ": " + e.msg }

// errorBody is the JSON of an error answer (also its OpenAPI schema).
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

func errType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func setCommonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

func writeErr(w http.ResponseWriter, e *apiErr) {
	setCommonHeaders(w)
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
	if e.wwwAuth != "" {
		w.Header().Set("WWW-Authenticate", e.wwwAuth)
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(errJSON(e))
}

func errJSON(e *apiErr) []byte {
	d := errorDetail{Type: e.typ, Code: e.code, Message: e.msg}
	if d.Type == "" {
		d.Type = errType(e.status)
	}
	if e.param != "" {
		d.Param = &e.param
	}
	b, _ := json.Marshal(errorBody{d})
	return append(b, '\n')
}

func badParam(code, param, msg string) *apiErr {
	return &apiErr{status: http.StatusBadRequest, code: code, param: param, msg: msg}
}

func invalid(param, msg string) *apiErr { return badParam("invalid_value", param, msg) }

func missing(param string) *apiErr {
	return badParam("missing_parameter", param, param+" is required")
}

func notFound(what string) *apiErr {
	return &apiErr{status: http.StatusNotFound, code: "not_found", msg: "no such " + what}
}

func forbidden(code, msg string) *apiErr {
	return &apiErr{status: http.StatusForbidden, code: code, msg: msg}
}

func conflict(code, msg string) *apiErr {
	return &apiErr{status: http.StatusConflict, code: code, msg: msg}
}

func unavailable() *apiErr {
	return &apiErr{status: http.StatusServiceUnavailable, code: "storage_unavailable",
		msg: "the request could not be completed; try again", retryAfter: time.Second}
}

// storageErr translates a storage error for what (e.g. "agent"); an
// error it does not know is returned as is (the pipeline logs it and
// answers 503).
func storageErr(err error, what string) error {
	if e := mapErr(err, what); e != nil {
		return e
	}
	return err
}

// mapErr translates an error to an answer, nil if it is not one the API
// knows. ErrInvalid names the field the storage message names, in the
// API's snake_case.
func mapErr(err error, what string) *apiErr {
	var ae *apiErr
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, storage.ErrNotFound):
		return notFound(what)
	case errors.Is(err, storage.ErrConflict):
		return conflict("conflict", "the "+what+" conflicts with an existing one")
	case errors.Is(err, storage.ErrInvalid):
		msg := strings.TrimPrefix(err.Error(), storage.ErrInvalid.Error()+": ")
		return invalid(paramOf(msg), msg)
	}
	return nil // the caller logs and answers 503
}

// paramOf guesses the API field a storage ErrInvalid message names
// ("Key.Scopes: …" → "scopes", "Agent.ID \"x\" …" → "id").
func paramOf(msg string) string {
	head, _, _ := strings.Cut(msg, " ")
	head = strings.TrimSuffix(head, ":")
	_, field, ok := strings.Cut(head, ".")
	if !ok {
		return ""
	}
	var b strings.Builder
	for i, r := range field {
		if r >= 'A' && r <= 'Z' {
			if i > 0 && !(field[i-1] >= 'A' && field[i-1] <= 'Z') {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// decodeJSON decodes body strictly into v: unknown fields are 400
// unknown_parameter naming the field, fields named in readOnly are 400
// read_only_parameter (they are in the response but not settable), type
// mismatches name the field.
func decodeJSON(body []byte, v any, readOnly ...string) *apiErr {
	if len(bytes.TrimSpace(body)) == 0 {
		return badParam("invalid_json", "", "a JSON object body is required")
	}
	if len(readOnly) > 0 {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			for _, f := range readOnly {
				for k := range m {
					if strings.EqualFold(k, f) {
						return badParam("read_only_parameter", f, f+" cannot be set through this API")
					}
				}
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		if dec.More() {
			return badParam("invalid_json", "", "the body holds more than one JSON value")
		}
		return nil
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badParam("invalid_json", "", "the body must be a JSON object")
		}
		return badParam("invalid_type", typeErr.Field, fmt.Sprintf("%s must be %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
	case errors.As(err, &syntaxErr):
		return badParam("invalid_json", "", "the body is not valid JSON: "+syntaxErr.Error())
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return badParam("unknown_parameter", f, "unknown parameter "+strconv.Quote(f))
	}
	return badParam("invalid_json", "", "the body is not valid JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a number"
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}
