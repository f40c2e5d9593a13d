-- name: jobs_claim
-- Claim up to $2 due jobs (or jobs whose lease expired) for worker $1 with a lease of $3 ms, taking
-- jobs of a concurrency gate only for the gates in $4, whose advisory locks the caller holds (gates_lock),
-- so each gate's count of running jobs is exact across processes. It also
-- prepares each run's next invoke in the same statement: a due sleep completes, a wait still parked at
-- its deadline times out (its step becomes null). The `due` CTE is an optimisation fence: Postgres
-- locks exactly the LIMITed rows it picked, skipping rows other workers hold.
-- Data-modifying CTEs do not see each other's writes, so the memo is built from the pre-statement rows:
-- a 'sleeping' step of a claimed run is due, a 'waiting' step whose wait row this statement deleted
-- timed out.
WITH running AS (
    -- Load of each locked gate: its jobs holding a live lease (an expired lease does not count; that
    -- run is a candidate again).
    SELECT gate, count(*) AS n, max(gate_limit) AS lim
    FROM jobs
    WHERE gate = ANY($4::text[]) AND lease_token IS NOT NULL AND available_at > durable_now()
    GROUP BY gate
), candidates AS (
    SELECT j.run_id, j.gate, j.gate_limit, j.priority, j.available_at, j.seq
    FROM jobs j
    WHERE j.available_at <= durable_now()
      AND (j.gate IS NULL
           OR (j.gate = ANY($4::text[]) AND j.gate NOT IN (SELECT gate FROM running WHERE n >= lim)))
    ORDER BY j.priority DESC, j.available_at, j.seq
    LIMIT $2 * 4
    FOR UPDATE SKIP LOCKED
), due AS (
    -- Per gate, no more than its free slots: higher priority first, then first come first served.
    SELECT c.run_id
    FROM (SELECT c.*, row_number() OVER (PARTITION BY c.gate ORDER BY c.priority DESC, c.available_at, c.seq)
                 AS rank
          FROM candidates c) AS c
    LEFT JOIN running r ON r.gate = c.gate
    WHERE c.gate IS NULL OR c.rank <= c.gate_limit - coalesce(r.n, 0)
    ORDER BY c.priority DESC, c.available_at, c.seq
    LIMIT $2
), claimed AS (
    UPDATE jobs j
    SET available_at = durable_now() + $3 * interval '1 millisecond', lease_token = gen_random_uuid(), claimed_by = $1
    FROM due WHERE j.run_id = due.run_id
    RETURNING j.run_id, j.app_id, j.lease_token, j.attempt, j.ready_at, j.available_at AS lease_until
), timed_out AS (
    DELETE FROM waits w USING claimed c WHERE w.run_id = c.run_id
    RETURNING w.run_id, w.step_id
), wait_steps AS (
    UPDATE steps s
    SET status = 'completed', output = 'null', ended_at = durable_now(),
        queued_ms = (extract(epoch FROM durable_now() - s.started_at) * 1000)::int
    FROM timed_out t WHERE s.run_id = t.run_id AND s.id = t.step_id
), sleep_steps AS (
    UPDATE steps s
    SET status = 'completed', ended_at = durable_now(),
        queued_ms = (extract(epoch FROM durable_now() - s.started_at) * 1000)::int
    FROM claimed c WHERE s.run_id = c.run_id AND s.status = 'sleeping'
), started AS (
    UPDATE runs r
    SET activity = 'executing', started_at = coalesce(r.started_at, durable_now())
    FROM claimed c WHERE r.id = c.run_id AND r.status = 'active'
    RETURNING r.id, r.function_id, r.event
)
SELECT c.run_id, c.lease_token, c.attempt, c.app_id, r.function_id, r.event, a.url, a.signing_key,
       a.previous_signing_key, a.signature_mode,
       f.config, clock_timestamp() AS now, c.ready_at,
       (extract(epoch FROM c.lease_until - durable_clock()) * 1000)::int AS lease_left_ms,
       (SELECT coalesce(jsonb_object_agg(s.id, jsonb_build_object(
                   'type', s.type, 'data', CASE WHEN s.status = 'completed' THEN s.output END)), '{}')
        FROM steps s
        WHERE s.run_id = c.run_id
          AND (s.status IN ('completed', 'sleeping')
               OR (s.status = 'waiting' AND EXISTS (SELECT 1 FROM timed_out t WHERE t.run_id = s.run_id))))
       AS steps
FROM claimed c
JOIN started r ON r.id = c.run_id
JOIN apps a ON a.id = c.app_id
LEFT JOIN functions f ON f.app_id = c.app_id AND f.id = r.function_id;

-- name: jobs_due_gates
-- The concurrency gates among the first due jobs, leaving out gates already full: the gates a claim
-- will lock. A full gate's backlog does not hide the gates and jobs behind it.
WITH full_gates AS (
    SELECT gate FROM jobs
    WHERE gate IS NOT NULL AND lease_token IS NOT NULL AND available_at > durable_now()
    GROUP BY gate HAVING count(*) >= max(gate_limit)
)
SELECT coalesce(array_agg(DISTINCT g.gate), '{}') AS gates
FROM (
    SELECT j.gate FROM jobs j
    WHERE j.available_at <= durable_now() AND j.gate IS NOT NULL AND j.gate NOT IN (SELECT gate FROM full_gates)
    ORDER BY j.priority DESC, j.available_at, j.seq
    LIMIT $1
) AS g;

-- name: gates_lock
-- Serialise claims per concurrency gate (transaction-scoped advisory locks, in gate order).
SELECT pg_advisory_xact_lock(hashtextextended('gate/' || g, 0)) FROM unnest($1::text[]) AS g ORDER BY g;

-- name: jobs_next_due
-- Milliseconds until the earliest job (free or leased) becomes available (negative: overdue; null: no
-- job); workers sleep that long at most. Measured on the database clock, so a moved clock (tests) or a
-- worker host whose clock differs from the database's still wakes on time.
SELECT extract(epoch FROM min(available_at) - durable_clock()) * 1000 AS ms FROM jobs;

-- name: jobs_release
-- Give a claimed job back, due now (graceful drain).
UPDATE jobs SET available_at = durable_now(), ready_at = durable_now(), lease_token = NULL, claimed_by = NULL
WHERE run_id = $1 AND lease_token = $2;

-- name: jobs_lock
-- Lock a run's job row: the run's mutex. Every transaction that changes a run takes it first.
SELECT run_id, lease_token FROM jobs WHERE run_id = $1 FOR UPDATE;
