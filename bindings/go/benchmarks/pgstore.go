package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgStore is the baseline: an event store a Go team writes by hand on pgx, with the schema of
// hallgren/eventsourcing's SQL event store (one events table, a version per aggregate, unique
// per aggregate: the optimistic lock). A command loads the aggregate's events, folds them,
// decides, and inserts the new event at the next version; a conflict reloads and decides again.
type pgStore struct{ pool *pgxpool.Pool }

const schema = `
CREATE TABLE IF NOT EXISTS pgx_bench_events (
	seq        BIGSERIAL PRIMARY KEY,
	id         VARCHAR NOT NULL,
	version    INTEGER NOT NULL,
	reason     VARCHAR NOT NULL,
	type       VARCHAR NOT NULL,
	timestamp  TIMESTAMPTZ NOT NULL,
	data       BYTEA NOT NULL,
	metadata   BYTEA,
	UNIQUE (id, type, version)
)`

func openPgStore(ctx context.Context, url string) (*pgStore, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, schema); err != nil {
		pool.Close()
		return nil, err
	}
	return &pgStore{pool: pool}, nil
}

func (s *pgStore) close() { s.pool.Close() }

// load folds an aggregate's events: its balance and version.
func (s *pgStore) load(ctx context.Context, id string) (int64, int, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, reason, data FROM pgx_bench_events WHERE id = $1 AND type = 'wallet' ORDER BY version`, id)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var balance int64
	version := 0
	var reason string
	var data []byte
	for rows.Next() {
		if err := rows.Scan(&version, &reason, &data); err != nil {
			return 0, 0, err
		}
		if balance, err = apply(balance, reason, data); err != nil {
			return 0, 0, err
		}
	}
	return balance, version, rows.Err()
}

func (s *pgStore) insert(ctx context.Context, tx pgx.Tx, id string, version int, reason string, data []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO pgx_bench_events (id, version, reason, type, timestamp, data) VALUES ($1, $2, $3, 'wallet', $4, $5)`,
		id, version, reason, time.Now(), data)
	return err
}

// command loads the aggregate, decides to append one event, and saves it at the next version,
// retrying on a conflict (a unique violation).
func (s *pgStore) command(ctx context.Context, id, reason string, data []byte) error {
	for range 10 {
		_, version, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.insert(ctx, tx, id, version+1, reason, data) })
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			continue
		}
		return err
	}
	return fmt.Errorf("%s: conflicts every time", id)
}

// write stores count events in one transaction per 100.
func (s *pgStore) write(ctx context.Context, id string, count int, reason string, data []byte) error {
	for start := 0; start < count; start += 100 {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			for v := start + 1; v <= min(start+100, count); v++ {
				if err := s.insert(ctx, tx, id, v, reason, data); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
