package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"parley/media"
	"parley/privacy/textmeta"
	"parley/storage"
	"parley/storage/seal"
)

// recorder persists conversations off the session loops. Jobs of one
// conversation always go to the same shard, so they are written in order
// (the conversation row before its turns, turns in sequence). A full shard
// applies back-pressure to the session that feeds it rather than dropping a
// turn.
//
// The recorder is also where a turn becomes what storage may keep: its
// text is redacted under the tenant's policy, scored (sentiment), and
// sealed; logged audio is encoded to Ogg Opus and sealed; at the end of a
// conversation its language and mean sentiment are computed and a usage
// event is written. Plaintext never goes further than this.
type recorder struct {
	store  storage.Store
	sealer Sealer
	policy func(ctx context.Context, tenantID string) (storage.Policy, error) // nil: sessions' own

	log     zerolog.Logger
	metrics *metrics
	shards  []chan recordJob
	wg      sync.WaitGroup
}

type recordJob struct {
	sessionID string // for logs
	create    *storage.Conversation
	turn      *turnJob
	end       *endJob
	truncate  *truncateJob
}

// turnJob is a finished turn: the row (without its text), the plaintext
// and what the tenant's policy says to do with it.
type turnJob struct {
	row    *storage.Turn
	text   string // stored only when row.TextStored
	redact storage.Redaction
	// audio is the turn's 16 kHz audio when the tenant logs audio (nil
	// otherwise), kept until audioExpires.
	audio        []int16
	audioExpires time.Time
}

// truncateJob shortens a stored turn's text to what the user heard.
type truncateJob struct {
	tenantID, conversationID, itemID, text string
	redact                                 storage.Redaction
}

type endJob struct {
	tenantID, id string
	at           time.Time
	channel      string
	started      time.Time
}

func newRecorder(store storage.Store, sealer Sealer, policy func(context.Context, string) (storage.Policy, error),
	log zerolog.Logger, m *metrics, shards, depth int) *recorder {
	r := &recorder{store: store, sealer: sealer, policy: policy, log: log, metrics: m, shards: make([]chan recordJob, shards)}
	for i := range r.shards {
		r.shards[i] = make(chan recordJob, depth)
		r.wg.Add(1)
		go r.work(r.shards[i])
	}
	return r
}

func (r *recorder) submit(conversationID string, j recordJob) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(conversationID))
	r.shards[h.Sum32()%uint32(len(r.shards))] <- j
}

// close stops accepting jobs and waits until every queued job is written.
// All sessions must have ended first.
func (r *recorder) close() {
	for _, s := range r.shards {
		close(s)
	}
	r.wg.Wait()
}

// Batching: a shard collects the jobs that arrive within batchLinger of
// the first (at most maxBatch) and writes them in one transaction. Commits
// dominate the cost of a write, so under load many turns share one; a lone
// turn waits batchLinger at most.
const (
	maxBatch    = 64
	batchLinger = 5 * time.Millisecond
)

func (r *recorder) work(jobs <-chan recordJob) {
	defer r.wg.Done()
	batch := make([]recordJob, 0, maxBatch)
	writes := make([]storage.Write, 0, 2*maxBatch)
	owners := make([]int, 0, 2*maxBatch)
	// meta accumulates the text metadata of this shard's open
	// conversations (a conversation's jobs all come to one shard).
	meta := map[string]*textmeta.Aggregate{}
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for j := range jobs {
		batch = append(batch[:0], j)
		linger.Reset(batchLinger)
	fill:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-jobs:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		writes, owners = writes[:0], owners[:0]
		for i := range batch {
			n := len(writes)
			writes = r.prepare(&batch[i], meta, writes)
			for range len(writes) - n {
				owners = append(owners, i)
			}
		}
		r.flush(batch, writes, owners)
		for i := range batch {
			batch[i] = recordJob{}
		}
		for i := range writes {
			writes[i] = storage.Write{}
		}
	}
}

