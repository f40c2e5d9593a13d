-- name: runs_cancel_lock
-- Before cancelling runs $1: lock, in run_id order, the jobs of those runs, of their active descendants
-- (runs they invoked, recursively) and of their parents (whose invoke steps the cancel resolves). The
-- same order as every other writer of several runs (child completion, resumed waits), so no deadlock.
WITH RECURSIVE tree (id) AS (
    SELECT id FROM runs WHERE id = ANY($1::text[]) AND status = 'active'
    UNION
    SELECT r.id FROM runs r JOIN tree t ON r.parent_run_id = t.id
    WHERE r.parent_run_id IS NOT NULL AND r.status = 'active'  -- the partial index runs_by_parent
)
SELECT j.run_id
FROM jobs j
WHERE j.run_id IN (SELECT id FROM tree
                   UNION SELECT parent_run_id FROM runs WHERE id = ANY($1::text[]) AND parent_run_id IS NOT NULL)
ORDER BY j.run_id
FOR UPDATE OF j;

-- name: runs_cancel_many
-- Cancel the active runs $1 (cause $2) and their active descendants (cause {kind: parent, runId}): the
-- runs end, their jobs, waits and cancel-on rows go, their parked steps fail. Call after
-- runs_cancel_lock. Returns each run cancelled with its parent link, for invoke_resolve.
WITH RECURSIVE tree (id, direct) AS (
    SELECT id, true FROM runs WHERE id = ANY($1::text[]) AND status = 'active'
    UNION
    SELECT r.id, false FROM runs r JOIN tree t ON r.parent_run_id = t.id
    WHERE r.parent_run_id IS NOT NULL AND r.status = 'active'
), r AS (
    UPDATE runs SET status = 'cancelled', activity = NULL, ended_at = durable_now(), retry = NULL,
                    cancelled_by = CASE WHEN tree.direct THEN $2::jsonb
                                        ELSE jsonb_build_object('kind', 'parent', 'runId', runs.parent_run_id) END
    FROM tree WHERE runs.id = tree.id AND runs.status = 'active'
    RETURNING runs.id, runs.app_id, runs.function_id, runs.parent_run_id, runs.parent_step_id
), j AS (
    DELETE FROM jobs USING r WHERE jobs.run_id = r.id RETURNING jobs.gate
), w AS (
    DELETE FROM waits USING r WHERE waits.run_id = r.id
), c AS (
    DELETE FROM run_cancels USING r WHERE run_cancels.run_id = r.id
), s AS (
    UPDATE steps SET status = 'failed', ended_at = durable_now(), error = '{"message": "cancelled"}'
    FROM r WHERE steps.run_id = r.id AND steps.status IN ('sleeping', 'waiting', 'retrying')
)
SELECT r.id, r.app_id, r.function_id, r.parent_run_id, r.parent_step_id,
       (SELECT count(*) FROM j WHERE j.gate IS NOT NULL) AS gated
FROM r ORDER BY r.id;

-- name: invoke_resolve
-- A child run $3 ended: its parent $1's invoke step $2, if still pending on that child, completes with
-- the child's output $4 or error $5 ({message, reason, runId, functionId}), and the parent becomes due
-- now unless a worker holds it. Call with the parent's job locked before the child's (run_id order).
WITH s AS (
    UPDATE steps
    SET status = 'completed', output = $4, error = $5, ended_at = durable_now(),
        queued_ms = (extract(epoch FROM durable_now() - started_at) * 1000)::int
    WHERE run_id = $1 AND id = $2 AND type = 'invoke' AND status = 'waiting' AND child_run_id = $3
    RETURNING run_id
), due AS (
    UPDATE jobs SET available_at = durable_now(), ready_at = durable_now()
    FROM s WHERE jobs.run_id = s.run_id AND jobs.lease_token IS NULL
    RETURNING jobs.run_id
)
SELECT (SELECT count(*) FROM s) AS resolved, (SELECT count(*) FROM due) AS woken,
       (SELECT app_id FROM runs WHERE id = $1) AS app_id,
       CASE WHEN EXISTS (SELECT 1 FROM due) THEN pg_notify('durable_jobs', '') END;

-- name: notify_jobs
-- Wake every worker loop (a concurrency slot was freed, or a run became due) when this transaction commits.
SELECT pg_notify('durable_jobs', '');

-- name: jobs_hold
-- Lock a claimed run's job, fenced on its lease, for a transaction storing several things of the run
-- (invoke, send, parallel). Returns the clocks the writes use; no row: the lease is lost.
SELECT clock_timestamp() AS now, (extract(epoch FROM durable_now()) * 1000)::bigint AS now_ms
FROM jobs WHERE run_id = $1 AND lease_token = $2
FOR UPDATE;

-- name: steps_of
-- The steps of a run among the ids $2, as stored now.
SELECT id, type, status FROM steps WHERE run_id = $1 AND id = ANY($2::text[]);

-- name: step_store
-- A completed step of type $3 (send, or an invoke resolved at once): output $4, error $5.
INSERT INTO steps (run_id, id, type, status, attempts, output, error, queued_ms, app_ms, started_at, ended_at)
VALUES ($1, $2, $3, 'completed', $6, $4, $5, $7, $8, $9, $10)
ON CONFLICT (run_id, id) DO NOTHING;

-- name: steps_invoke_pending
-- Invoke steps $2 waiting on their child runs $3 until $4 (null: no timeout).
INSERT INTO steps (run_id, id, type, status, attempts, child_run_id, until, app_ms, started_at)
SELECT $1, i.id, 'invoke', 'waiting', $5, i.child, i.until, $6, durable_now()
FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS i (id, child, until)
ON CONFLICT (run_id, id) DO NOTHING;

-- name: run_park_invokes
-- Park a run on its pending invokes: the job becomes free, due at the earliest invoke deadline (far in
-- the future when none has one: a child's end makes it due, invoke_resolve).
WITH lease AS (
    UPDATE jobs
    SET available_at = coalesce((SELECT min(until) FROM steps
                                 WHERE run_id = $1 AND type = 'invoke' AND status = 'waiting'),
                                timestamptz '3000-01-01 00:00:00+00'),
        attempt = 1, lease_token = NULL, claimed_by = NULL
    WHERE run_id = $1 AND lease_token = $2
    RETURNING run_id, available_at
), ready AS (
    UPDATE jobs SET ready_at = lease.available_at FROM lease WHERE jobs.run_id = lease.run_id
)
UPDATE runs r SET activity = 'waiting' FROM lease WHERE r.id = lease.run_id
RETURNING r.id, pg_notify('durable_jobs', '');

-- name: function_for_invoke
-- The function a step.invoke (or a failure handler) starts: its options and whether it is paused.
SELECT id, config, paused FROM functions WHERE app_id = $1 AND id = $2;

-- name: flow_keys_prune
-- Maintenance: idempotency keys older than 24 h (they no longer hold), singleton keys whose run has
-- ended, and cancelOn rows past their deadline.
WITH idem AS (
    DELETE FROM flow_state
    WHERE kind = 'idempotency' AND first_at < (extract(epoch FROM durable_now()) * 1000)::bigint - 86400000
), single AS (
    DELETE FROM flow_state f
    WHERE f.kind = 'singleton'
      AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = f.run_id AND r.status = 'active')
)
DELETE FROM run_cancels WHERE until < durable_now();
