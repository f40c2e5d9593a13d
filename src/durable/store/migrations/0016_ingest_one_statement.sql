-- An ingest in one statement (issue 13; docs/architecture.md, "Ingest"). An event whose functions have
-- no flow control, on which nothing is parked, needs no decision between storing it and creating its
-- runs: the engine, which knows from an earlier ingest what the event's name triggers, sends the runs
-- with the event and durable_ingest_plain stores both, as one autocommitted statement (one round trip
-- in all, against three for BEGIN + locks, event_store, runs_create + COMMIT). It first checks, under
-- the event-name locks, what that shortcut assumes; when anything differs it writes nothing and
-- answers `fallback`, and the engine takes the general path (engine/ingest.py).
--
-- The pieces both paths use live here once: what a name triggers (durable_triggered), whether anything
-- is parked on a name (durable_parked_on), the waits and cancelOn rows an event may match
-- (durable_waits_for, durable_cancels_for), storing events (durable_events_insert) and creating runs
-- with their jobs (durable_runs_create). The two set-returning SQL functions are STABLE single
-- SELECTs, so the planner inlines them into the statement calling them (their index probes show in its
-- plan); the others are plpgsql, which keeps its plans for the session (a non-inlined SQL function is
-- planned again in every statement calling it).

-- What functions an event of `p_name` starts: the `functions` column of event_store, the JSON the
-- engine keeps for the name and durable_ingest_plain compares with.
CREATE FUNCTION durable_triggered(p_app text, p_name text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'config', f.config, 'paused', f.paused)
                                      ORDER BY f.id), '[]')
            FROM functions f WHERE f.app_id = p_app AND f.trigger_event = p_name);
END
$fn$;

-- Whether any wait or cancelOn row waits for events of `p_name`: a one-row index probe per table, which
-- its ORDER BY keeps one (an EXISTS drops ORDER BY and may be planned as a scan).
CREATE FUNCTION durable_parked_on(p_app text, p_name text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN coalesce((SELECT true FROM waits w WHERE w.app_id = p_app AND w.event_name = p_name
                     ORDER BY w.match_fp LIMIT 1), false)
        OR coalesce((SELECT true FROM run_cancels c WHERE c.app_id = p_app AND c.event_name = p_name
                     ORDER BY c.match_fp LIMIT 1), false);
END
$fn$;

-- The waits an event of `p_name` with `p_data` may resolve, found by the fingerprints `p_fps` of its
-- data (durable_match_fps; NULL: more pairs than are fingerprinted, every wait of the name is read).
-- Each fingerprint is one index probe, a LATERAL subquery kept whole by OFFSET 0 so that no statistics
-- plan it as a scan of the name's rows. `@>` pre-filters (it treats arrays as sets); the exact subset
-- match is checked by the engine (core/match.py).
CREATE FUNCTION durable_waits_for(p_app text, p_name text, p_data jsonb, p_fps bigint[])
RETURNS TABLE (run_id text, match jsonb)
LANGUAGE sql STABLE AS $$
    SELECT w.run_id, w.match
    FROM (SELECT hit.run_id, hit.match
          FROM unnest(p_fps) AS fp (v)
          CROSS JOIN LATERAL (SELECT run_id, match FROM waits
                              WHERE app_id = p_app AND event_name = p_name AND match_fp = fp.v OFFSET 0) AS hit
          UNION ALL
          SELECT run_id, match FROM waits WHERE p_fps IS NULL AND app_id = p_app AND event_name = p_name) AS w
    WHERE w.match IS NULL OR p_data @> w.match
$$;

-- The same for the cancelOn rows of active runs, those whose deadline has not passed.
CREATE FUNCTION durable_cancels_for(p_app text, p_name text, p_data jsonb, p_fps bigint[])
RETURNS TABLE (run_id text, match jsonb)
LANGUAGE sql STABLE AS $$
    SELECT c.run_id, c.match
    FROM (SELECT hit.run_id, hit.match, hit.until
          FROM unnest(p_fps) AS fp (v)
          CROSS JOIN LATERAL (SELECT run_id, match, until FROM run_cancels
                              WHERE app_id = p_app AND event_name = p_name AND match_fp = fp.v OFFSET 0) AS hit
          UNION ALL
          SELECT run_id, match, until FROM run_cancels
          WHERE p_fps IS NULL AND app_id = p_app AND event_name = p_name) AS c
    WHERE (c.match IS NULL OR p_data @> c.match) AND (c.until IS NULL OR c.until > durable_now())
$$;

-- Store events, skipping ids seen in the last 24 h (the first of an id within the list wins); an
-- event without `ts` gets `p_now_ms`. Returns the stored events in list order.
CREATE FUNCTION durable_events_insert(p_app text, p_ids text[], p_names text[], p_data text[], p_ts bigint[],
                                      p_now_ms bigint)
RETURNS TABLE (seq bigint, id text, name text, data jsonb, ts bigint)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT i.ord, i.id, i.name, i.data::jsonb AS data, coalesce(i.ts, p_now_ms) AS ts
        FROM unnest(p_ids, p_names, p_data, p_ts) WITH ORDINALITY AS i (id, name, data, ts, ord)
    ), fresh AS (
        INSERT INTO event_ids AS e (app_id, id, seen_at)
        SELECT DISTINCT ON (id) p_app, id, durable_now() FROM input ORDER BY id, ord
        ON CONFLICT (app_id, id) DO UPDATE SET seen_at = EXCLUDED.seen_at
            WHERE e.seen_at < durable_now() - interval '24 hours'
        RETURNING e.id
    )
    INSERT INTO events (app_id, id, name, data, ts)
    SELECT p_app, first.id, first.name, first.data, first.ts
    FROM (SELECT DISTINCT ON (i.id) i.* FROM input i JOIN fresh f ON f.id = i.id ORDER BY i.id, i.ord) AS first
    ORDER BY first.ord
    RETURNING seq, id, name, data, ts;
