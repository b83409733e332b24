package realtime

import "fmt"

// Error types, as in the OpenAI Realtime API.
const (
	InvalidRequest = "invalid_request_error"
	ServerError    = "server_error"
)

// Error codes Parley sends in `error` events. Engines add their own
// (agent.Error codes such as "provider_timeout") which are forwarded as is.
const (
	CodeInvalidJSON         = "invalid_json"
	CodeMissingType         = "missing_type"
	CodeUnknownEvent        = "unknown_event"
	CodeUnknownParameter    = "unknown_parameter"
	CodeMissingParameter    = "missing_required_parameter"
	CodeInvalidType         = "invalid_type"
	CodeInvalidValue        = "invalid_value"
	CodeUnsupported         = "unsupported"
	CodeItemNotFound        = "item_not_found"
	CodeDuplicateItemID     = "duplicate_item_id"
	CodeResponseActive      = "conversation_already_has_active_response"
	CodeNoActiveResponse    = "response_cancel_not_active"
	CodeInternal            = "internal_error"
	CodeSessionLimitReached = "session_limit_reached"
	CodeSlowConsumer        = "client_too_slow"
	CodeShuttingDown        = "server_shutting_down"
)

// Error is the `error` object of an `error` event. EventID names the client
// event that caused it, when there was one.
type Error struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	EventID *string `json:"event_id"`
}

func (e *Error) Error() string {
	if e.Param != nil {
		return fmt.Sprintf("%s (%s): %s [param %s]", e.Type, e.Code, e.Message, *e.Param)
	}
	return fmt.Sprintf("%s (%s): %s", e.Type, e.Code, e.Message)
}

// Invalid returns an invalid_request_error with the given code, message and
// param ("" for none).
func Invalid(code, param, format string, args ...any) *Error {
	e := &Error{Type: InvalidRequest, Code: code, Message: fmt.Sprintf(format, args...)}
	if param != "" {
		e.Param = &param
	}
	return e
}

// WithEventID returns e with EventID set to id (when id is non-empty).
func (e *Error) WithEventID(id string) *Error {
	if id != "" {
		e.EventID = &id
	}
	return e
}