// prepare appends the writes of job j: redacted, scored and sealed. A job
// whose sealing fails (the tenant's data key could not be read or made)
// is reported and written without its text or audio, never in clear.
func (r *recorder) prepare(j *recordJob, meta map[string]*textmeta.Aggregate, ws []storage.Write) []storage.Write {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case j.create != nil:
		meta[j.create.ID] = &textmeta.Aggregate{}
		return append(ws, storage.Write{Create: j.create})
	case j.turn != nil:
		t := j.turn
		row := t.row
		r.stricter(ctx, t)
		if row.TextStored {
			text := redactKinds(t.redact).Redact(t.text)
			row.Sentiment = textmeta.Sentiment(text)
			if m := meta[row.ConversationID]; m != nil && row.Role == storage.RoleUser {
				m.AddScored(text, row.Sentiment)
			}
			sealed, err := r.seal(ctx, row.TenantID, []byte(text), seal.TurnAAD(row.TenantID, row.ConversationID, row.ID))
			if err != nil {
				r.report(*j, fmt.Errorf("sealing the turn's text: %w", err))
				row.TextStored = false
			}
			row.TextSealed = sealed
		}
		ws = append(ws, storage.Write{Turn: row})
		if len(t.audio) > 0 {
			if a := r.audio(ctx, j, t); a != nil {
				ws = append(ws, storage.Write{Audio: a})
			}
		}
		return ws
	case j.end != nil:
		e := j.end
		w := &storage.EndWrite{TenantID: e.tenantID, ID: e.id, At: e.at}
		if m := meta[e.id]; m != nil {
			w.Language, w.Sentiment = m.Language(), m.Sentiment()
			delete(meta, e.id)
		}
		ws = append(ws, storage.Write{End: w})
		return append(ws, storage.Write{Usage: &storage.UsageEvent{
			ID: "use_" + e.id, TenantID: e.tenantID, ConversationID: e.id, Channel: e.channel, Language: w.Language,
			At: e.at.UTC(), DurationMS: max(0, e.at.Sub(e.started).Milliseconds()),
			ExpiresAt: e.at.Add(storage.UsageRetention).UTC(),
		}})
	default:
		t := j.truncate
		w := &storage.TruncateWrite{TenantID: t.tenantID, ConversationID: t.conversationID, ItemID: t.itemID}
		text := redactKinds(t.redact).Redact(t.text)
		sealed, err := r.seal(ctx, t.tenantID, []byte(text), seal.TurnAAD(t.tenantID, t.conversationID, t.itemID))
		if err != nil {
			r.report(*j, fmt.Errorf("sealing the truncated text: %w", err))
			return ws
		}
		w.TextSealed = sealed
		return append(ws, storage.Write{Truncate: w})
	}
}

// stricter applies the tenant's policy as it is now to a turn of a session
// that started under an earlier one, where the two differ: the shorter
// expiry, no text when transcripts are no longer kept, no audio when
// logging was turned off, and every kind of redaction either asks for. So
// a policy change reaches the sessions already running (within the
// policy cache's lifetime), not only new ones. The policy is read from
// Options.Policy (cached by parleyd); without one nothing changes.
func (r *recorder) stricter(ctx context.Context, t *turnJob) {
	if r.policy == nil {
		return
	}
	p, err := r.policy(ctx, t.row.TenantID)
	if err != nil {
		return // the session's own policy still applies
	}
	row := t.row
	if exp := p.Retention().TurnExpiry(row.StartedAt).UTC(); exp.Before(row.ExpiresAt) {
		row.ExpiresAt = exp
	}
	if !p.Retention().StoresText() {
		row.TextStored, t.text = false, ""
	}
	if !p.AudioLogging {
		t.audio = nil
	} else if exp := row.EndedAt.Add(time.Duration(p.AudioDays) * 24 * time.Hour).UTC(); exp.Before(t.audioExpires) {
		t.audioExpires = exp
	}
	t.redact.Emails = t.redact.Emails || p.Redact.Emails
	t.redact.Phones = t.redact.Phones || p.Redact.Phones
	t.redact.Cards = t.redact.Cards || p.Redact.Cards
	t.redact.IBANs = t.redact.IBANs || p.Redact.IBANs
}

