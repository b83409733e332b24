package storage

import "time"

// Retention is a retention policy: how long conversation metadata and
// transcript text are kept. TranscriptDays == 0 keeps metadata only: no
// text is ever written.
type Retention struct {
	TranscriptDays int
	MetadataDays   int
}

const day = 24 * time.Hour

// ConversationExpiry is when a conversation started at t expires.
func (r Retention) ConversationExpiry(t time.Time) time.Time {
	return t.Add(time.Duration(r.MetadataDays) * day)
}

// StoresText reports whether transcript text may be written at all.
func (r Retention) StoresText() bool { return r.TranscriptDays > 0 }

// TurnExpiry is when a turn started at t expires: with the transcript
// retention when its text is stored, with the metadata retention otherwise.
func (r Retention) TurnExpiry(t time.Time) time.Time {
	if r.StoresText() {
		return t.Add(time.Duration(r.TranscriptDays) * day)
	}
	return r.ConversationExpiry(t)
}
