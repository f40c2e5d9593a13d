-- name: jobs_claim
-- Claim up to $2 due jobs (or jobs whose lease expired) for worker $1 with a lease of $3 ms, shared fairly
-- among workspaces: each workspace with due work offers candidates in its own order (priority, due time,
-- arrival), and a candidate's turn is its workspace's load (runs executing) plus its place in that order,
-- so the free slots go to the least-loaded workspaces first and priority never crosses workspaces.
-- Jobs of a concurrency gate are taken only for the gates in $4, and jobs of a capped workspace
-- (apps.max_concurrency) only for the workspaces in $5: the caller holds their advisory locks
-- (claim_locks), so each count of running jobs is exact across processes. Chosen jobs that need a lock
-- the caller does not hold are left, and named in lock_gates / lock_apps: the caller takes those locks
-- and claims again. `trimmed`: candidates were cut by a gate's free slots, so another claim may find
-- more. The statement answers one row even when it claims nothing (run_id null) to carry these.
-- It also prepares each run's next invoke in the same statement: a due sleep completes, a wait still
-- parked at its deadline times out (its step becomes null).
-- Data-modifying CTEs do not see each other's writes, so the memo is built from the pre-statement rows:
-- a 'sleeping' step of a claimed run is due, a 'waiting' step whose wait row this statement deleted
-- timed out.
WITH RECURSIVE job_apps (app_id) AS (
    -- Every workspace with an active run: a skip scan of jobs_by_app_due, one index probe each.
    (SELECT app_id FROM jobs ORDER BY app_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.app_id FROM jobs j WHERE j.app_id > p.app_id ORDER BY j.app_id LIMIT 1)
    FROM job_apps p WHERE p.app_id IS NOT NULL
), loads AS (
    -- Those with a job due now (one probe each), with their load: runs executing, i.e. live leases.
    SELECT p.app_id, a.max_concurrency AS cap,
           (SELECT count(*) FROM jobs l
            WHERE l.app_id = p.app_id AND l.lease_token IS NOT NULL AND l.available_at > durable_now()) AS running
    FROM job_apps p
    JOIN apps a ON a.id = p.app_id
    WHERE EXISTS (SELECT 1 FROM jobs d WHERE d.app_id = p.app_id AND d.available_at <= durable_now())
), due_apps AS (
    -- A workspace at its cap offers nothing.
    SELECT * FROM loads WHERE cap IS NULL OR running < cap
), gate_load AS (
    -- Load of each gate: its jobs holding a live lease (an expired lease does not count; that run is a
    -- candidate again). Exact for the gates in $4, whose locks the caller holds.
    SELECT gate, count(*) AS n, max(gate_limit) AS lim
    FROM jobs
    WHERE gate IS NOT NULL AND lease_token IS NOT NULL AND available_at > durable_now()
    GROUP BY gate
), candidates AS (
    -- Per workspace, its first due jobs outside full gates, locked (SKIP LOCKED: rows another claim
    -- holds are passed over). 4 × $2 candidates in all, at least 4 per workspace: room for the gate
    -- and cap cuts below without locking a whole backlog.
    SELECT c.*, d.cap, d.running
    FROM due_apps d
    CROSS JOIN LATERAL (
        SELECT j.run_id, j.app_id, j.gate, j.gate_limit, j.priority, j.available_at, j.seq
        FROM jobs j
        WHERE j.app_id = d.app_id AND j.available_at <= durable_now()
          AND (j.gate IS NULL OR j.gate NOT IN (SELECT gate FROM gate_load WHERE n >= lim))
        ORDER BY j.priority DESC, j.available_at, j.seq
        LIMIT greatest(4, 4 * $2 / greatest(1, (SELECT count(*) FROM due_apps)))
        FOR UPDATE OF j SKIP LOCKED
    ) c
), in_gate AS (
    -- Per gate, no more than its free slots: higher priority first, then first come first served.
    SELECT c.*
    FROM (SELECT c.*, row_number() OVER (PARTITION BY c.gate ORDER BY c.priority DESC, c.available_at, c.seq)
                 AS gate_rank
          FROM candidates c) AS c
    LEFT JOIN gate_load g ON g.gate = c.gate
    WHERE c.gate IS NULL OR c.gate_rank <= c.gate_limit - coalesce(g.n, 0)
), turns AS (
    -- A candidate's turn: its workspace's load plus its place in the workspace's own order. A capped
    -- workspace offers no more than its free slots (turn <= cap).
    SELECT t.*
    FROM (SELECT c.*, c.running + row_number() OVER (PARTITION BY c.app_id
                                                      ORDER BY c.priority DESC, c.available_at, c.seq) AS turn
          FROM in_gate c) AS t
    WHERE t.cap IS NULL OR t.turn <= t.cap
), chosen AS (
    SELECT t.run_id, t.app_id, t.gate, t.cap,
           (t.gate IS NULL OR t.gate = ANY($4::text[])) AND (t.cap IS NULL OR t.app_id = ANY($5::text[])) AS ready
    FROM turns t
    ORDER BY t.turn, t.available_at, t.seq
    LIMIT $2
), pending AS (
    SELECT coalesce(array_agg(DISTINCT c.gate) FILTER (WHERE NOT c.ready AND c.gate IS NOT NULL
                                                         AND NOT c.gate = ANY($4::text[])), '{}') AS lock_gates,
           coalesce(array_agg(DISTINCT c.app_id) FILTER (WHERE NOT c.ready AND c.cap IS NOT NULL
                                                           AND NOT c.app_id = ANY($5::text[])), '{}') AS lock_apps,
           (SELECT count(*) FROM candidates) > (SELECT count(*) FROM in_gate) AS trimmed
    FROM chosen c
), claimed AS (
    UPDATE jobs j
    SET available_at = durable_now() + $3 * interval '1 millisecond', lease_token = gen_random_uuid(), claimed_by = $1
    FROM chosen c WHERE c.ready AND j.run_id = c.run_id
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
    -- Found by primary key alone, with no predicate another index could serve: this plan is made once
    -- per connection, perhaps while `runs` is empty, and must stay right at any backlog (one made so
    -- scanned every active run through runs_by_app_status at each claim; tests/integration/test_plans.py).
    -- A job exists only for an active run; `active` keeps a claim of anything else from being driven.
    UPDATE runs r
    SET activity = CASE WHEN r.status = 'active' THEN 'executing' ELSE r.activity END,
        started_at = CASE WHEN r.status = 'active' THEN coalesce(r.started_at, durable_now()) ELSE r.started_at END
    FROM claimed c WHERE r.id = c.run_id
    RETURNING r.id, r.status = 'active' AS active, r.function_id, r.event, r.parent_run_id, r.parent_step_id
)
SELECT p.lock_gates, p.lock_apps, p.trimmed, x.*
FROM pending p
LEFT JOIN (
    SELECT c.run_id, c.lease_token, c.attempt, c.app_id, r.function_id, r.event, a.url, a.signing_key,
           a.previous_signing_key, a.signature_mode, a.max_concurrency IS NOT NULL AS capped,
           f.config, clock_timestamp() AS now, c.ready_at,
           (extract(epoch FROM c.lease_until - durable_clock()) * 1000)::int AS lease_left_ms,
           r.parent_run_id, r.parent_step_id,
           -- invoke steps still pending on a child; only a run that was parked waiting can have them
           CASE WHEN r0.activity = 'waiting' THEN
               (SELECT count(*) FROM steps s WHERE s.run_id = c.run_id AND s.type = 'invoke' AND s.status = 'waiting')
           ELSE 0 END AS pending_invokes,
           -- the memo (docs/protocol.md); the same shape as run_memo, which cannot see this statement's
           -- completed sleeps and timed-out waits
           (SELECT coalesce(jsonb_object_agg(s.id, jsonb_build_object(
                       'type', s.type, 'data', CASE WHEN s.status = 'completed' THEN s.output END)
                       || CASE WHEN s.type = 'invoke' AND s.error IS NOT NULL
                               THEN jsonb_build_object('error', s.error) ELSE '{}' END), '{}')
            FROM steps s
            WHERE s.run_id = c.run_id
              AND (s.status IN ('completed', 'sleeping')
                   OR (s.status = 'waiting' AND EXISTS (SELECT 1 FROM timed_out t WHERE t.run_id = s.run_id))))
           AS steps
    FROM claimed c
    JOIN started r ON r.id = c.run_id AND r.active
    JOIN runs r0 ON r0.id = c.run_id  -- as before this statement: what the run was doing
    JOIN apps a ON a.id = c.app_id
    LEFT JOIN functions f ON f.app_id = c.app_id AND f.id = r.function_id
) AS x ON true;