END
$fn$;

-- Create runs with their jobs (one job per active run), due at `due` (now when null). A run with a
-- lease token is handed straight to a worker of the ingesting process (claimed by `p_worker` with a
-- lease of `p_lease_ms`): it starts executing without a trip through the queue. The others wake the
-- workers (NOTIFY durable_jobs). Returns how many runs it created, and '' when it notified.
CREATE FUNCTION durable_runs_create(p_app text, p_run_ids text[], p_functions text[], p_event_ids text[],
                                    p_events text[], p_due timestamptz[], p_priority int[], p_gate text[],
                                    p_gate_limit int[], p_flow text[], p_rerun_of text[], p_token uuid[],
                                    p_worker text, p_lease_ms int, p_parent_runs text[], p_parent_steps text[])
RETURNS TABLE (created bigint, notified text)
LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT i.*
        FROM unnest(p_run_ids, p_functions, p_event_ids, p_events, p_due, p_priority, p_gate, p_gate_limit,
                    p_flow, p_rerun_of, p_token, p_parent_runs, p_parent_steps)
             AS i (run_id, function_id, event_id, event, due, priority, gate, gate_limit, flow, rerun_of,
                   token, parent_run_id, parent_step_id)
    ), r AS (
        INSERT INTO runs (id, app_id, function_id, event_id, event, activity, flow, rerun_of, started_at,
                          parent_run_id, parent_step_id)
        SELECT run_id, p_app, function_id, event_id, event::jsonb,
               CASE WHEN token IS NOT NULL THEN 'executing'
                    WHEN coalesce(due, durable_now()) <= durable_now() THEN 'queued' ELSE 'scheduled' END,
               flow::jsonb, rerun_of, CASE WHEN token IS NOT NULL THEN durable_now() END, parent_run_id,
               parent_step_id
        FROM input
    ), j AS (
        INSERT INTO jobs (run_id, app_id, available_at, ready_at, priority, gate, gate_limit, lease_token,
                          claimed_by)
        SELECT run_id, p_app,
               CASE WHEN token IS NOT NULL THEN durable_now() + p_lease_ms * interval '1 millisecond'
                    ELSE coalesce(due, durable_now()) END,
               coalesce(due, durable_now()), priority, gate, gate_limit, token,
               CASE WHEN token IS NOT NULL THEN p_worker END
        FROM input
    )
    SELECT count(*), CASE WHEN bool_or(token IS NULL) THEN pg_notify('durable_jobs', '')::text END FROM input;
END
$fn$;

-- The plain ingest. `p_names_locked`: the events' distinct names in order, each with `p_expected`, the
-- JSON text of what durable_triggered gave for it when the engine last looked (every function in it without flow
-- control and not paused). The runs: per run its event's id (ids distinct within the list), id,
-- function, priority, concurrency gate and limit, and the lease token of a run handed to the worker
-- `p_worker` (NULL: queued). It takes the event-name locks (event_lock_names), then checks, each in a
-- statement of its own so that it sees every wait committed before the locks: that each name still
-- triggers what the engine expects, and that no wait or cancelOn row may match an event. If either
-- fails it writes nothing and answers one row with `fallback`. Else it records the nonce (a replay
-- fails the statement, durable_nonce_record), stores the events and the runs of those stored (a
-- workspace with a cap hands none off: its runs are counted at claim) and answers a row per stored
-- event with what its runs start with (as event_store), or one row without `seq` when none was new.
CREATE FUNCTION durable_ingest_plain(p_app text, p_ids text[], p_names text[], p_data text[], p_ts bigint[],
                                     p_names_locked text[], p_expected text[], p_nonce text, p_worker text,
                                     p_lease_ms int, p_run_events text[], p_run_ids text[],
                                     p_run_functions text[], p_priority int[], p_gate text[],
                                     p_gate_limit int[], p_token uuid[])
