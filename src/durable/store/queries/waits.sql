-- name: waits_lock_jobs
-- Lock the jobs of the runs about to be resumed, in run order (the run mutex, no deadlock).
SELECT run_id FROM jobs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE;

-- name: waits_resolve
-- Resume waits with their matching events: delete the wait (whoever deletes it wins the race with the
-- timeout), store the event as the step's data, and make the job due now. $3 holds each resuming event
-- once (JSON text); $2 says which of them (1-based) resumes each run of $1, so one event that resumes
-- many runs is parsed once.
WITH events AS (
    SELECT e.event::jsonb AS event, e.k FROM unnest($3::text[]) WITH ORDINALITY AS e (event, k)
), input AS (
    SELECT i.run_id, e.event FROM unnest($1::text[], $2::int[]) AS i (run_id, k) JOIN events e USING (k)
), gone AS (
    DELETE FROM waits w USING input i WHERE w.run_id = i.run_id
    RETURNING w.run_id, w.step_id, i.event
), step AS (
    UPDATE steps s
    SET status = 'completed', output = g.event, ended_at = durable_now(),
        queued_ms = (extract(epoch FROM durable_now() - s.started_at) * 1000)::int
    FROM gone g WHERE s.run_id = g.run_id AND s.id = g.step_id
), job AS (
    UPDATE jobs j SET available_at = durable_now(), ready_at = durable_now() FROM gone g WHERE j.run_id = g.run_id
)
UPDATE runs r SET activity = 'queued' FROM gone g WHERE r.id = g.run_id
RETURNING r.id, r.app_id, r.function_id, pg_notify('durable_jobs', '');