-- name: claim_locks
-- Serialise claims per concurrency gate ($1) and per capped workspace ($2): transaction-scoped advisory
-- locks, taken in one global order (of their keys) so two claimers never deadlock.
SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
FROM (SELECT 'gate/' || g AS k FROM unnest($1::text[]) AS g
      UNION
      SELECT 'app/' || a FROM unnest($2::text[]) AS a) AS keys
ORDER BY k;

-- name: jobs_load_by_app
-- Per workspace: its cap, its runs executing (live leases), queued (due now, waiting for a slot) and
-- scheduled (due later: a sleep, a wait's deadline, a retry's backoff, a throttle or debounce start).
-- Queued and scheduled are counted up to 10,001 each, so a deep backlog costs a bounded index range.
SELECT a.id, a.max_concurrency,
       (SELECT count(*) FROM jobs l
        WHERE l.app_id = a.id AND l.lease_token IS NOT NULL AND l.available_at > durable_now()) AS executing,
       (SELECT count(*) FROM (SELECT 1 FROM jobs q
                              WHERE q.app_id = a.id AND q.available_at <= durable_now() LIMIT 10001) AS q)
       AS queued,
       (SELECT count(*) FROM (SELECT 1 FROM jobs s
                              WHERE s.app_id = a.id AND s.available_at > durable_now() AND s.lease_token IS NULL
                              LIMIT 10001) AS s) AS scheduled
