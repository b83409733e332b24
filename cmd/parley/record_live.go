package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"parley/privacy"
	"parley/recording"
	"parley/storage"
	"parley/storage/seal"
)

// parley record -tenant T -conversation ID: a session recording
// (docs/RECORDING.md, "Recording live sessions") made from a conversation
// the gateway stored, as parley export reads it. The recording is the
// visitor's side only: typed messages from their stored text, spoken turns
// from their logged audio (Ogg Opus, stored only when the tenant has
// conversation audio logging on), and each answer becomes an await. What
// was not kept is never made up: a spoken turn without logged audio, or a
// typed one without its text, is refused.

// liveMaxGap caps the pause between an answer and the next turn (a
// visitor who came back after an hour is replayed a minute later).
const liveMaxGap = 60 * time.Second

// liveFlags are parley record's flags for recording a live session.
type liveFlags struct {
	setup        *privacySetup
	tenant       *string
	conversation *string
	expect       *bool
}

func addLiveFlags(fs *flag.FlagSet) *liveFlags {
	return &liveFlags{
		setup:        addPrivacyFlags(fs),
		tenant:       fs.String("tenant", "", "live session: the tenant of -conversation"),
		conversation: fs.String("conversation", "", "live session: record this stored conversation instead of INPUT files (needs the tenant's conversation logging)"),
		expect:       fs.Bool("expect", false, "live session: expect what was kept (a word of each spoken turn's transcript and of each answer)"),
	}
}

// liveOnly are the flags that only a live session's recording takes.
var liveOnly = []string{"tenant", "conversation", "config", "storage", "expect"}

// requested reports whether the command line asks for a live session's
// recording: one of its flags was given.
func (l *liveFlags) requested(fs *flag.FlagSet) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		for _, n := range liveOnly {
			found = found || f.Name == n
		}
	})
	return found
}

// liveOptions are the flags parley record shares with the live mode.
type liveOptions struct {
	out, name, agent, modality string
	lead, trail                time.Duration
}

// Kinds of liveStep.
const (
	liveSpoken    = iota // a spoken user turn: its logged audio
	liveTyped            // a typed user message: conversation.item.create
	liveRespond          // an answer nothing asked for in the conversation (a greeting): response.create
	liveAssistant        // an assistant message the client added: conversation.item.create
)

// liveStep is one thing the visitor's client did, from a stored turn.
type liveStep struct {
	kind int
	turn *storage.Turn // the user turn; for liveRespond the answer itself
	// answer is the answer the turn got, nil when none was stored.
	answer *storage.Turn
	text   string   // liveTyped, liveAssistant: the message
	speech *recTurn // liveSpoken: the logged audio's packets (or PCM)
	// transcript is a spoken turn's stored transcript (with -expect).
	transcript string
	await      string
	dt         float64
	expect     recording.Expect
}

// liveRefusal is the error for what cannot be recorded because it was not
// kept: it names the settings that keep it, audio (logged audio) and/or
// text (transcripts).
func liveRefusal(tenant, conv, what string, audio, text bool) error {
	var keep []string
	if audio {
		keep = append(keep, `audio logging: privacy.audio_logging, or PUT /v1/tenants/`+tenant+`/privacy with "audio_logging": true`)
	}
	if text {
		keep = append(keep, `transcripts: "transcript_days" above 0 in that policy (retention.transcript_days by default)`)
	}
	return fmt.Errorf("cannot record conversation %s of tenant %s: %s. A live session is recorded only from what was kept: "+
		"the tenant must turn conversation logging on (%s), and record a session held since", conv, tenant, what, strings.Join(keep, "; "))
}

// errLiveShredded words a shredded tenant's conversation.
func errLiveShredded(tenant, conv string) error {
	return fmt.Errorf("cannot record conversation %s of tenant %s: its transcripts and audio are unreadable, "+
		"because the tenant's data key was shredded (parley shred)", conv, tenant)
}

