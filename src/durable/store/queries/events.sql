-- name: event_lock_names
-- Shared lock per (app, event name), taken before an event is stored. A wait being stored takes the
-- same key exclusively, so each side's next statement sees the other's commit: no wait misses an
-- event that arrives while it is being stored. The subquery keeps the locks' name order (it is not
-- flattened and its volatile column is not pruned). An ingest sends it as text with its BEGIN
-- (db.simple): no dollar quoting or block comment here.
SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended($1 || '/' || n, 0))
                      FROM unnest($2::text[]) AS n ORDER BY n) AS locked;

-- name: event_store
-- Store a list of events (all-or-nothing, in one transaction after event_lock_names; durable_events_insert
-- skips ids seen in the last 24 h). Returns each stored event with the functions it triggers (or only
-- function $6: a cron occurrence, or "run function" from the dashboard), the waits it may resolve and the
-- runs it may cancel (cancelOn). event_lock_names ran in an earlier statement, so this statement's
-- snapshot holds every wait committed before the lock. Waits and cancelOn rows are found by fingerprint
-- (migrations 0013 and 0016; docs/architecture.md, "Matching events to waits and cancels"): `fps` is
-- computed once per event, and only when something is parked on its name; the exact subset match is
-- checked in Python. `now_ms`: the database clock (epoch ms) flow control decides with, and the time of
-- an event sent without `ts`. The workspace's url, keys and cap, and the clock of a lease of $7 ms taken
-- by this transaction (`ready_at`, `db_now`, `lease_left_ms`), are what the runs it hands straight to a
-- worker start with (engine/flow.py, runs_create). durable_ingest_plain answers the same columns.
WITH now AS (
    SELECT (extract(epoch FROM durable_now()) * 1000)::bigint AS ms
), app AS (
    SELECT url, signing_key, previous_signing_key, signature_mode, max_concurrency IS NULL AS handed_off
    FROM apps WHERE id = $1
), stored AS (
    SELECT e.*, CASE WHEN durable_parked_on($1, e.name) THEN durable_match_fps(e.data, 256) ELSE '{}' END AS fps
    FROM durable_events_insert($1, $2::text[], $3::text[], $4::text[], $5::bigint[], (SELECT ms FROM now)) AS e
)
SELECT s.seq, s.id, s.name, s.data, s.ts, (SELECT ms FROM now) AS now_ms,
       app.url, app.signing_key, app.previous_signing_key, app.signature_mode,
       coalesce(app.handed_off, false) AS handed_off, durable_now() AS ready_at, clock_timestamp() AS db_now,
       (extract(epoch FROM durable_now() + $7 * interval '1 millisecond' - durable_clock()) * 1000)::int
       AS lease_left_ms,
       CASE WHEN $6::text IS NULL THEN durable_triggered($1, s.name)
            ELSE (SELECT coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'config', f.config, 'paused', f.paused)),
                                  '[]')
                  FROM functions f WHERE f.app_id = $1 AND f.id = $6) END AS functions,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('runId', w.run_id, 'match', w.match)), '[]')
        FROM durable_waits_for($1, s.name, s.data, s.fps) AS w) AS waits,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('runId', c.run_id, 'match', c.match)), '[]')
        FROM durable_cancels_for($1, s.name, s.data, s.fps) AS c) AS cancels
FROM stored s LEFT JOIN app ON true
ORDER BY s.seq;  -- input order: the first matching event of a list wins a wait

-- name: event_list
SELECT e.seq, e.id, e.name, e.data, e.ts, e.received_at, e.outcomes,
       coalesce((SELECT jsonb_agg(jsonb_build_object('runId', r.id, 'functionId', r.function_id,
                                                     'status', r.status) ORDER BY r.id)
                 FROM runs r WHERE r.app_id = e.app_id AND r.event_id = e.id), '[]') AS runs
FROM events e
WHERE e.app_id = $1 AND ($2::bigint IS NULL OR e.seq < $2)
ORDER BY e.seq DESC
LIMIT $3;

-- name: event_ids_prune
DELETE FROM event_ids WHERE seen_at < durable_now() - interval '24 hours';

-- name: ingest_plain
-- An ingest in one statement, when its functions start their runs undecided and nothing parked may
-- match (durable_ingest_plain, migration 0016; engine/ingest.py). One row with `fallback` when a check
-- failed: nothing was written.
SELECT * FROM durable_ingest_plain($1::text, $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                                   $7::text[], $8::text, $9::text, $10::int, $11::text[], $12::text[],
                                   $13::text[], $14::int[], $15::text[], $16::int[], $17::uuid[]);