RETURNS TABLE (fallback boolean, seq bigint, id text, name text, data jsonb, ts bigint, now_ms bigint,
               url text, signing_key text, previous_signing_key text, signature_mode text,
               handed_off boolean, ready_at timestamptz, db_now timestamptz, lease_left_ms int)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_now_ms bigint := (extract(epoch FROM durable_now()) * 1000)::bigint;
    v_seq bigint[];
    v_id text[];
    v_name text[];
    v_data jsonb[];
    v_ts bigint[];
    v_app record;
BEGIN
    PERFORM count(*) FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(p_app || '/' || n, 0))
                           FROM unnest(p_names_locked) AS n ORDER BY n) AS locked;
    IF EXISTS (SELECT 1 FROM unnest(p_names_locked, p_expected) AS t (name, expected)
               WHERE durable_triggered(p_app, t.name) IS DISTINCT FROM t.expected::jsonb) THEN
        fallback := true;
        RETURN NEXT;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1
               FROM (SELECT i.name, i.data::jsonb AS data FROM unnest(p_names, p_data) AS i (name, data)
                     WHERE durable_parked_on(p_app, i.name)) AS e
               CROSS JOIN LATERAL (SELECT durable_match_fps(e.data, 256) AS fps) AS f
               WHERE EXISTS (SELECT 1 FROM durable_waits_for(p_app, e.name, e.data, f.fps))
                  OR EXISTS (SELECT 1 FROM durable_cancels_for(p_app, e.name, e.data, f.fps))) THEN
        fallback := true;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_nonce IS NOT NULL THEN
        PERFORM durable_nonce_record(p_app, p_nonce);
    END IF;
    SELECT a.url, a.signing_key, a.previous_signing_key, a.signature_mode,
           a.max_concurrency IS NULL AS uncapped
    INTO v_app FROM apps a WHERE a.id = p_app;
    SELECT array_agg(e.seq ORDER BY e.seq), array_agg(e.id ORDER BY e.seq), array_agg(e.name ORDER BY e.seq),
           array_agg(e.data ORDER BY e.seq), array_agg(e.ts ORDER BY e.seq)
    INTO v_seq, v_id, v_name, v_data, v_ts
    FROM durable_events_insert(p_app, p_ids, p_names, p_data, p_ts, v_now_ms) AS e;
    PERFORM durable_runs_create(p_app, array_agg(r.run_id), array_agg(r.function_id), array_agg(r.event_id),
                                array_agg(jsonb_build_object('id', e.id, 'name', e.name, 'data', e.data,
                                                             'ts', e.ts)::text),
                                array_agg(NULL::timestamptz), array_agg(r.priority), array_agg(r.gate),
                                array_agg(r.gate_limit), array_agg(NULL::text), array_agg(NULL::text),
                                array_agg(CASE WHEN coalesce(v_app.uncapped, false) THEN r.token END),
                                p_worker, p_lease_ms, array_agg(NULL::text), array_agg(NULL::text))
    FROM unnest(p_run_events, p_run_ids, p_run_functions, p_priority, p_gate, p_gate_limit, p_token)
         AS r (event_id, run_id, function_id, priority, gate, gate_limit, token)
    JOIN unnest(v_id, v_name, v_data, v_ts) AS e (id, name, data, ts) ON e.id = r.event_id
    HAVING count(*) > 0;
    fallback := false;
    now_ms := v_now_ms;
    url := v_app.url;
    signing_key := v_app.signing_key;
    previous_signing_key := v_app.previous_signing_key;
    signature_mode := v_app.signature_mode;
    handed_off := coalesce(v_app.uncapped, false);
    ready_at := durable_now();
    db_now := clock_timestamp();
    lease_left_ms := (extract(epoch FROM durable_now() + p_lease_ms * interval '1 millisecond'
                                         - durable_clock()) * 1000)::int;
    IF v_seq IS NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    FOR k IN 1 .. array_length(v_seq, 1) LOOP
        seq := v_seq[k];
        id := v_id[k];
        name := v_name[k];
        data := v_data[k];
        ts := v_ts[k];
        RETURN NEXT;
    END LOOP;
END
$fn$;
