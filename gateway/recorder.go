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

func (r *recorder) work(jobs <-chan recordJob) {
	defer r.wg.Done()
	for j := range jobs {
		r.do(j)
	}
}

func (r *recorder) do(j recordJob) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		switch {
		case j.create != nil:
			err = r.store.CreateConversation(ctx, j.create)
			if errors.Is(err, storage.ErrConflict) {
				err = nil // a retried insert that had landed
			}
		case j.turn != nil:
			err = r.store.AppendTurn(ctx, j.turn)
			if errors.Is(err, storage.ErrConflict) {
				err = nil
			}
		case j.end != nil:
			err = r.store.EndConversation(ctx, j.end.tenantID, j.end.id, j.end.at)
		}
		cancel()
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			break
		}
	}
	if err != nil {
		r.metrics.storageErrors.Inc()
		ev := r.log.Error().Err(err).Str("session_id", j.sessionID)
		switch {
		case j.create != nil:
			ev = ev.Str("conversation_id", j.create.ID).Str("op", "create_conversation")
		case j.turn != nil:
			ev = ev.Str("conversation_id", j.turn.ConversationID).Str("item_id", j.turn.ID).Str("op", "append_turn")
		case j.end != nil:
			ev = ev.Str("conversation_id", j.end.id).Str("op", "end_conversation")
		}
		ev.Msg("storage write failed")
	}
}
