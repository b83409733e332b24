package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Settings is the settings object of a tenant-managed agent (stored as
// JSON with the agent; the management API validates it with
// ParseSettings). The offline knowledge-base engine answers from
// Knowledge.
type Settings struct {
	// Knowledge maps a document name ("returns.md") to its Markdown text.
	Knowledge map[string]string `json:"knowledge,omitempty"`
	// TopK is how many passages are retrieved per question (default 4).
	TopK int `json:"top_k,omitempty"`
	// MaxSentences bounds a knowledge-base answer (default the engine's).
	MaxSentences int `json:"max_sentences,omitempty"`
}

// Bounds of Settings.
const (
	MaxKnowledgeDocs  = 100
	MaxKnowledgeBytes = 1 << 20 // all documents together
)

// SettingsError names the offending field of a settings object.
type SettingsError struct {
	Field, Message string
}

func (e *SettingsError) Error() string { return e.Field + ": " + e.Message }

// ParseSettings decodes and validates a settings object strictly (unknown
// fields are errors). Empty input is the zero Settings.
func ParseSettings(raw []byte) (Settings, error) {
	var s Settings
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return s, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return s, &SettingsError{Field: "settings." + strings.Trim(f, `"`), Message: "unknown field (known: knowledge, top_k, max_sentences)"}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return s, &SettingsError{Field: "settings." + te.Field, Message: fmt.Sprintf("must be %s", te.Type)}
		}
		return s, &SettingsError{Field: "settings", Message: "not a valid settings object: " + msg}
	}
	if len(s.Knowledge) > MaxKnowledgeDocs {
		return s, &SettingsError{Field: "settings.knowledge", Message: fmt.Sprintf("at most %d documents", MaxKnowledgeDocs)}
	}
	total := 0
	for name, text := range s.Knowledge {
		if strings.TrimSpace(name) == "" || len(name) > 200 {
			return s, &SettingsError{Field: "settings.knowledge", Message: "document names are 1-200 characters"}
		}
		total += len(text)
	}
	if total > MaxKnowledgeBytes {
		return s, &SettingsError{Field: "settings.knowledge", Message: fmt.Sprintf("documents total more than %d bytes", MaxKnowledgeBytes)}
	}
	if s.TopK < 0 || s.TopK > 20 {
		return s, &SettingsError{Field: "settings.top_k", Message: "must be between 1 and 20 (0: the default)"}
	}
	if s.MaxSentences < 0 || s.MaxSentences > 50 {
		return s, &SettingsError{Field: "settings.max_sentences", Message: "must be between 1 and 50 (0: the default)"}
	}
	return s, nil
}