// recordLive is parley record -tenant T -conversation ID.
func recordLive(ctx context.Context, fs *flag.FlagSet, live *liveFlags, o liveOptions, stdout, stderr io.Writer) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range []string{"format", "gap", "barge-in", "expect-transcript", "expect-reply"} {
		if set[n] {
			why := "its timing comes from the stored conversation"
			switch n {
			case "format":
				why = "a live session is recorded as audio/opus, the logged audio's own packets"
			case "expect-transcript", "expect-reply":
				why = "use -expect to expect what the conversation kept"
			}
			return usageError(fmt.Sprintf("-%s does not apply to a live session's recording (-conversation): %s", n, why))
		}
	}
	tenant, convID := *live.tenant, *live.conversation
	switch {
	case convID == "":
		return usageError("-tenant, -config, -storage and -expect record a stored live session: name it with -conversation ID")
	case fs.NArg() > 0:
		return usageError(fmt.Sprintf("unexpected argument %q: a live session's recording (-conversation) takes no INPUT files", fs.Arg(0)))
	case o.out == "":
		return usageError("-o FILE is required")
	case tenant == "":
		return usageError("-tenant is required with -conversation")
	case o.modality != "" && o.modality != "text" && o.modality != "audio":
		return usageError(fmt.Sprintf("-modality must be text or audio, not %q", o.modality))
	}

	st, kr, err := live.setup.open(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkTenant(ctx, st, tenant); err != nil {
		return err
	}
	scope := "conversation " + convID + " of tenant " + tenant
	conv, err := st.GetConversation(ctx, tenant, convID)
	if err != nil {
		return storageError(scope, err)
	}
	turns, err := st.ListTurns(ctx, tenant, convID)
	if err != nil {
		return storageError(scope+": turns", err)
	}
	clips, err := st.ListTurnAudio(ctx, tenant, convID)
	if err != nil {
		return storageError(scope+": audio", err)
	}
	steps, err := liveSteps(ctx, kr, conv, turns, clips, *live.expect)
	if err != nil {
		return err
	}

	rec := &recorder{format: "pcm", lead: o.lead, trail: o.trail, modality: o.modality}
	h := recording.Header{Name: o.name, Agent: conv.AgentID, Source: "live", Created: recCreated()}
	if h.Name == "" {
		h.Name = "conversation " + convID
	}
	if set["agent"] {
		h.Agent = o.agent
	}
	var spoken, typed int
	for _, s := range steps {
		switch s.kind {
		case liveSpoken:
			spoken++
		case liveTyped:
			typed++
		}
	}
	if spoken > 0 {
		rec.format, h.AudioFormat = "opus", recording.AudioOpus
	}
	if rec.modality == "" {
		rec.modality = "text"
		if spoken > 0 {
			rec.modality = "audio"
		}
	}
	// The file holds the conversation's content: only its owner reads it.
	size, err := recWriteFile(o.out, 0o600, func(w io.Writer) error { return rec.writeLive(w, h, steps) })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d spoken and %d typed turns, %d events, %.1f s of audio, %d bytes\n",
		o.out, scope, spoken, typed, rec.events, rec.audioMS/1000, size)
	fmt.Fprintf(stderr, "parley record: warning: %s holds the content of %s (what the visitor said and typed): "+
		"it is a copy outside Parley's store, which the tenant's retention and deletions do not reach; delete it when done\n",
		o.out, scope)
	return nil
}

