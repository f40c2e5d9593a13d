-- name: jobs_renew
-- Renew a held lease and set the job's attempt counter ($4: 1 once a step after a retry succeeded).
-- Called only when needed: before an invoke the lease would not cover, or after a retry succeeded.
-- Returns how much of the new lease is left as the statement ends (a stalled statement shows here).
UPDATE jobs SET available_at = durable_now() + $3 * interval '1 millisecond', attempt = $4
WHERE run_id = $1 AND lease_token = $2
RETURNING (extract(epoch FROM available_at - durable_clock()) * 1000)::int AS lease_left_ms;

-- name: step_park_sleep
-- Park the run in a durable sleep: the job becomes free and due at the sleep's end. The sleep starts
-- when its answer arrived ($7), not when this statement runs (after a checkpoint's steps were stored).
WITH lease AS (
    UPDATE jobs SET available_at = $4, ready_at = $4, attempt = 1, lease_token = NULL, claimed_by = NULL
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id
), step AS (
    INSERT INTO steps (run_id, id, type, status, attempts, app_ms, started_at)
    SELECT run_id, $3, 'sleep', 'sleeping', $5, $6, least($7::timestamptz, durable_now()) FROM lease
    ON CONFLICT (run_id, id) DO NOTHING
)
UPDATE runs r SET activity = 'sleeping' FROM lease WHERE r.id = lease.run_id
RETURNING r.id, pg_notify('durable_jobs', '');

-- name: step_wait_lock
-- Exclusive twin of event_lock_names for the (app, event name) a wait is being stored for.
SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0));

-- name: wait_park
-- Store a wait in one call (migration 0014 durable_wait_park): the (app, event name) lock, the look-back
-- for events stored since its invoke began, and the park when none came; see the migration for $11/$12.
SELECT outcome, candidates
FROM durable_wait_park($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12);

-- name: step_resolve_wait_now
-- A wait whose event had already arrived (after its invoke began): store it resolved, keep the lease.
WITH lease AS (
    UPDATE jobs SET available_at = durable_now() + $7 * interval '1 millisecond', attempt = 1, ready_at = durable_now()
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id
)
INSERT INTO steps (run_id, id, type, status, attempts, output, app_ms, started_at, ended_at)
SELECT run_id, $3, 'wait', 'completed', $4, $5, $6, durable_now(), durable_now() FROM lease
ON CONFLICT (run_id, id) DO NOTHING
RETURNING clock_timestamp() AS now;

-- name: step_retry_state
-- Lock the run's job (fenced on the lease) and read the retry the run last waited out, with the database
-- clock in epoch ms: an unreachable app's next try continues the outage recorded there.
SELECT r.retry, (extract(epoch FROM durable_now()) * 1000)::bigint AS now_ms
FROM jobs j JOIN runs r ON r.id = j.run_id
WHERE j.run_id = $1 AND j.lease_token = $2
FOR UPDATE OF j;

-- name: step_retry
-- A failed attempt that will be retried after $5 ms: the job becomes due then and uses up $8 (1, or 0
-- when the app was unreachable) of the step's attempts; the run shows the retry $9 (with nextAt and,
-- unless given, since filled in) and stays error-free. The attempt's error goes on its step's history
-- when the op named one, else on the run's (the last 50).
WITH lease AS (
    UPDATE jobs SET available_at = durable_now() + $5 * interval '1 millisecond',
                    ready_at = durable_now() + $5 * interval '1 millisecond',
                    attempt = attempt + $8::int, lease_token = NULL, claimed_by = NULL
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id, attempt - $8::int AS failed_attempt
), entry AS (
    SELECT run_id, failed_attempt,
           jsonb_build_object('attempt', failed_attempt, 'message', $4::jsonb ->> 'message',
                              'at', (extract(epoch FROM durable_now()) * 1000)::bigint) AS e
    FROM lease
), step AS (
    INSERT INTO steps AS s (run_id, id, type, status, attempts, error, errors, app_ms, started_at, ended_at)
    SELECT run_id, $3::text, 'run', 'retrying', failed_attempt, $4, jsonb_build_array(e), $6, $7, durable_now()
    FROM entry WHERE $3 IS NOT NULL
    ON CONFLICT (run_id, id) DO UPDATE
    SET status = 'retrying', attempts = EXCLUDED.attempts, error = EXCLUDED.error, app_ms = EXCLUDED.app_ms,
        ended_at = EXCLUDED.ended_at, errors = coalesce(s.errors, '[]') || EXCLUDED.errors
    WHERE s.status <> 'completed'
)
UPDATE runs r
SET activity = 'scheduled',
    retry = $9::jsonb || jsonb_build_object(
        'nextAt', (extract(epoch FROM durable_now() + $5 * interval '1 millisecond') * 1000)::bigint,
        'since', coalesce($9::jsonb -> 'since', to_jsonb((extract(epoch FROM durable_now()) * 1000)::bigint))),
    errors = CASE WHEN $3 IS NOT NULL THEN r.errors ELSE (
        SELECT jsonb_agg(x.e ORDER BY x.i) FROM jsonb_array_elements(coalesce(r.errors, '[]') || entry.e)
               WITH ORDINALITY AS x (e, i)
        WHERE x.i > jsonb_array_length(coalesce(r.errors, '[]')) + 1 - 50) END
FROM entry WHERE r.id = entry.run_id
RETURNING r.id, pg_notify('durable_jobs', '');

-- name: steps_complete_many
-- step_complete for many runs in one statement and one commit (group commit under load), several steps
-- of a run (a parallel answer, a checkpoint) in the order given, which `seq` keeps. Each row is fenced on
-- its own lease; job rows are locked in run_id order. Returns the runs whose steps were stored.
INSERT INTO steps AS s (run_id, id, type, status, attempts, output, queued_ms, app_ms, started_at, ended_at)
SELECT i.run_id, i.id, 'run', 'completed', i.attempts, i.output::jsonb, i.queued_ms, i.app_ms, i.started_at, i.ended_at
FROM (
    SELECT i.*
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::int[], $7::int[],
                $8::timestamptz[], $9::timestamptz[]) WITH ORDINALITY
         AS i (run_id, token, id, attempts, output, queued_ms, app_ms, started_at, ended_at, ord)
    JOIN jobs j ON j.run_id = i.run_id AND j.lease_token = i.token
    ORDER BY j.run_id, i.ord
    FOR KEY SHARE OF j
) AS i
ON CONFLICT (run_id, id) DO UPDATE
SET status = 'completed', attempts = EXCLUDED.attempts, output = EXCLUDED.output, error = NULL,
    queued_ms = EXCLUDED.queued_ms, app_ms = EXCLUDED.app_ms, ended_at = EXCLUDED.ended_at
WHERE s.status <> 'completed'
RETURNING s.run_id, clock_timestamp() AS now;
