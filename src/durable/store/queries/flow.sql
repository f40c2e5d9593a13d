-- name: flow_lock
-- Lock (creating when new) the flow-control state rows an ingest decides with, in key order so two
-- ingests never deadlock; ON CONFLICT DO UPDATE returns each row's latest committed state.
INSERT INTO flow_state AS f (app_id, function_id, kind, key)
SELECT $1, i.function_id, i.kind, i.key
FROM unnest($2::text[], $3::text[], $4::text[]) AS i (function_id, kind, key)
ORDER BY i.function_id, i.kind, i.key
ON CONFLICT (app_id, function_id, kind, key) DO UPDATE SET updated_at = now()
RETURNING f.function_id, f.kind, f.key, f.stamps, f.run_id, f.first_at, f.size;

-- name: flow_open_runs
-- Of the debounce/batch runs collecting events, those that have not started: their jobs are locked
-- (SKIP LOCKED: a job being claimed right now has started) so the run can still be changed.
SELECT j.run_id, j.available_at, r.flow
FROM jobs j JOIN runs r ON r.id = j.run_id
WHERE j.run_id = ANY($1::text[]) AND j.lease_token IS NULL AND r.started_at IS NULL
ORDER BY j.run_id
FOR UPDATE OF j SKIP LOCKED;

-- name: flow_save
-- JSON in array parameters travels as text[] and is cast per element (see store/db.py).
UPDATE flow_state f
SET stamps = i.stamps::jsonb, run_id = i.run_id, first_at = i.first_at, size = i.size
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::int[])
     AS i (function_id, kind, key, stamps, run_id, first_at, size)
WHERE f.app_id = $1 AND f.function_id = i.function_id AND f.kind = i.kind AND f.key = i.key;

-- name: runs_create
-- Create runs with their jobs (durable_runs_create, migration 0016). A run with a lease token ($12) is
-- handed straight to a worker of the ingesting process (claimed by $13 with a lease of $14 ms); the
-- ingest gives tokens only in a workspace without a cap (apps.max_concurrency: its runs are counted
-- under its lock, at claim) and learns the lease's clock from event_store. Others wake the workers.
-- $15/$16: the parent run and its invoke step of a run started by step.invoke (null otherwise). Its
-- rows are not read: an ingest sends it as text with its COMMIT (db.Conn.write), so no dollar quoting
-- or block comment here.
SELECT * FROM durable_runs_create($1::text, $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                                  $7::int[], $8::text[], $9::int[], $10::text[], $11::text[], $12::uuid[],
                                  $13::text, $14::int, $15::text[], $16::text[]);

-- name: runs_merge
-- Events joining runs that have not started: a debounce replaces the run's event and moves its start;
-- a batch appends events to `event.data` and starts the run once full.
WITH input AS (
    SELECT i.run_id, i.kind, i.event::jsonb AS event, i.due, i.flow::jsonb AS flow
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
         AS i (run_id, kind, event, due, flow)
), r AS (
    UPDATE runs r
    SET event = CASE WHEN i.kind = 'batch' THEN jsonb_set(r.event, '{data}', (r.event -> 'data') || i.event)
                     ELSE i.event END,
        event_id = CASE WHEN i.kind = 'debounce' THEN i.event ->> 'id' ELSE r.event_id END,
        flow = i.flow,
        activity = CASE WHEN i.due <= durable_now() THEN 'queued' ELSE 'scheduled' END
    FROM input i WHERE r.id = i.run_id
)
UPDATE jobs j SET available_at = i.due, ready_at = i.due
FROM input i WHERE j.run_id = i.run_id
RETURNING j.run_id, pg_notify('durable_jobs', '');

-- name: event_outcomes_append
-- What events did besides starting runs (resumed a wait, cancelled a run), after their own outcomes.
UPDATE events e SET outcomes = e.outcomes || i.outcomes::jsonb
FROM unnest($2::bigint[], $3::text[]) AS i (seq, outcomes)
WHERE e.app_id = $1 AND e.seq = i.seq;

-- name: event_outcomes
UPDATE events e SET outcomes = i.outcomes::jsonb
FROM unnest($2::bigint[], $3::text[]) AS i (seq, outcomes)
WHERE e.app_id = $1 AND e.seq = i.seq;

-- name: run_cancels_add
-- cancelOn rows of new runs: the event name, the subset of its data that cancels, the deadline.
INSERT INTO run_cancels (run_id, idx, app_id, event_name, match, until)
SELECT i.run_id, i.idx, $1, i.event_name, i.match::jsonb, i.until
FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::timestamptz[])
     AS i (run_id, idx, event_name, match, until);

-- name: runs_active_among
-- Which of these runs are still active (a singleton key's run).
SELECT id FROM runs WHERE id = ANY($1::text[]) AND status = 'active';
