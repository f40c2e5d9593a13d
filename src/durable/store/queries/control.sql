-- Run control from the admin API (engine/control.py): pause and resume a function, bulk cancel and
-- bulk rerun by a filter, and the run view's links. Lock order: the function row first, then jobs in
-- run_id order (docs/architecture.md, "Lock order").

-- name: control_function_lock
-- Pause and resume serialise on the function's row, taken before any job; then they take the exclusive
-- twin of the ingest's shared lock on the event name that starts the function (event_lock_names), so
-- an ingest creating its runs either committed before (its runs are held or released here) or sees the
-- new `paused` in its next statement. The returned `event` is that name.
SELECT id, paused, coalesce(trigger_event, CASE WHEN trigger_cron IS NOT NULL THEN '$cron' END) AS event
FROM functions WHERE app_id = $1 AND id = $2 FOR UPDATE;

-- name: control_function_set_paused
-- $3: {mode: queue|skip, since: epoch ms}, or null to resume.
UPDATE functions SET paused = $3 WHERE app_id = $1 AND id = $2;

-- name: control_lock_unstarted
-- Pausing in queue mode: lock, in run_id order, the jobs of the function's runs that have not started
-- (no lease, never claimed) and are not held yet. control_hold then checks again under the locks.
SELECT j.run_id
FROM jobs j JOIN runs r ON r.id = j.run_id
WHERE j.app_id = $1 AND r.function_id = $2 AND r.status = 'active' AND r.started_at IS NULL
  AND j.lease_token IS NULL AND NOT coalesce(r.flow ? 'paused', false)
ORDER BY j.run_id
FOR UPDATE OF j;

-- name: control_hold
-- Hold the runs $1 (jobs locked by control_lock_unstarted) until the function resumes: due in the year
-- 3000, `scheduled`, and `flow.paused` says since when ($2, epoch ms). Returns the runs held.
WITH held AS (
    UPDATE jobs j
    SET available_at = timestamptz '3000-01-01 00:00:00+00', ready_at = timestamptz '3000-01-01 00:00:00+00'
    FROM runs r
    WHERE j.run_id = ANY($1::text[]) AND r.id = j.run_id AND j.lease_token IS NULL
      AND r.status = 'active' AND r.started_at IS NULL
    RETURNING j.run_id
)
UPDATE runs
SET activity = 'scheduled',
    flow = coalesce(runs.flow, '{}') || jsonb_build_object('paused', jsonb_build_object('since', $2::bigint))
FROM held WHERE runs.id = held.run_id
RETURNING runs.id;

-- name: control_lock_held
-- Resuming: lock, in run_id order, the jobs of the function's held runs (flow has `paused`).
SELECT j.run_id
FROM jobs j JOIN runs r ON r.id = j.run_id
WHERE j.app_id = $1 AND r.function_id = $2 AND r.status = 'active' AND r.flow ? 'paused'
ORDER BY j.run_id
FOR UPDATE OF j;

-- name: control_release
-- Make the held runs $1 (jobs locked by control_lock_held) due now, queued, without `flow.paused`, and
-- wake the workers when the transaction commits.
WITH due AS (
    UPDATE jobs j SET available_at = durable_now(), ready_at = durable_now()
    FROM runs r
    WHERE j.run_id = ANY($1::text[]) AND r.id = j.run_id AND j.lease_token IS NULL
      AND r.status = 'active' AND r.flow ? 'paused'
    RETURNING j.run_id
), released AS (
    UPDATE runs SET activity = 'queued', flow = nullif(runs.flow - 'paused', '{}')
    FROM due WHERE runs.id = due.run_id
    RETURNING runs.id
)
SELECT count(*) AS released, CASE WHEN count(*) > 0 THEN pg_notify('durable_jobs', '') END AS notified
FROM released;

-- name: control_select
-- A page of the app's runs by a bulk filter, oldest first after $7 (a run id, null from the start):
-- function $2, status $3, created in [$4, $5), event data containing $6 (a pre-filter: the caller
-- checks `matches` exactly on `data`). Each with what a rerun needs.
SELECT r.id, r.app_id, r.function_id, r.event, r.event -> 'data' AS data
FROM runs r
WHERE r.app_id = $1
  AND ($2::text IS NULL OR r.function_id = $2)
  AND ($3::text IS NULL OR r.status = $3)
  AND ($4::timestamptz IS NULL OR r.created_at >= $4)
  AND ($5::timestamptz IS NULL OR r.created_at < $5)
  AND ($6::jsonb IS NULL OR r.event -> 'data' @> $6::jsonb)
  AND ($7::text IS NULL OR r.id > $7)
ORDER BY r.id
LIMIT $8;

-- name: run_children
-- The runs a run invoked (step.invoke), oldest first.
SELECT id, function_id, parent_step_id, status FROM runs WHERE parent_run_id = $1 ORDER BY id;