// liveSteps turns a stored conversation into the visitor's steps, with
// their timing and (with expect) expectations, or says why it cannot.
func liveSteps(ctx context.Context, kr privacy.Opener, conv *storage.Conversation, turns []storage.Turn,
	clips []storage.TurnAudio, expect bool) ([]*liveStep, error) {
	tenant, convID := conv.TenantID, conv.ID
	if len(turns) == 0 {
		return nil, fmt.Errorf("cannot record conversation %s of tenant %s: it has no stored turns (none were kept, or they expired)", convID, tenant)
	}
	if len(turns) < conv.TurnCount {
		return nil, fmt.Errorf("cannot record conversation %s of tenant %s: only %d of its %d turns are left "+
			"(the others expired under the tenant's retention, or were deleted)", convID, tenant, len(turns), conv.TurnCount)
	}
	clipOf := map[string]*storage.TurnAudio{}
	for i := range clips {
		clipOf[clips[i].TurnID] = &clips[i]
	}
	anyText := false
	for i := range turns {
		anyText = anyText || turns[i].TextStored
	}
	if !anyText && len(clips) == 0 {
		return nil, liveRefusal(tenant, convID, "it holds metadata only, no transcript and no audio were kept", true, true)
	}
	// open opens a sealed value; shredded data is an error of its own.
	open := func(what string, sealed, aad []byte) ([]byte, error) {
		b, unreadable, err := privacy.OpenSealed(ctx, kr, tenant, sealed, aad)
		if unreadable {
			return nil, errLiveShredded(tenant, convID)
		}
		if err != nil {
			return nil, fmt.Errorf("conversation %s of tenant %s: %s: %w", convID, tenant, what, err)
		}
		return b, nil
	}
	// text is a turn's stored text ("", false when it was not kept).
	text := func(t *storage.Turn) (string, bool, error) {
		if !t.TextStored || len(t.TextSealed) == 0 {
			return "", false, nil
		}
		b, err := open(fmt.Sprintf("text of turn %d (%s)", t.Seq, t.ID), t.TextSealed, seal.TurnAAD(tenant, convID, t.ID))
		return string(b), err == nil, err
	}

	var steps []*liveStep
	var last *liveStep
	for i := range turns {
		t := &turns[i]
		name := fmt.Sprintf("turn %d (%s)", t.Seq, t.ID)
		if t.Role == storage.RoleAssistant {
			switch {
			case liveClientItem(t):
				// An assistant message the client added
				// (conversation.item.create): part of its side.
				msg, ok, err := text(t)
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, liveRefusal(tenant, convID, name+", an assistant message the client added, has no stored text", false, true)
				}
				last = &liveStep{kind: liveAssistant, turn: t, text: msg}
				steps = append(steps, last)
			case last != nil && (last.kind == liveSpoken || last.kind == liveTyped) && last.answer == nil:
				last.answer = t
			default:
				// An answer that follows no visitor turn: the client
				// asked for it (response.create).
				last = &liveStep{kind: liveRespond, turn: t, answer: t}
				steps = append(steps, last)
			}
			continue
		}
		if t.Role != storage.RoleUser {
			return nil, fmt.Errorf("conversation %s of tenant %s: %s has role %q", convID, tenant, name, t.Role)
		}
		clip := clipOf[t.ID]
		var next *storage.Turn
		if i+1 < len(turns) && turns[i+1].Role == storage.RoleAssistant {
			next = &turns[i+1]
		}
		spoken := clip != nil || !liveClientItem(t) || (next != nil && liveVoice(next.Latency))
		if !spoken {
			msg, ok, err := text(t)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, liveRefusal(tenant, convID, name+" was typed, but its text was not kept (the tenant's retention keeps metadata only)", false, true)
			}
			if msg == "" {
				return nil, fmt.Errorf("cannot record conversation %s of tenant %s: %s is a user item with no text", convID, tenant, name)
			}
			last = &liveStep{kind: liveTyped, turn: t, text: msg}
			steps = append(steps, last)
			continue
		}
		if clip == nil {
			return nil, liveRefusal(tenant, convID, name+" was spoken, but its audio was not logged (or it expired)", true, false)
		}
		if clip.Format != "audio/ogg" {
			return nil, fmt.Errorf("conversation %s of tenant %s: the audio of %s is %q, not audio/ogg", convID, tenant, name, clip.Format)
		}
		what := "the logged audio of " + name
		ogg, err := open(what, clip.Sealed, seal.AudioAAD(tenant, convID, t.ID))
		if err != nil {
			return nil, err
		}
		// A mono stream of 20 ms packets passes through; anything else is
		// decoded and encoded again in 20 ms packets.
		rt, err := recParseOgg(what, ogg, true)
		clear(ogg)
		if err != nil {
			return nil, fmt.Errorf("conversation %s of tenant %s: %w", convID, tenant, err)
		}
		last = &liveStep{kind: liveSpoken, turn: t, speech: rt[0]}
		if expect {
			if last.transcript, _, err = text(t); err != nil {
				return nil, err
			}
		}
		steps = append(steps, last)
	}
	visitor := false
	for _, s := range steps {
		visitor = visitor || s.kind == liveSpoken || s.kind == liveTyped
	}
	if !visitor {
		return nil, fmt.Errorf("cannot record conversation %s of tenant %s: it has no visitor turn, only answers", convID, tenant)
	}

	// Timing. The first step starts right away; a step after an answer
	// awaits its response.done, then the pause the visitor took; a spoken
	// turn that began while the answer to the previous spoken turn was
	// still being made interrupted it, and starts after that turn's
	// speech_stopped instead; a step after an unanswered one follows it.
	for i := 1; i < len(steps); i++ {
		s, p := steps[i], steps[i-1]
		start := s.turn.StartedAt
		switch {
		case p.answer != nil && s.kind == liveSpoken && p.kind == liveSpoken && start.Before(p.answer.EndedAt):
			s.await, s.dt = recording.AwaitSpeechStopped, liveGap(start.Sub(liveSpeechStopped(p.turn)))
		case p.answer != nil:
			s.await, s.dt = recording.AwaitResponseDone, liveGap(start.Sub(p.answer.EndedAt))
		default:
			s.dt = liveGap(start.Sub(p.turn.EndedAt))
		}
	}

	// Expectations: a word of what was kept, for the answers that
	// completed (an interrupted or failed answer is not a reference).
	if expect {
		for _, s := range steps {
			a := s.answer
			if a == nil || a.Status != storage.TurnCompleted {
				continue
			}
			reply, _, err := text(a)
			if err != nil {
				return nil, err
			}
			s.expect.ReplyContains = liveWord(reply)
			if s.kind == liveSpoken {
				s.expect.TranscriptContains = liveWord(s.transcript)
			}
		}
	}
	return steps, nil
}