// seal seals with a retry: the first seal of a tenant may have to store
// its data key.
func (r *recorder) seal(ctx context.Context, tenantID string, plaintext, aad []byte) ([]byte, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		var b []byte
		if b, err = r.sealer.Seal(ctx, tenantID, plaintext, aad); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// audio encodes a logged turn's audio to Ogg Opus and seals it.
func (r *recorder) audio(ctx context.Context, j *recordJob, t *turnJob) *storage.TurnAudio {
	row := t.row
	ogg, err := encodeOggOpus(t.audio)
	if err == nil {
		var sealed []byte
		sealed, err = r.seal(ctx, row.TenantID, ogg, seal.AudioAAD(row.TenantID, row.ConversationID, row.ID))
		clear(ogg)
		if err == nil {
			return &storage.TurnAudio{
				TenantID: row.TenantID, ConversationID: row.ConversationID, TurnID: row.ID, Format: "audio/ogg",
				Sealed: sealed, DurationMS: int64(len(t.audio)) * 1000 / PipelineRate,
				CreatedAt: row.EndedAt, ExpiresAt: t.audioExpires,
			}
		}
	}
	r.report(*j, fmt.Errorf("logging the turn's audio: %w", err))
	return nil
}

// flush writes a batch, retrying the whole batch when the store fails (a
// failed batch applies nothing). Per-write outcomes: a conflict means a
// retried write had landed, not-found means the conversation row is
// missing (its own write failed and was reported); anything else is
// reported here.
func (r *recorder) flush(batch []recordJob, writes []storage.Write, owners []int) {
	if len(writes) == 0 {
		return
	}
	var errs []error
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs, err = r.store.WriteBatch(ctx, writes)
		cancel()
		if err == nil {
			break
		}
	}
	for i := 0; i < len(owners); i++ {
		owner := owners[i]
		e := err
		if e == nil && i < len(errs) {
			e = errs[i]
		}
		if e == nil || errors.Is(e, storage.ErrConflict) || errors.Is(e, storage.ErrNotFound) {
			continue
		}
		r.report(batch[owner], e)
		if err != nil {
			// A failed batch fails every write alike: report each job once.
			for i+1 < len(owners) && owners[i+1] == owner {
				i++
			}
		}
	}
}

func (r *recorder) report(j recordJob, err error) {
	r.metrics.storageErrors.Inc()
	ev := r.log.Error().Err(err).Str("session_id", j.sessionID)
	switch {
	case j.create != nil:
		ev = ev.Str("conversation_id", j.create.ID).Str("op", "create_conversation")
	case j.turn != nil:
		ev = ev.Str("conversation_id", j.turn.row.ConversationID).Str("item_id", j.turn.row.ID).Str("op", "append_turn")
	case j.end != nil:
		ev = ev.Str("conversation_id", j.end.id).Str("op", "end_conversation")
	case j.truncate != nil:
		ev = ev.Str("conversation_id", j.truncate.conversationID).Str("item_id", j.truncate.itemID).Str("op", "truncate_turn")
	}
	ev.Msg("storage write failed")
}

// encodeOggOpus encodes 16 kHz PCM as an Ogg Opus file (20 ms frames, the
// last one padded with silence), in memory.
func encodeOggOpus(pcm []int16) ([]byte, error) {
	enc, err := media.NewOpusEncoder(PipelineRate)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := media.NewOggOpusWriter(&buf, PipelineRate, enc.PreSkip())
	if err != nil {
		return nil, err
	}
	frame := enc.FrameSize()
	packet := make([]byte, 0, 1500)
	last := make([]int16, frame)
	for i := 0; i < len(pcm); i += frame {
		f := pcm[i:min(i+frame, len(pcm))]
		if len(f) < frame {
			copy(last, f)
			f = last
		}
		p, err := enc.Encode(f, packet[:0])
		if err != nil {
			return nil, err
		}
		if err := w.WritePacket(p); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