FROM apps a;

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

-- name: run_memo
-- A claimed run's memo read afresh (fenced on its lease): after an invoke step it reported pending had
-- resolved meanwhile, or after its invoke deadlines passed. Same shape as in jobs_claim.
SELECT coalesce(jsonb_object_agg(s.id, jsonb_build_object(
           'type', s.type, 'data', CASE WHEN s.status = 'completed' THEN s.output END)
           || CASE WHEN s.type = 'invoke' AND s.error IS NOT NULL
                   THEN jsonb_build_object('error', s.error) ELSE '{}' END), '{}') AS steps
FROM jobs j JOIN steps s ON s.run_id = j.run_id
WHERE j.run_id = $1 AND j.lease_token = $2 AND s.status = 'completed';

-- name: invoke_timeouts
-- Invoke steps of a claimed run whose deadline passed complete with a `timeout` error (fenced on the
-- lease, the job locked first: a child ending at the same moment either resolved the step before, or
-- finds it no longer pending). Returns how many timed out.
WITH lease AS (
    SELECT run_id FROM jobs WHERE run_id = $1 AND lease_token = $2 FOR UPDATE
), s AS (
    UPDATE steps s
    SET status = 'completed', output = NULL, ended_at = durable_now(),
        queued_ms = (extract(epoch FROM durable_now() - s.started_at) * 1000)::int,
        error = jsonb_build_object(
            'message', 'the invoked run did not end before the timeout', 'reason', 'timeout',
            'runId', s.child_run_id, 'functionId', (SELECT function_id FROM runs WHERE id = s.child_run_id))
    FROM lease
    WHERE s.run_id = lease.run_id AND s.type = 'invoke' AND s.status = 'waiting' AND s.until <= durable_now()
    RETURNING s.id
)
SELECT count(*) AS timed_out FROM s;

-- name: jobs_analyze
-- Fresh statistics for jobs, inside the transaction that just made many jobs due at once (a bulk resume):
-- ANALYZE counts this transaction's own new row versions, and its statistics commit with it. Without it
-- the planner goes on believing those jobs are parked, and claims read and sort every due job.
ANALYZE jobs;

-- name: tables_grown
-- The hot-path tables, each with its size in pages and whether it is at least twice as large (and 16
-- pages at least) as when the planner's statistics were last taken (pg_class.relpages, set by ANALYZE
-- and VACUUM): its cached generic plans may have been made on a near-empty table and scan the backlog
-- (store/statistics.py). The sizes tell the caller whether anything grew since it last looked.
SELECT c.relname::text AS name, s.pages, s.pages >= greatest(16, 2 * c.relpages) AS grown
FROM pg_class c
CROSS JOIN LATERAL (SELECT pg_relation_size(c.oid) / current_setting('block_size')::int AS pages) s
WHERE c.oid = ANY (ARRAY['jobs', 'runs', 'steps', 'waits', 'run_cancels', 'events', 'event_ids']::regclass[])
ORDER BY c.relname;
