-- name: run_complete
-- The handler returned: the run ends and its job goes (freeing its concurrency slot: wake claimers).
WITH lease AS (
    DELETE FROM jobs WHERE run_id = $1 AND lease_token = $2 RETURNING run_id, gate
), cancels AS (
    DELETE FROM run_cancels c USING lease WHERE c.run_id = lease.run_id
)
UPDATE runs r SET status = 'completed', activity = NULL, output = $3, error = NULL, ended_at = durable_now()
FROM lease WHERE r.id = lease.run_id
RETURNING r.id, CASE WHEN lease.gate IS NOT NULL THEN pg_notify('durable_jobs', '') END;

-- name: run_fail
-- Out of attempts, a non-retryable error, or the app unreachable for too long: the run fails with $4,
-- and so does its step when the op named one. The attempt's error goes on that step's history, else on
-- the run's (the last 50); the run waits on no retry any more.
WITH lease AS (
    DELETE FROM jobs WHERE run_id = $1 AND lease_token = $2 RETURNING run_id, attempt, gate
), cancels AS (
    DELETE FROM run_cancels c USING lease WHERE c.run_id = lease.run_id
), entry AS (
    SELECT run_id, attempt, gate,
           jsonb_build_object('attempt', attempt, 'message', $4::jsonb ->> 'message',
                              'at', (extract(epoch FROM durable_now()) * 1000)::bigint) AS e
    FROM lease
), step AS (
    INSERT INTO steps AS s (run_id, id, type, status, attempts, error, errors, app_ms, started_at, ended_at)
    SELECT run_id, $3::text, 'run', 'failed', attempt, $4, jsonb_build_array(e), $5, $6, durable_now()
    FROM entry WHERE $3 IS NOT NULL
    ON CONFLICT (run_id, id) DO UPDATE
    SET status = 'failed', attempts = EXCLUDED.attempts, error = EXCLUDED.error, app_ms = EXCLUDED.app_ms,
        ended_at = EXCLUDED.ended_at, errors = coalesce(s.errors, '[]') || EXCLUDED.errors
    WHERE s.status <> 'completed'
)
UPDATE runs r
SET status = 'failed', activity = NULL, error = $4, ended_at = durable_now(), retry = NULL,
    errors = CASE WHEN $3 IS NOT NULL THEN r.errors ELSE (
        SELECT jsonb_agg(x.e ORDER BY x.i) FROM jsonb_array_elements(coalesce(r.errors, '[]') || entry.e)
               WITH ORDINALITY AS x (e, i)
        WHERE x.i > jsonb_array_length(coalesce(r.errors, '[]')) + 1 - 50) END
FROM entry WHERE r.id = entry.run_id
RETURNING r.id, CASE WHEN entry.gate IS NOT NULL THEN pg_notify('durable_jobs', '') END;

-- name: run_get
-- A run, with its concurrency gate's load when it has a job in a gate.
SELECT r.id, r.app_id, r.function_id, r.event_id, r.event, r.status, r.activity, r.output, r.error,
       r.retry, r.errors, r.rerun_of, r.flow, r.created_at, r.started_at, r.ended_at, j.gate_limit, j.available_at,
       r.parent_run_id, r.parent_step_id, r.cancelled_by,
       (SELECT count(*) FROM jobs g
        WHERE g.gate = j.gate AND g.lease_token IS NOT NULL AND g.available_at > durable_now()) AS gate_running
FROM runs r LEFT JOIN jobs j ON j.run_id = r.id
WHERE r.id = $1;

-- name: run_steps
SELECT id, type, status, attempts, output, error, errors, queued_ms, app_ms, started_at, ended_at
FROM steps WHERE run_id = $1 ORDER BY seq;

