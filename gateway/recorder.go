package gateway

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"parley/storage"
)

// recorder persists conversations off the session loops. Jobs of one
// conversation always go to the same shard, so they are written in order
// (the conversation row before its turns, turns in sequence). A full shard
// applies back-pressure to the session that feeds it rather than dropping a
// turn.
type recorder struct {
	store   storage.Store
	log     zerolog.Logger
	metrics *metrics
	shards  []chan recordJob
	wg      sync.WaitGroup
}

type recordJob struct {
	sessionID string // for logs
	create    *storage.Conversation
	turn      *storage.Turn
	end       *endJob
	truncate  *truncateJob
}

// truncateJob shortens a stored turn's text to what the user heard.
type truncateJob struct {
	tenantID, conversationID, itemID, text string
}

type endJob struct {
	tenantID, id string
	at           time.Time
}

func newRecorder(store storage.Store, log zerolog.Logger, m *metrics, shards, depth int) *recorder {
	r := &recorder{store: store, log: log, metrics: m, shards: make([]chan recordJob, shards)}
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
	writes := make([]storage.Write, 0, maxBatch)
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
		writes = writes[:0]
		for _, j := range batch {
			writes = append(writes, j.write())
		}
		r.flush(batch, writes)
		for i := range batch {
			batch[i] = recordJob{}
		}
	}
}

func (j recordJob) write() storage.Write {
	switch {
	case j.create != nil:
		return storage.Write{Create: j.create}
	case j.turn != nil:
		return storage.Write{Turn: j.turn}
	case j.end != nil:
		return storage.Write{End: &storage.EndWrite{TenantID: j.end.tenantID, ID: j.end.id, At: j.end.at}}
	default:
		t := j.truncate
		return storage.Write{Truncate: &storage.TruncateWrite{TenantID: t.tenantID, ConversationID: t.conversationID, ItemID: t.itemID, Text: t.text}}
	}
}

// flush writes a batch, retrying the whole batch when the store fails (a
// failed batch applies nothing). Per-write outcomes: a conflict means a
// retried write had landed, not-found means the conversation row is
// missing (its own write failed and was reported); anything else is
// reported here.
func (r *recorder) flush(batch []recordJob, writes []storage.Write) {
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
	for i, j := range batch {
		e := err
		if e == nil && i < len(errs) {
			e = errs[i]
		}
		if e == nil || errors.Is(e, storage.ErrConflict) || errors.Is(e, storage.ErrNotFound) {
			continue
		}
		r.report(j, e)
	}
}

func (r *recorder) report(j recordJob, err error) {
	r.metrics.storageErrors.Inc()
	ev := r.log.Error().Err(err).Str("session_id", j.sessionID)
	switch {
	case j.create != nil:
		ev = ev.Str("conversation_id", j.create.ID).Str("op", "create_conversation")
	case j.turn != nil:
		ev = ev.Str("conversation_id", j.turn.ConversationID).Str("item_id", j.turn.ID).Str("op", "append_turn")
	case j.end != nil:
		ev = ev.Str("conversation_id", j.end.id).Str("op", "end_conversation")
	case j.truncate != nil:
		ev = ev.Str("conversation_id", j.truncate.conversationID).Str("item_id", j.truncate.itemID).Str("op", "truncate_turn")
	}
	ev.Msg("storage write failed")
}
