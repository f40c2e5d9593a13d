-- name: jobs_renew
-- Renew a held lease, and reset the attempt counter once a step after a retry succeeded. Called on the
-- hot path only when needed: after a retry, or when a third of the lease has passed.
UPDATE jobs SET available_at = now() + $3 * interval '1 millisecond', attempt = 1
WHERE run_id = $1 AND lease_token = $2
RETURNING clock_timestamp() AS now;

-- name: step_park_sleep
-- Park the run in a durable sleep: the job becomes free and due at the sleep's end.
WITH lease AS (
    UPDATE jobs SET available_at = $4, ready_at = $4, attempt = 1, lease_token = NULL, claimed_by = NULL
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id
), step AS (
    INSERT INTO steps (run_id, id, type, status, attempts, app_ms, started_at)
    SELECT run_id, $3, 'sleep', 'sleeping', $5, $6, now() FROM lease
    ON CONFLICT (run_id, id) DO NOTHING
)
UPDATE runs r SET activity = 'sleeping' FROM lease WHERE r.id = lease.run_id
RETURNING r.id, pg_notify('durable_jobs', '');

-- name: step_wait_lock
-- Exclusive twin of event_lock_names for the (app, event name) a wait is being stored for.
SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0));

-- name: step_park_wait
-- Park the run on an event: wait row, 'waiting' step, and a free job due at the deadline.
WITH lease AS (
    UPDATE jobs SET available_at = $7, ready_at = $7, attempt = 1, lease_token = NULL, claimed_by = NULL
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id, app_id
), wait AS (
    INSERT INTO waits (run_id, app_id, step_id, event_name, match, until)
    SELECT run_id, app_id, $3, $4, $5, $7 FROM lease
), step AS (
    INSERT INTO steps (run_id, id, type, status, attempts, app_ms, started_at)
    SELECT run_id, $3, 'wait', 'waiting', $8, $6, now() FROM lease
    ON CONFLICT (run_id, id) DO NOTHING
)
UPDATE runs r SET activity = 'waiting' FROM lease WHERE r.id = lease.run_id
RETURNING r.id, pg_notify('durable_jobs', '');

-- name: step_resolve_wait_now
-- A wait whose event had already arrived (after its invoke began): store it resolved, keep the lease.
WITH lease AS (
    UPDATE jobs SET available_at = now() + $7 * interval '1 millisecond', attempt = 1, ready_at = now()
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id
)
INSERT INTO steps (run_id, id, type, status, attempts, output, app_ms, started_at, ended_at)
SELECT run_id, $3, 'wait', 'completed', $4, $5, $6, now(), now() FROM lease
ON CONFLICT (run_id, id) DO NOTHING
RETURNING clock_timestamp() AS now;

-- name: step_retry
-- A failed attempt that will be retried: record the error on the step (when the op named one) and on
-- the run, and make the job due again after the backoff.
WITH lease AS (
    UPDATE jobs SET available_at = now() + $5 * interval '1 millisecond',
                    ready_at = now() + $5 * interval '1 millisecond',
                    attempt = attempt + 1, lease_token = NULL, claimed_by = NULL
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id, attempt - 1 AS failed_attempt
), step AS (
    INSERT INTO steps AS s (run_id, id, type, status, attempts, error, app_ms, started_at, ended_at)
    SELECT run_id, $3::text, 'run', 'retrying', failed_attempt, $4, $6, $7, now() FROM lease WHERE $3 IS NOT NULL
    ON CONFLICT (run_id, id) DO UPDATE
    SET status = 'retrying', attempts = EXCLUDED.attempts, error = EXCLUDED.error, app_ms = EXCLUDED.app_ms,
        ended_at = EXCLUDED.ended_at
    WHERE s.status <> 'completed'
)
UPDATE runs r SET activity = 'scheduled', error = $4 FROM lease WHERE r.id = lease.run_id
RETURNING r.id, pg_notify('durable_jobs', '');

-- name: steps_complete_many
-- step_complete for many runs in one statement and one commit (group commit under load). Each row is
-- fenced on its own lease; job rows are locked in run_id order. Returns the runs whose step was stored.
INSERT INTO steps AS s (run_id, id, type, status, attempts, output, queued_ms, app_ms, started_at, ended_at)
SELECT i.run_id, i.id, 'run', 'completed', i.attempts, i.output, i.queued_ms, i.app_ms, i.started_at, i.ended_at
FROM (
    SELECT i.*
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], $5::jsonb[], $6::int[], $7::int[],
                $8::timestamptz[], $9::timestamptz[])
         AS i (run_id, token, id, attempts, output, queued_ms, app_ms, started_at, ended_at)
    JOIN jobs j ON j.run_id = i.run_id AND j.lease_token = i.token
    ORDER BY j.run_id
    FOR KEY SHARE OF j
) AS i
ON CONFLICT (run_id, id) DO UPDATE
SET status = 'completed', attempts = EXCLUDED.attempts, output = EXCLUDED.output, error = NULL,
    queued_ms = EXCLUDED.queued_ms, app_ms = EXCLUDED.app_ms, ended_at = EXCLUDED.ended_at
WHERE s.status <> 'completed'
RETURNING s.run_id, clock_timestamp() AS now;