-- name: run_list
-- $7: a pre-filter of a `match` on event.data (jsonb @>; the caller checks `matches` exactly on
-- match_data); $8: JSON text the output must contain (@>), null for no output filter. The output comes
-- whole when its JSON text has at most 2048 characters, else as output_preview: the first 2048 of them.
SELECT id, app_id, function_id, event_id, status, activity, error, flow, created_at, started_at, ended_at,
       parent_run_id, cancelled_by, CASE WHEN $7::jsonb IS NOT NULL THEN event -> 'data' END AS match_data,
       CASE WHEN length(output::text) <= 2048 THEN output END AS output,
       CASE WHEN length(output::text) > 2048 THEN left(output::text, 2048) END AS output_preview
FROM runs
WHERE app_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR function_id = $3)
  AND ($4::text IS NULL OR activity = $4)
  AND ($5::text IS NULL OR id < $5)
  AND ($7::jsonb IS NULL OR event -> 'data' @> $7::jsonb)
  AND ($8::text IS NULL OR output @> $8::text::jsonb)
ORDER BY id DESC
LIMIT $6;

-- name: run_copy_steps
-- Rerun from a step: memoize, in the new run, every completed step recorded before that step.
INSERT INTO steps (run_id, id, type, status, attempts, output, queued_ms, app_ms, started_at, ended_at)
SELECT $2, s.id, s.type, 'completed', s.attempts, s.output, s.queued_ms, s.app_ms, s.started_at, s.ended_at
FROM steps s
WHERE s.run_id = $1 AND s.status = 'completed'
  AND s.seq < (SELECT seq FROM steps WHERE run_id = $1 AND id = $3)
ORDER BY s.seq;

-- name: run_step_exists
SELECT 1 FROM steps WHERE run_id = $1 AND id = $2;

-- name: runs_complete_many
-- run_complete for many runs in one statement and one commit (engine/group_commit.py), each with the
-- steps of its last answer (a checkpoint's, docs/protocol.md "Checkpointing"; none after a plain done):
-- runs $1 with lease tokens $2 complete with outputs $3 (JSON text); step rows $4.. ($11 their runs)
-- are stored only for runs whose job this statement deletes, so a lost lease stores nothing of its run.
-- Job rows are locked in run_id order first (as every multi-run statement locks them).
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[]) AS i (run_id, token, output)
), locked AS (
    SELECT j.run_id, i.output
    FROM jobs j JOIN input i ON i.run_id = j.run_id AND j.lease_token = i.token
    ORDER BY j.run_id
    FOR UPDATE OF j
), lease AS (
    DELETE FROM jobs j USING locked l WHERE j.run_id = l.run_id RETURNING j.run_id, j.gate
), cancels AS (
    DELETE FROM run_cancels c USING lease WHERE c.run_id = lease.run_id
), stored AS (
    INSERT INTO steps AS s (run_id, id, type, status, attempts, output, queued_ms, app_ms, started_at, ended_at)
    SELECT st.run_id, st.id, 'run', 'completed', st.attempts, st.output::jsonb, st.queued_ms, st.app_ms,
           st.started_at, st.ended_at
    FROM unnest($11::text[], $4::text[], $5::int[], $6::text[], $7::int[], $8::int[], $9::timestamptz[],
                $10::timestamptz[]) WITH ORDINALITY
         AS st (run_id, id, attempts, output, queued_ms, app_ms, started_at, ended_at, ord)
    JOIN lease ON lease.run_id = st.run_id
    ORDER BY st.run_id, st.ord
    ON CONFLICT (run_id, id) DO UPDATE
    SET status = 'completed', attempts = EXCLUDED.attempts, output = EXCLUDED.output, error = NULL,
        queued_ms = EXCLUDED.queued_ms, app_ms = EXCLUDED.app_ms, ended_at = EXCLUDED.ended_at
    WHERE s.status <> 'completed'
)
UPDATE runs r
SET status = 'completed', activity = NULL, output = l.output::jsonb, error = NULL, ended_at = durable_now()
FROM locked l JOIN lease ON lease.run_id = l.run_id
WHERE r.id = l.run_id
RETURNING r.id, clock_timestamp() AS now, CASE WHEN lease.gate IS NOT NULL THEN pg_notify('durable_jobs', '') END;
