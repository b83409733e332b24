package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"parley/storage"
	"parley/storage/internal/check"
)

// WriteBatch implements storage.Store. The batch is sent as one pipeline
// on one connection (BEGIN, the writes, COMMIT: one round trip, one
// commit) and first without savepoints: most batches have no failing
// write, and PostgreSQL then does no subtransaction work. A write that
// fails at the server aborts that attempt, which is rolled back as a
// whole and retried with each write under a savepoint; there a failing
// write is rolled back to its savepoint and the writes after it are sent
// again in a new pipeline (two more round trips per failing write).
//
// Writes the server merely finds nothing for (a missing conversation or
// turn), and audio or usage events already stored (ON CONFLICT DO
// NOTHING, reported as ErrConflict), do not fail at the server and cost
// nothing extra.
func (s *Store) WriteBatch(ctx context.Context, ws []storage.Write) ([]error, error) {
	errs := make([]error, len(ws))
	valid := 0
	for i := range ws {
		if errs[i] = checkWrite(&ws[i]); errs[i] == nil {
			valid++
		}
	}
	if valid == 0 {
		return errs, nil
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	// pgxpool destroys a connection released inside a transaction, so an
	// attempt that ends halfway (ctx done, connection lost) cannot leak
	// its transaction into the pool.
	defer conn.Release()

	b := batchRun{conn: conn, ws: ws, errs: errs, seqs: make([]int, len(ws))}
	retry, err := b.run(ctx, false)
	if err != nil {
		return nil, err
	}
	if retry {
		if err := simpleExec(ctx, conn, "ROLLBACK"); err != nil {
			return nil, err
		}
		for i := range b.errs { // keep the ErrInvalid of invalid writes
			if checkWrite(&ws[i]) == nil {
				b.errs[i] = nil
			}
		}
		if retry, err = b.run(ctx, true); err != nil {
			return nil, err
		}
		if retry { // cannot happen: run with savepoints never asks to retry
			return nil, errors.New("postgres: WriteBatch: unexpected retry")
		}
	}
	for i, w := range ws {
		if w.Turn != nil && b.errs[i] == nil {
			w.Turn.Seq = b.seqs[i]
		}
	}
	return b.errs, nil
}

// checkWrite is check.Write, and the Validate of the records only a
// Backend's batch stores.
func checkWrite(w *storage.Write) error {
	if err := check.Write(w); err != nil {
		return err
	}
	switch {
	case w.Audio != nil:
		return w.Audio.Validate()
	case w.Usage != nil:
		return w.Usage.Validate()
	}
	return nil
}

type batchRun struct {
	conn *pgxpool.Conn
	ws   []storage.Write
	errs []error // ErrInvalid set beforehand; the result of each other write
	seqs []int   // the seq of each appended turn
}

// run sends the whole batch, in as many pipelines as needed, and commits.
// Without savepoints it stops at the first write that fails at the server
// and returns retry=true, the transaction then being aborted. A non-nil
// error fails the whole batch; the transaction may then be open or aborted
// and must not be committed.
func (b *batchRun) run(ctx context.Context, savepoints bool) (retry bool, err error) {
	next := 0     // the first write not sent yet
	begin := true // the pipeline must start the transaction
	for {
		var (
			p     pgx.Batch
			slots []int // per queued statement: the write's index, or -1
		)
		queue := func(w int, sql string, args ...any) {
			p.Queue(sql, args...)
			slots = append(slots, w)
		}
		if begin {
			queue(-1, "BEGIN")
		}
		for i := next; i < len(b.ws); i++ {
			w := &b.ws[i]
			if b.errs[i] != nil { // invalid: never sent
				continue
			}
			if savepoints {
				queue(-1, "SAVEPOINT parley_write")
			}
			switch {
			case w.Create != nil:
				queue(i, sqlCreateConversation, conversationArgs(w.Create)...)
			case w.Turn != nil:
				queue(i, sqlAppendTurn, turnArgs(w.Turn)...)
			case w.End != nil:
				queue(i, sqlEndConversation, endArgs(w.End)...)
			case w.Truncate != nil:
				queue(i, sqlTruncateTurnText, truncateArgs(w.Truncate)...)
			case w.Audio != nil:
				queue(i, sqlInsertAudio, audioArgs(w.Audio)...)
			case w.Usage != nil:
				queue(i, sqlInsertUsage, usageArgs(w.Usage)...)
			}
			if savepoints {
				queue(-1, "RELEASE SAVEPOINT parley_write")
			}
		}
		queue(-1, "COMMIT")

		failed, err := b.send(ctx, &p, slots)
		if err != nil {
			return false, err
		}
		if failed < 0 {
			return false, nil // committed
		}
		if !savepoints {
			return true, nil
		}
		// The statements of a pipeline are prepared before it runs,
		// which an aborted transaction refuses: roll back with the
		// simple protocol first.
		err = simpleExec(ctx, b.conn, "ROLLBACK TO SAVEPOINT parley_write; RELEASE SAVEPOINT parley_write")
		if err != nil {
			return false, fmt.Errorf("postgres: write %d failed (%w) and could not be rolled back: %w", failed, b.errs[failed], err)
		}
		next, begin = failed+1, false
	}
}

// simpleExec runs sql with the simple protocol, which prepares nothing.
func simpleExec(ctx context.Context, conn *pgxpool.Conn, sql string) error {
	_, err := conn.Conn().PgConn().Exec(ctx, sql).ReadAll()
	return err
}

// send runs one pipeline and records the results of its writes. It
// returns the index of the write that failed at the server (-1 if none),
// after which the server skipped the rest of the pipeline, or an error
// that fails the batch.
func (b *batchRun) send(ctx context.Context, p *pgx.Batch, slots []int) (failed int, err error) {
	br := b.conn.SendBatch(ctx, p)
	failed = -1
	for _, i := range slots {
		var err error
		if i < 0 {
			_, err = br.Exec()
		} else {
			err = b.result(br, i)
		}
		if err == nil {
			continue
		}
		var pe *pgconn.PgError
		if i < 0 || !errors.As(err, &pe) || ctx.Err() != nil {
			br.Close()
			if cerr := ctx.Err(); cerr != nil {
				return -1, cerr
			}
			return -1, err
		}
		failed = i // result recorded the write's error
		break
	}
	if err := br.Close(); err != nil && failed < 0 {
		return -1, err
	}
	if failed >= 0 && (b.conn.Conn().IsClosed() || ctx.Err() != nil) {
		return -1, fmt.Errorf("postgres: WriteBatch: connection lost after write %d failed: %w", failed, b.errs[failed])
	}
	return failed, nil
}

// result reads the result of write i into b.errs[i] (or b.seqs[i]) and
// returns the error the statement failed with, if any (a missing row is
// not one: the statement succeeded).
func (b *batchRun) result(br pgx.BatchResults, i int) error {
	w := &b.ws[i]
	var err error
	switch {
	case w.Create != nil:
		_, err = br.Exec()
		b.errs[i] = mapErr(err)
	case w.Turn != nil:
		var seq int
		err = br.QueryRow().Scan(&seq)
		b.seqs[i], b.errs[i] = appendTurnResult(seq, err)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
	case w.End != nil:
		var found bool
		err = br.QueryRow().Scan(&found)
		b.errs[i] = endConversationResult(found, err)
	case w.Truncate != nil:
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		b.errs[i] = truncateResult(tag, err)
	case w.Audio != nil:
		var found, inserted bool
		err = br.QueryRow().Scan(&found, &inserted)
		b.errs[i] = audioResult(found, inserted, err)
	case w.Usage != nil:
		var inserted bool
		err = br.QueryRow().Scan(&inserted)
		b.errs[i] = usageResult(inserted, err)
	}
	return err
}
