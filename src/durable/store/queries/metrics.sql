-- name: metrics_try_lock
-- One rollup at a time across engine processes; the others skip this round.
SELECT pg_try_advisory_xact_lock(7408310013);

-- name: metrics_cursor
SELECT created_to, ended_to, durable_now() - interval '2 seconds' AS upto FROM metrics_cursor WHERE id = 1 FOR UPDATE;

-- name: metrics_created
-- Runs created since the cursor, per function and minute. The 2 s lag lets transactions that began
-- earlier commit first.
SELECT app_id, function_id, date_trunc('minute', created_at) AS minute, count(*)::int AS n
FROM runs WHERE created_at > $1 AND created_at <= $2
GROUP BY 1, 2, 3;

-- name: metrics_ended
-- Runs ended since the cursor, with the durable and app time of their steps.
SELECT r.app_id, r.function_id, date_trunc('minute', r.ended_at) AS minute, r.status,
       (extract(epoch FROM r.ended_at - r.created_at) * 1000)::bigint AS duration_ms,
       coalesce(s.queued_ms, 0)::bigint AS queued_ms, coalesce(s.app_ms, 0)::bigint AS app_ms
FROM runs r
LEFT JOIN LATERAL (SELECT sum(queued_ms) AS queued_ms, sum(app_ms) AS app_ms FROM steps WHERE run_id = r.id) s
     ON true
WHERE r.ended_at > $1 AND r.ended_at <= $2;

-- name: metrics_add
-- Add one rollup's counts to the per-minute rows: sparse duration histograms added bucket by bucket,
-- the shortest and longest durations kept.
INSERT INTO metrics_minute AS m (app_id, function_id, minute, started, completed, failed, queued_ms, app_ms,
                                 durations, min_ms, max_ms)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::int[], $6::int[], $7::bigint[],
                     $8::bigint[], $9::text[]::jsonb[], $10::bigint[], $11::bigint[])
ON CONFLICT (app_id, minute, function_id) DO UPDATE
SET started = m.started + EXCLUDED.started, completed = m.completed + EXCLUDED.completed,
    failed = m.failed + EXCLUDED.failed, queued_ms = m.queued_ms + EXCLUDED.queued_ms,
    app_ms = m.app_ms + EXCLUDED.app_ms,
    durations = (SELECT coalesce(jsonb_object_agg(b.k, b.n), '{}')
                 FROM (SELECT x.k, sum(x.v::text::bigint) AS n
                       FROM (SELECT * FROM jsonb_each(m.durations)
                             UNION ALL SELECT * FROM jsonb_each(EXCLUDED.durations)) AS x (k, v)
                       GROUP BY x.k) AS b),
    min_ms = least(m.min_ms, EXCLUDED.min_ms), max_ms = greatest(m.max_ms, EXCLUDED.max_ms);

-- name: metrics_sample_backlog
INSERT INTO metrics_backlog AS b (app_id, minute, backlog)
SELECT a.id, date_trunc('minute', durable_now()),
       (SELECT count(*) FROM jobs j WHERE j.app_id = a.id AND j.lease_token IS NULL AND j.available_at <= durable_now())
FROM apps a
ON CONFLICT (app_id, minute) DO UPDATE SET backlog = greatest(b.backlog, EXCLUDED.backlog);

-- name: metrics_advance
UPDATE metrics_cursor SET created_to = $1, ended_to = $1 WHERE id = 1;

-- name: metrics_series
SELECT date_bin($3::interval, minute, timestamptz '2000-01-01') AS t,
       sum(started)::bigint AS started, sum(completed)::bigint AS completed, sum(failed)::bigint AS failed,
       sum(queued_ms)::bigint AS queued_ms, sum(app_ms)::bigint AS app_ms
FROM metrics_minute WHERE app_id = $1 AND minute >= $2
GROUP BY 1 ORDER BY 1;

-- name: metrics_backlog_series
SELECT date_bin($3::interval, minute, timestamptz '2000-01-01') AS t, max(backlog) AS backlog
FROM metrics_backlog WHERE app_id = $1 AND minute >= $2
GROUP BY 1 ORDER BY 1;

-- name: metrics_functions
-- `histogram`: rows rolled up before migration 0012 (their `durations` is empty).
SELECT function_id, completed, failed, durations, min_ms, max_ms, histogram
FROM metrics_minute WHERE app_id = $1 AND minute >= $2;

-- name: metrics_prune
DELETE FROM metrics_minute WHERE minute < durable_now() - interval '8 days';