// liveClientItem reports whether a stored turn is an item the client
// created (conversation.item.create): the gateway stores those with no
// latency and the same start and end (gateway/session.go createItem),
// while a spoken turn runs from the start of the speech to its transcript
// and an answer from its request to response.done.
func liveClientItem(t *storage.Turn) bool {
	return t.Latency == (storage.Latency{}) && t.StartedAt.Equal(t.EndedAt)
}

// liveVoice reports whether latency has voice figures: the turn is
// spoken, or answers a spoken turn.
func liveVoice(l storage.Latency) bool {
	return l.EndOfTurnMS > 0 || l.FirstPartialMS > 0 || l.FinalTranscriptMS > 0 || l.FirstAudioMS > 0 || l.FirstAudioSentMS > 0
}

// liveSpeechStopped estimates when the gateway decided a spoken turn had
// ended (its speech_stopped): the turn ends with its final transcript,
// FinalTranscriptMS after the end of the speech, and the end of the turn
// was decided EndOfTurnMS after it.
func liveSpeechStopped(u *storage.Turn) time.Time {
	l := u.Latency
	if l.FinalTranscriptMS <= 0 {
		return u.EndedAt
	}
	speechEnd := u.EndedAt.Add(-time.Duration(l.FinalTranscriptMS) * time.Millisecond)
	return speechEnd.Add(time.Duration(l.EndOfTurnMS) * time.Millisecond)
}

// liveGap is a pause in milliseconds, clamped to [0, liveMaxGap].
func liveGap(d time.Duration) float64 {
	return ms(min(max(d, 0), liveMaxGap))
}

// liveWord is the first word of at least four letters of s, lowercased
// ("" when there is none). Redaction placeholders ("[email]") are not
// words of the conversation.
func liveWord(s string) string {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) {
			i += n
			continue
		}
		j := i
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if !unicode.IsLetter(r) {
				break
			}
			j += n
		}
		placeholder := i > 0 && s[i-1] == '[' && j < len(s) && s[j] == ']'
		if w := s[i:j]; !placeholder && utf8.RuneCountInString(w) >= 4 {
			return strings.ToLower(w)
		}
		i = j
	}
	return ""
}

// writeLive writes a live session's steps, each with its own timing.
func (r *recorder) writeLive(w io.Writer, h recording.Header, steps []*liveStep) error {
	var err error
	if r.w, err = recording.NewWriter(w, h); err != nil {
		return err
	}
	if err := r.send(r.sessionUpdate()); err != nil {
		return err
	}
	for _, s := range steps {
		r.await, r.dt = s.await, s.dt
		if s.expect != (recording.Expect{}) {
			e := s.expect
			if err := r.event(recording.Event{Expect: &e}); err != nil {
				return err
			}
		}
		switch s.kind {
		case liveSpoken:
			err = r.speech(s.speech)
		case liveTyped:
			// The answer was asked for when one came; a message the
			// client added without asking gets none.
			if err = r.item("user", "input_text", s.text); err == nil && s.answer != nil {
				err = r.respond()
			}
		case liveRespond:
			err = r.respond()
		case liveAssistant:
			err = r.item("assistant", "output_text", s.text)
		default:
			err = errors.New("unknown step")
		}
		if err != nil {
			return err
		}
	}
	return r.w.Flush()
}
